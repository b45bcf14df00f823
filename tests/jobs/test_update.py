"""``shopgraph update``: fold new events into a trained model, swap checkpoint and index
atomically, retrain when asked or past the thresholds (real local graph server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.config import UpdateConfig
from shopgraph.errors import ConfigError
from shopgraph.gnn.checkpoint import embeddings_fingerprint, load_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.graphdb.export import Interactions
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.workspace import Workspace
from tests.conftest import workspace_on
from tests.graphdb.helpers import source

SPECTRAL = {"k": 8, "tune": False}
EVEN, ODD = [f"i{i}" for i in range(20)], [f"i{i}" for i in range(20, 40)]
NEW_EVENTS = ([("u0", "i1"), ("u0", "i3"), ("u0", "i5")]          # an existing user buys more
              + [("n1", i) for i in ODD[:6]]                        # a new user, odd taste
              + [(f"u{u}", "i40") for u in (2, 4, 6, 8, 10, 12)])   # a new item, even buyers
TOUCHED = {"u0", "n1", "u2", "u4", "u6", "u8", "u10", "u12"}
LOOSE = 0.5  # max_new_item_share: one new item in 41 is past the default's 2 %


def taste_pairs(n_users: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """Even users buy 8 of i0-i19, odd users 8 of i20-i39 (u0 never buys i1, i3 or i5)."""
    rng = np.random.default_rng(seed)
    pairs = set()
    for u in range(n_users):
        half = EVEN if u % 2 == 0 else ODD
        choice = [i for i in half if not (u == 0 and i in ("i1", "i3", "i5"))]
        pairs.update((f"u{u}", i) for i in rng.choice(choice, 8, replace=False))
    return sorted(pairs)


def trained(ws: Workspace, tmp_path: Path, model: str = "spectral", **settings: object) -> None:
    ws.ingest(source(tmp_path, taste_pairs(), name="base"))
    ws.train(model, progress=False, **(settings or SPECTRAL))  # type: ignore[arg-type]
    ws.build_index(model)


def files(ws: Workspace, model: str = "spectral") -> dict[str, bytes]:
    paths = (ws.layout.checkpoint(model), ws.layout.index(model), ws.layout.interactions)
    return {p.name: p.read_bytes() for p in paths}


def by_id(ids: np.ndarray, emb: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(ids.tolist(), emb))


def test_update_folds_in_new_users_items_and_events(graph_server: EmbeddedServer,
                                                    tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "upd") as ws:
        trained(ws, tmp_path)
        before = load_checkpoint(ws.layout.checkpoint("spectral"))
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        result = ws.update("spectral", max_new_item_share=LOOSE, progress=False)
        assert result.mode == "folded" and result.reason == ""
        assert (result.new_users, result.new_items, result.changed_users) == (1, 1, 7)
        assert result.new_interactions == len(NEW_EVENTS)
        after = load_checkpoint(ws.layout.checkpoint("spectral"))
        # the old ids keep their positions; the new ones are appended
        assert after.user_ids[:60].tolist() == before.user_ids.tolist()
        assert after.user_ids[60:].tolist() == ["n1"] and after.item_ids[40:].tolist() == ["i40"]
        users, items = by_id(after.user_ids, after.user_emb), by_id(after.item_ids, after.item_emb)
        for uid, emb in by_id(before.user_ids, before.user_emb).items():
            if uid not in TOUCHED:
                assert np.array_equal(users[uid], emb), uid  # bit for bit
            else:
                assert not np.array_equal(users[uid], emb), uid
        for iid, emb in by_id(before.item_ids, before.item_emb).items():
            assert np.array_equal(items[iid], emb), iid
        assert np.abs(users["n1"]).sum() > 0 and np.abs(items["i40"]).sum() > 0

        def cos(a: np.ndarray, b: np.ndarray) -> float:
            return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

        # the new item sits with the even half, which bought it
        assert (np.mean([cos(items["i40"], items[i]) for i in EVEN])
                > np.mean([cos(items["i40"], items[i]) for i in ODD]) + 0.2)
        # the new user gets odd-half items, not the popular list
        recs = [m.id for m in ws.recommend("n1", k=5)]
        arrays = ws.export_interactions()
        degree = np.bincount(arrays.items, minlength=len(arrays.item_ids))
        seen = set(ODD[:6])
        popular = [i for i in arrays.item_ids[np.argsort(-degree, kind="stable")]
                   if i not in seen][:5]
        assert set(recs) <= set(ODD) - seen and recs != popular
        # fingerprints: the data one is what train/evaluate compute; the index is the new one
        full = InteractionMatrix.from_interactions(arrays)
        assert after.data_fingerprint == full.fingerprint()
        assert after.fingerprint == embeddings_fingerprint(after.user_emb, after.item_emb,
                                                           after.user_ids, after.item_ids)
        assert ws.index_info("spectral").checkpoint_fingerprint == after.fingerprint
        assert ws.evaluate("spectral").recorded  # the graph matches the checkpoint again
        assert after.meta["update"]["base_fingerprint"] == before.fingerprint
        assert after.meta["update"]["new_users"] == 1 and after.meta["split"] == \
            before.meta["split"]
        assert result.steps.keys() >= {"read", "fold", "save", "index", "swap"}
        # the export the next update compares with is the current data
        base = Interactions.load(ws.layout.interactions)
        assert InteractionMatrix.from_interactions(base).fingerprint() == full.fingerprint()


def test_a_second_update_with_nothing_new_changes_nothing(graph_server: EmbeddedServer,
                                                          tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "upd2") as ws:
        trained(ws, tmp_path)
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        assert ws.update("spectral", max_new_item_share=LOOSE, progress=False).mode == "folded"
        was = files(ws)
        stamps = {p: p.stat().st_mtime_ns for p in (ws.layout.checkpoint("spectral"),
                                                     ws.layout.index("spectral"))}
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1-again"))  # same events: duplicates
        again = ws.update("spectral", progress=False)
        assert again.mode == "unchanged" and again.index is None
        assert (again.new_users, again.new_items, again.changed_users) == (0, 0, 0)
        assert files(ws) == was
        assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
        out = CliRunner().invoke(app, ["update", "-w", str(ws.path), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["mode"] == "unchanged" and files(ws) == was


def test_a_failure_midway_leaves_the_old_checkpoint_and_index(
        graph_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shopgraph.jobs.update as update

    with workspace_on(graph_server, tmp_path, "upd3") as ws:
        trained(ws, tmp_path)
        was = files(ws)
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk gone")

        monkeypatch.setattr(update, "_build_index", broken)
        with pytest.raises(RuntimeError, match="disk gone"):
            ws.update("spectral", max_new_item_share=LOOSE, progress=False)
        assert files(ws) == was
        assert not list(ws.path.glob(".update-*"))  # the staging folder is gone
        assert len(ws.recommend("u1", k=3)) == 3  # the old pair still serves
        monkeypatch.undo()
        assert ws.update("spectral", max_new_item_share=LOOSE,
                         progress=False).new_users == 1  # and the next run works


def test_drift_refits_and_full_retrains(graph_server: EmbeddedServer, tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "upd4") as ws:
        trained(ws, tmp_path)
        before = load_checkpoint(ws.layout.checkpoint("spectral"))
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        drifted = ws.update("spectral", max_new_share=0.01, max_new_item_share=LOOSE,
                            progress=False)
        assert drifted.mode == "refitted" and "interactions are new" in drifted.reason
        assert drifted.train is None and drifted.new_users == 1 and drifted.new_items == 1
        assert drifted.new_interactions == len(NEW_EVENTS)
        assert drifted.drift["new_share"] == pytest.approx(len(NEW_EVENTS) / drifted.interactions,
                                                           abs=1e-5)
        ckpt = load_checkpoint(ws.layout.checkpoint("spectral"))
        full = InteractionMatrix.from_interactions(ws.export_interactions())
        assert ckpt.config == before.config and ckpt.data_fingerprint == full.fingerprint()
        assert ckpt.refit["interactions"] == full.nnz and ckpt.meta["update"]["refit"]
        assert ckpt.meta["split"] == before.meta["split"]  # the recorded split and metrics stay
        assert ckpt.user_ids.tolist() == full.user_ids.tolist()  # fitted afresh: stable order
        assert ws.index_info("spectral").checkpoint_fingerprint == ckpt.fingerprint
        assert ws.update("spectral", progress=False).mode == "unchanged"
        ws.ingest(source(tmp_path, [("n2", "i20"), ("n2", "i21")], name="day2"))
        after = ws.update("spectral", max_new_share=0.01, progress=False)
        assert after.mode == "folded" and after.drift["new_share"] < 0.01  # since the refit
        asked = ws.update("spectral", full=True, progress=False)
        assert asked.mode == "retrained" and "asked" in asked.reason and asked.train
        ckpt = load_checkpoint(ws.layout.checkpoint("spectral"))
        assert ckpt.config["k"] == 8 and "update" not in ckpt.meta
        assert ws.index_info("spectral").checkpoint_fingerprint == ckpt.fingerprint
    with pytest.raises(ConfigError, match="max_new_share"):
        UpdateConfig(max_new_share=1.5)


BPR = {"dim": 8, "epochs": 30, "batch_size": 64, "lr": 0.05, "eval_every": 10}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread, as in ``tests/gnn``: small models on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_bpr_models_are_warm_started_within_the_thresholds(graph_server: EmbeddedServer,
                                                           tmp_path: Path) -> None:
    from shopgraph.jobs.update import update_model

    with workspace_on(graph_server, tmp_path, "upd5") as ws:
        trained(ws, tmp_path, "lightgcn", **BPR)
        before = load_checkpoint(ws.layout.checkpoint("lightgcn"))
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        result = update_model(ws.store(), ws.layout, "lightgcn", UpdateConfig(warm_epochs=2),
                              progress=False)
        assert result.mode == "warm-started" and result.reason == "" and result.train is None
        assert (result.new_users, result.new_items, result.changed_users) == (1, 1, 7)
        assert result.new_interactions == len(NEW_EVENTS)
        assert result.steps.keys() >= {"read", "warm", "save", "index", "swap"}
        after = load_checkpoint(ws.layout.checkpoint("lightgcn"))
        # the old ids keep their positions, the new ones are appended; the settings stay
        assert after.user_ids[:60].tolist() == before.user_ids.tolist()
        assert after.user_ids[60:].tolist() == ["n1"] and after.item_ids[40:].tolist() == ["i40"]
        assert after.config == before.config and after.meta["split"] == before.meta["split"]
        assert after.weights["embedding"].shape == (61 + 41, BPR["dim"])
        warm = after.meta["update"]["warm"]
        assert warm["epochs"] == 2 and warm["steps"] > 0 and warm["loss"] > 0
        assert after.meta["update"]["base_fingerprint"] == before.fingerprint
        full = InteractionMatrix.from_interactions(ws.export_interactions())
        assert after.data_fingerprint == full.fingerprint()
        assert ws.index_info("lightgcn").checkpoint_fingerprint == after.fingerprint
        # the new user, who bought six odd items, is served odd items, not the popular list
        recs = [m.id for m in ws.recommend("n1", k=5, model="lightgcn")]
        assert set(recs) <= set(ODD) - set(ODD[:6]), recs
        # the drift counts from the last full fit, as for the spectral model
        ws.ingest(source(tmp_path, [("n2", "i0"), ("n2", "i2")], name="day2"))
        out = CliRunner().invoke(app, ["update", "-w", str(ws.path), "--model", "lightgcn"])
        assert out.exit_code == 0, out.output
        text = " ".join(out.output.split())
        assert "warm-started" in text and "1 new users" in text and "index updated" in text
        again = load_checkpoint(ws.layout.checkpoint("lightgcn"), weights=False)
        assert again.meta["update"]["count"] == 2 and again.user_ids[-1] == "n2"
        assert again.meta["update"]["warm"]["epochs"] == UpdateConfig().warm_epochs
        ws.ingest(source(tmp_path, [("n3", "i1"), ("n3", "i4")], name="day3"))
        drifted = ws.update("lightgcn", max_new_share=0.01, progress=False)
        assert drifted.mode == "retrained" and "interactions are new" in drifted.reason
        assert drifted.train is not None and "update" not in load_checkpoint(
            ws.layout.checkpoint("lightgcn"), weights=False).meta


@pytest.mark.usefixtures("one_thread")
def test_graphsage_is_warm_started_and_zero_epochs_keep_the_start(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    from shopgraph.jobs.update import update_model

    with workspace_on(graph_server, tmp_path, "upd5s") as ws:
        trained(ws, tmp_path, "graphsage", **BPR)
        before = load_checkpoint(ws.layout.checkpoint("graphsage"))
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        result = update_model(ws.store(), ws.layout, "graphsage", UpdateConfig(warm_epochs=0),
                              progress=False)
        assert result.mode == "warm-started" and result.new_users == 1
        after = load_checkpoint(ws.layout.checkpoint("graphsage"))
        assert after.meta["update"]["warm"]["epochs"] == 0
        for key, old in before.weights.items():  # nothing trained: only rows were added
            new = after.weights[key]
            if key == "embedding.weight":
                np.testing.assert_array_equal(new[:60], old[:60])
                np.testing.assert_array_equal(new[61:101], old[60:])
            else:
                np.testing.assert_array_equal(new, old)
        assert ws.index_info("graphsage").checkpoint_fingerprint == after.fingerprint
    with pytest.raises(ConfigError, match="warm_epochs"):
        UpdateConfig(warm_epochs=-1)


def test_without_the_training_export_every_user_is_folded_in_again(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "upd6") as ws:
        trained(ws, tmp_path)
        before = load_checkpoint(ws.layout.checkpoint("spectral"))
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        ws.layout.interactions.unlink()
        result = ws.update("spectral", max_new_item_share=LOOSE, progress=False)
        assert result.mode == "folded" and "every user" in result.reason
        assert result.changed_users == 60 and result.new_users == 1
        after = load_checkpoint(ws.layout.checkpoint("spectral"))
        users = by_id(after.user_ids, after.user_emb)
        for uid, emb in by_id(before.user_ids, before.user_emb).items():
            if uid not in TOUCHED:  # the same embedding, up to rounding
                np.testing.assert_allclose(users[uid], emb, rtol=1e-4, atol=1e-6)


def test_update_cli_help_and_errors(graph_server: EmbeddedServer, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["update", "--help"])
    assert out.exit_code == 0 and "--max-new-share" in out.output and "folded" in out.output
    with workspace_on(graph_server, tmp_path, "upd7") as ws:
        out = runner.invoke(app, ["update", "-w", str(ws.path)])
        assert out.exit_code != 0 and "train a model first" in str(out.exception)
        trained(ws, tmp_path)
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        out = runner.invoke(app, ["update", "-w", str(ws.path), "--max-new-item-share", "0.5"])
        assert out.exit_code == 0, out.output
        text = " ".join(out.output.split())
        assert "folded in 7 changed users, 1 new users and 1 new items" in text
        assert "index updated" in text and "checkpoint:" in text


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_faiss_indexes_are_updated_in_place_where_they_can(graph_server: EmbeddedServer,
                                                           tmp_path: Path, kind: str) -> None:
    with workspace_on(graph_server, tmp_path, f"upd_{kind}") as ws:
        ws.ingest(source(tmp_path, taste_pairs(), name="base"))
        ws.train("spectral", progress=False, **SPECTRAL)  # type: ignore[arg-type]
        ws.build_index("spectral", kind=kind, target_recall=0.9)
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        result = ws.update("spectral", max_new_item_share=LOOSE, progress=False)
        assert result.index is not None
        built = result.index["indexes"]
        assert result.index["build"]["kind"] == kind  # the settings it was built with
        # items: one new vector added in place; users: 7 moved, which only IVF can replace
        assert built["items"]["in_place"] == {"replaced": 0, "added": 1,
                                              "seconds": built["items"]["in_place"]["seconds"]}
        assert ("in_place" in built["users"]) == (kind == "ivf")
        assert built["users"]["n"] == 61 and built["items"]["n"] == 41
        assert all(ix["recall@20"] >= 0.9 for ix in built.values())
        recs = [m.id for m in ws.recommend("n1", k=5)]
        assert set(recs) <= set(ODD) and {m.id for m in ws.similar_items("i40", k=5)} <= set(EVEN)
        retriever = ws.retriever("spectral")  # the added vector is found by the FAISS index
        cosine = retriever.bundle.indexes["items_cosine"]
        assert not cosine.exact and cosine.search(cosine.vectors[40], 1).ids[0, 0] == 40


def test_a_checkpoint_fitted_on_the_split_is_folded_from_its_training_part(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "upd8") as ws:
        ws.ingest(source(tmp_path, taste_pairs(), name="base"))
        ws.train("spectral", refit=False, progress=False, **SPECTRAL)  # type: ignore[arg-type]
        before = load_checkpoint(ws.layout.checkpoint("spectral"))
        ws.ingest(source(tmp_path, NEW_EVENTS, name="day1"))
        result = ws.update("spectral", max_new_share=0.5, max_new_item_share=LOOSE,
                           progress=False)
        assert result.mode == "folded" and result.new_users == 1
        # the held-out part is new to the model: every user with a held-out pair moved
        held = before.meta["split"]["held_out"]
        assert result.new_interactions == held + len(NEW_EVENTS)
        assert result.drift["full_fit_interactions"] == before.meta["split"]["interactions"]
        saved = Interactions.load(ws.layout.interactions)  # a whole export, edges and all
        whole = ws.export_interactions(path=tmp_path / "check.npz")
        assert len(saved) == len(whole) and saved.rel_types == whole.rel_types
        after = load_checkpoint(ws.layout.checkpoint("spectral"))
        assert after.data_fingerprint == InteractionMatrix.from_interactions(whole).fingerprint()
        assert ws.update("spectral", progress=False).mode == "unchanged"


def test_an_update_after_a_journalled_ingest_reads_only_the_listed_users(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    from shopgraph.graphdb.export import export_interactions
    from shopgraph.graphdb.ingest import ingest

    with workspace_on(graph_server, tmp_path, "updjournal") as ws:
        journal = ws.layout.changes
        ingest(ws.store(), source(tmp_path, taste_pairs(), name="base"), journal=journal)
        ws.train("spectral", progress=False, **SPECTRAL)  # type: ignore[arg-type]
        ws.build_index("spectral")
        ingest(ws.store(), source(tmp_path, NEW_EVENTS, name="day1"), journal=journal)
        entries = sorted(journal.glob("*.json"))
        assert json.loads(entries[-1].read_text())["users"] == {"PURCHASED": sorted(TOUCHED)}
        result = ws.update("spectral", max_new_item_share=LOOSE, progress=False)
        assert result.mode == "folded" and result.reason == ""
        assert (result.new_users, result.new_items, result.changed_users) == (1, 1, 7)
        assert result.new_interactions == len(NEW_EVENTS)
        after = load_checkpoint(ws.layout.checkpoint("spectral"), weights=False)
        assert after.meta["update"]["changes_from"] == "journal"
        assert after.meta["update"]["users_reread"] == len(TOUCHED)
        full = export_interactions(ws.store(), ["PURCHASED"])
        assert after.data_fingerprint == InteractionMatrix.from_interactions(full).fingerprint()
        # the base ingest's entries (before the export this update read past) are pruned
        assert sorted(journal.glob("*.json")) == entries[-1:]

        # events already in the graph create nothing, so nothing is journalled
        ingest(ws.store(), source(tmp_path, NEW_EVENTS, name="day1-again"), journal=journal)
        assert sorted(journal.glob("*.json")) == entries[-1:]
        assert ws.update("spectral", progress=False).mode == "unchanged"

        # an ingest that keeps no journal: the edge counts disagree, every user is counted
        ingest(ws.store(), source(tmp_path, [("u1", "i21"), ("n3", "i22")], name="day2"))
        result = ws.update("spectral", max_new_item_share=LOOSE, progress=False)
        assert result.mode == "folded" and result.changed_users == 1 and result.new_users == 1
        after = load_checkpoint(ws.layout.checkpoint("spectral"), weights=False)
        assert after.meta["update"]["changes_from"] == "counts"
        full = export_interactions(ws.store(), ["PURCHASED"])
        assert after.data_fingerprint == InteractionMatrix.from_interactions(full).fingerprint()
