"""The typed configuration: one loader for [run] (and [db]), a TOML writer that round-trips."""

from __future__ import annotations

import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from shopgraph.config import (
    DbConfig,
    HeadsConfig,
    IndexConfig,
    LoopConfig,
    OffersConfig,
    ReportConfig,
    RunConfig,
    TargetConfig,
    TrainConfig,
    load_db_config,
    load_run_config,
    run_config_toml,
    write_run_config,
)
from shopgraph.errors import ConfigError
from shopgraph.layout import WorkspaceLayout
from shopgraph.simulator import simulate


def full_config(folder: Path, outside: Path) -> RunConfig:
    """A config with every section set away from its defaults."""
    return RunConfig(
        file=folder / "run.toml", source=folder / "data" / "mapping.toml", format="tabular",
        model="lightgcn", truth=outside / "truth.npz",
        train=TrainConfig(valid_fraction=0.2, seed=3, rel_types=("PURCHASED", "VIEWED"),
                          resume=True, settings={"max_seconds": 90, "lr": 0.005, "k": 64,
                                                 "negatives": "dns", "layers": [1, 2]}),
        index=IndexConfig(kind="hnsw", target_recall=0.9, seen_rel_types=("PURCHASED",),
                          seed=1, ef_construction=80),
        heads=HeadsConfig(horizon_days=30.0),
        target=TargetConfig(campaign="spring", n=50, items=("i1", "i2"), control_share=0.0,
                            winback=True, heads=False, write_back=True),
        offers=OffersConfig(campaign="spring", budget=500.0, cost={"bogo": 5.0, "info": 0.2},
                            value_per_response=20.5, label="redeemed",
                            caps={"bogo": 10, "info": 0}, control_share=0.2, kind="logistic",
                            calibrated=False, seed=2, pseudonymise=True),
        report=ReportConfig(title="Spring"),
    )


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_write_then_load_gives_an_equal_config(tmp_path: Path) -> None:
    folder, outside = tmp_path / "shop", tmp_path / "elsewhere"
    config = full_config(folder, outside)
    header = "# a run for the tests\n# second line"
    written = write_run_config(folder / "run.toml", config, header)
    assert written == folder / "run.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    loaded = load_run_config(written)
    assert loaded == config
    assert loaded.train.rel_types == ("PURCHASED", "VIEWED")
    assert loaded.offers is not None and loaded.offers.caps == {"bogo": 10, "info": 0}

    text = written.read_text()
    assert text.startswith(header + "\n")
    assert 'source = "data/mapping.toml"' in text  # inside the folder: relative
    assert f'truth = "{outside / "truth.npz"}"' in text  # outside: absolute
    assert "format" not in text  # equal to its default
    train = tomllib.loads(text)["run"]["train"]  # settings flattened into [run.train]
    assert "settings" not in train and train["k"] == 64 and train["negatives"] == "dns"
    assert text == run_config_toml(config, header)


def test_defaults_and_none_are_left_out(tmp_path: Path) -> None:
    config = RunConfig(file=tmp_path / "run.toml", model="spectral",
                       target=TargetConfig(items=("i1",)))
    assert run_config_toml(config) == '[run.target]\nitems = [\n    "i1",\n]\n'
    write_run_config(config.file, config)
    assert load_run_config(config.file) == config
    with pytest.raises(ValueError, match="must start with '#'"):
        run_config_toml(config, header="not a comment")
    clash = replace(config, train=TrainConfig(settings={"seed": 1}))
    with pytest.raises(ValueError, match=r"settings \['seed'\]"):
        run_config_toml(clash)


def test_a_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "[run]\n")
    assert load_run_config(path) == RunConfig(file=path.resolve())
    loaded = load_run_config(path)
    assert loaded.target is None and loaded.offers is None and loaded.source is None
    assert loaded.train == TrainConfig() and loaded.index.kind == "auto"


def test_relative_paths_are_resolved_against_the_files_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", '[run]\nsource = "data/mapping.toml"\n'
                                    'truth = "../truth.npz"\n')
    monkeypatch.chdir(tmp_path)  # another working folder must not matter
    config = load_run_config(Path("conf") / "run.toml")
    assert config.file == path.resolve() and config.file.is_absolute()
    assert config.source == (tmp_path / "conf" / "data" / "mapping.toml").resolve()
    assert config.truth == (tmp_path / "truth.npz").resolve()


def test_values_are_converted_to_the_field_types(tmp_path: Path) -> None:
    path = write(tmp_path, "[run]\n[run.train]\nrel_types = ['PURCHASED']\nepochs = 5\n"
                           "[run.heads]\nhorizon_days = 30\n"
                           "[run.offers]\ncampaign = 'c'\nbudget = 100\ncost = 1\n")
    config = load_run_config(path)
    assert config.offers is not None
    budget, cost = config.offers.budget, config.offers.cost
    assert budget == 100.0 and type(budget) is float  # int accepted for a float
    assert cost == 1.0 and type(cost) is float
    assert type(config.heads.horizon_days) is float
    assert config.train.rel_types == ("PURCHASED",)  # arrays become tuples
    assert config.train.settings == {"epochs": 5}
    table = write(tmp_path, "[run]\n[run.offers]\ncampaign = 'c'\nbudget = 1.5\n"
                            "cost = { bogo = 5, info = 0.5 }\n", "table.toml")
    offers = load_run_config(table).offers
    assert offers is not None and offers.cost == {"bogo": 5.0, "info": 0.5}
    assert isinstance(offers.cost, dict) and type(offers.cost["bogo"]) is float


OFFERS = "[run]\n[run.offers]\ncampaign = 'c'\n"


@pytest.mark.parametrize(("text", "message"), [
    ("[run]\nsource = 'x'\nmodle = 'spectral'\n",
     r"run\.toml: unknown \[run\] keys \['modle'\]; valid: \['source', 'format', 'model'"),
    ("[run]\n[run.trian]\nepochs = 1\n", r"unknown \[run\] keys \['trian'\]; valid: \[.*'train'"),
    (OFFERS + "budget = 5\nbugdet = 5\n",
     r"unknown \[run\.offers\] keys \['bugdet'\]; valid: \['campaign', 'budget', 'cost'"),
    ("[run]\n[run.index]\nkinds = 'hnsw'\n", r"unknown \[run\.index\] keys \['kinds'\]"),
    (OFFERS + "budget = 'lots'\n",
     r"run\.toml: \[run\.offers\] budget: expected a number, got 'lots'$"),
    (OFFERS + "budget = true\n", r"\[run\.offers\] budget: expected a number, got True"),
    ("[run]\n[run.target]\ncampaign = 'c'\nn = true\n",
     r"\[run\.target\] n: expected an integer, got True"),
    ("[run]\n[run.target]\ncampaign = 'c'\nn = 2.5\n",
     r"\[run\.target\] n: expected an integer, got 2\.5"),
    ("[run]\n[run.target]\ncampaign = 'c'\nwrite_back = 1\n",
     r"\[run\.target\] write_back: expected true or false, got 1"),
    ("[run]\nmodel = 3\n", r"\[run\] model: expected a string, got 3"),
    ("[run]\nsource = ['a']\n", r"\[run\] source: expected a path \(a string\), got \['a'\]"),
    ("[run]\n[run.train]\nrel_types = [1]\n",
     r"\[run\.train\] rel_types: expected an array of strings, got \[1\]"),
    (OFFERS + "budget = 5\ncost = 'free'\n",
     r"\[run\.offers\] cost: expected a number or a table of numbers, got 'free'"),
    (OFFERS + "budget = 5\ncaps = { bogo = 1.5 }\n",
     r"\[run\.offers\] caps: expected a table of integers"),
    (OFFERS, r"run\.toml: \[run\.offers\] budget: missing; required"),
    ("[run]\n[run.offers]\nbudget = 5\n", r"\[run\.offers\] campaign: missing; required"),
    (OFFERS + "budget = 5\nlabel = 'clicks'\n",
     r"\[run\.offers\] label: expected one of \['converted', 'visited', 'redeemed', 'value'\], "
     r"got 'clicks'"),
    (OFFERS + "budget = 5\nkind = 'xgboost'\n",
     r"\[run\.offers\] kind: expected one of \['lightgbm', 'logistic'\], got 'xgboost'"),
    ("[run]\n[run.index]\nkind = 'annoy'\n",
     r"\[run\.index\] kind: expected one of \['auto', 'exact', 'hnsw', 'ivf', 'ivfpq'\]"),
    (OFFERS + "budget = 5\ncontrol_share = 1.0\n",
     r"\[run\.offers\] control_share: must be 0 <= x < 1, got 1\.0"),
    ("[run]\n[run.target]\ncampaign = 'c'\ncontrol_share = -0.1\n",
     r"\[run\.target\] control_share: must be 0 <= x < 1, got -0\.1"),
    (OFFERS + "budget = 0\n", r"\[run\.offers\] budget: must be > 0, got 0\.0"),
    (OFFERS + "budget = 5\ncost = { bogo = 5, info = -1 }\n",
     r"\[run\.offers\] cost\['info'\]: must be >= 0, got -1\.0"),
    (OFFERS + "budget = 5\ncaps = { bogo = -1 }\n",
     r"\[run\.offers\] caps\['bogo'\]: must be >= 0, got -1"),
    ("[run]\n[run.target]\ncampaign = 'c'\nn = 0\n", r"\[run\.target\] n: must be >= 1, got 0"),
    ("[run]\n[run.index]\ntarget_recall = 1.5\n",
     r"\[run\.index\] target_recall: must be 0 < x <= 1, got 1\.5"),
    ("[run]\n[run.index]\nef_construction = 0\n", r"\[run\.index\] ef_construction: must be"),
    ("[run]\n[run.heads]\nhorizon_days = -5\n", r"\[run\.heads\] horizon_days: must be > 0"),
    ("[run]\n[run.target]\nn = 5\n", r"run\.toml: \[run\.target\] needs campaign or items"),
    ("[run]\ntrain = 5\n", r"\[run\.train\] must be a table, got 5"),
    ("[run]\noffers = 'yes'\n", r"\[run\.offers\] must be a table, got 'yes'"),
    ("run = 5\n", r"\[run\] must be a table, got 5"),
    ("[run]\n[run.train]\nsettings = { k = 1 }\n", r"\[run\.train\] settings: not a key"),
    ("[run]\nfile = 'other.toml'\n", r"unknown \[run\] keys \['file'\]"),
    ("[other]\n", r"run\.toml has no \[run\] table"),
    ("[run\n", r"run\.toml: not valid TOML"),
])
def test_bad_files_are_refused_naming_the_file_section_and_key(
        tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_run_config(path)
    assert str(info.value).startswith(str(path.resolve()))


def test_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run configuration at .*missing.toml; write one "
                                          r"\(see `shopgraph run --help`\)"):
        load_run_config(tmp_path / "missing.toml")


def test_the_db_table_goes_through_the_same_validator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOPGRAPH_URI", "SHOPGRAPH_USER", "SHOPGRAPH_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    config = WorkspaceLayout.at(tmp_path).config
    assert load_db_config(config) == DbConfig()  # no file: the defaults
    config.write_text('[db]\nuri = "bolt://a"\nuser = "u"\n')
    monkeypatch.setenv("SHOPGRAPH_USER", "env-user")
    db = load_db_config(WorkspaceLayout.at(tmp_path).config, database="cli-db", uri=None)
    assert db == DbConfig(uri="bolt://a", user="env-user", database="cli-db")
    assert not db.embedded
    config.write_text('[db]\nuri = "bolt://a"\npassword = "s3cret"\n')
    with pytest.raises(ConfigError, match="never store the password") as info:
        load_db_config(WorkspaceLayout.at(tmp_path).config)
    assert "s3cret" not in str(info.value)
    config.write_text("[db]\nhost = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown \[db\] keys \['host'\]; valid: \['uri'"):
        load_db_config(WorkspaceLayout.at(tmp_path).config)
    config.write_text("[db]\nheap = 2\n")
    with pytest.raises(ConfigError, match=r"\[db\] heap: expected a string, got 2"):
        load_db_config(WorkspaceLayout.at(tmp_path).config)
    config.write_text("db = 'x'\n")
    with pytest.raises(ConfigError, match=r"\[db\] must be a table"):
        load_db_config(WorkspaceLayout.at(tmp_path).config)


def test_the_simulated_shops_run_toml_loads_to_the_expected_values(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    simulate(out, seed=1, users=300, items=200, interactions=6_000)
    config = load_run_config(out / "run.toml")
    order_value = round(float(pd.read_parquet(out / "converted.parquet")["value"].mean()), 2)
    assert config == RunConfig(
        file=(out / "run.toml").resolve(), source=(out / "mapping.toml").resolve(),
        format="tabular", model="spectral", truth=(out / "truth.npz").resolve(),
        train=TrainConfig(),
        target=TargetConfig(campaign="campaign-1", n=30, write_back=True),
        offers=OffersConfig(campaign="campaign-1", budget=75.0, label="converted",
                            kind="logistic", value_per_response=order_value,
                            cost={"discount": 4.0, "bogo": 5.0, "free_shipping": 2.0,
                                  "informational": 0.2}),
        loop=LoopConfig(budget=75.0, cost={"discount": 4.0, "bogo": 5.0, "free_shipping": 2.0,
                                           "informational": 0.2}))
    text = (out / "run.toml").read_text()
    assert text.startswith("# shopgraph run configuration for this simulated shop")
    assert 'source = "mapping.toml"' in text  # portable: the folder can move
