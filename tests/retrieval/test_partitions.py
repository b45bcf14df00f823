"""All-user top-k in user blocks: the same answers as one batch for any block size, in this
process and on a real local two-worker Dask cluster; the Parquet export and ``recommend --all
--engine`` on a workspace; the engine setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.config import EngineConfig, load_engine_config
from shopgraph.errors import ConfigError
from shopgraph.gnn.checkpoint import load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.registry import model_class
from shopgraph.layout import WorkspaceLayout
from shopgraph.parallel import LocalEngine, open_engine
from shopgraph.retrieval.build import build_bundle
from shopgraph.retrieval.exact import SearchResult
from shopgraph.retrieval.index import EmbeddingIndex
from shopgraph.retrieval.persist import Catalogue, save_bundle
from shopgraph.retrieval.queries import Results, Retriever
from shopgraph.workspace import Workspace

distributed = pytest.importorskip("distributed")

N_USERS, N_ITEMS, K = 600, 200, 20


def write_model(folder: Path, kind: str) -> Path:
    """A workspace holding a spectral model of a clustered shop and its indexes, the item index
    (recommendations) of ``kind`` (no graph needed to query it). The last ten users have no
    interactions (cold)."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(N_USERS - 10), 12)
    taste = users % 5  # five tastes, each over its own fifth of the items, plus noise
    items = np.where(rng.random(len(users)) < 0.8,
                     taste * (N_ITEMS // 5) + rng.integers(0, N_ITEMS // 5, len(users)),
                     rng.integers(0, N_ITEMS, len(users)))
    data = InteractionMatrix.from_pairs(users, items, N_USERS, N_ITEMS,
                                        np.array([f"u{u}" for u in range(N_USERS)]),
                                        np.array([f"i{i}" for i in range(N_ITEMS)]))
    model = model_class("spectral")(k=16, tune=False)
    model.fit(data)
    layout = WorkspaceLayout.at(folder)
    save_checkpoint(layout.checkpoint("spectral"), model, data)
    ckpt = load_checkpoint(layout.checkpoint("spectral"), weights=False)
    bundle = build_bundle(ckpt, seen=data.matrix, seen_rel_types=("PURCHASED",),
                          catalogue=Catalogue.empty(N_ITEMS), kind="exact")
    bundle.indexes["items"] = EmbeddingIndex.build(ckpt.item_emb, kind=kind,
                                                   tune_queries=ckpt.user_emb)
    save_bundle(layout.index("spectral"), bundle)
    return folder


@pytest.fixture(scope="module", params=["exact", "hnsw"])
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """A workspace whose item index is exact, or HNSW (FAISS)."""
    return write_model(tmp_path_factory.mktemp(f"partitions-{request.param}"), request.param)


@pytest.fixture(scope="module")
def retriever(workspace: Path) -> Retriever:
    return Workspace(workspace).retriever()


def stacked(blocks: Iterator[tuple[int, SearchResult]]) -> SearchResult:
    parts = list(blocks)
    assert [start for start, _ in parts] == sorted(start for start, _ in parts)
    return SearchResult(np.concatenate([p.scores for _, p in parts]),
                        np.concatenate([p.ids for _, p in parts]))


def assert_same(found: SearchResult, whole: Results, bitwise: bool = True) -> None:
    np.testing.assert_array_equal(found.ids, whole.positions)
    if bitwise:
        np.testing.assert_array_equal(found.scores, whole.scores)  # NaN padding too
    else:
        np.testing.assert_allclose(found.scores, whole.scores, rtol=1e-6, atol=0)


def test_blocks_of_any_size_give_the_answer_of_one_batch(retriever: Retriever) -> None:
    """FAISS scores each (query, item) pair on its own: any block size gives the same bits.
    Exact search multiplies a block's matrix at once, and BLAS sums a product of a few rows
    in another order than a tall one: the same items, scores equal to float32 rounding."""
    whole = retriever.recommend_batch(None, K)
    exact = retriever.bundle.indexes["items"].exact
    assert retriever.bundle.indexes["items"].factory == ("Flat" if exact else "HNSW32")
    cold = retriever.user_ids[~retriever.ckpt.user_emb.any(axis=1)]
    assert set(cold) == {f"u{u}" for u in range(N_USERS - 10, N_USERS)}
    assert (whole.positions[:, :K] >= 0).all()  # 200 items: every user gets K
    for size in (1, 97, 512):
        assert_same(stacked(retriever.recommend_all(K, block_size=size)), whole,
                    bitwise=not exact)
    for size in (N_USERS, 10 * N_USERS):  # one block: the very same call
        assert_same(stacked(retriever.recommend_all(K, block_size=size)), whole)
    filtered = retriever.recommend_batch(None, 5, exclude_seen=False,
                                         items=[f"i{i}" for i in range(0, N_ITEMS, 3)])
    assert_same(stacked(retriever.recommend_all(5, exclude_seen=False, block_size=256,
                                                items=[f"i{i}" for i in range(0, N_ITEMS, 3)])),
                filtered)
    assert set(filtered.positions.ravel() % 3) == {0}
    with pytest.raises(ValueError, match="block_size"):
        next(retriever.recommend_all(K, block_size=0))


def test_the_item_index_turns_approximate_when_scoring_every_user_exactly_is_costly(
        retriever: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` keeps a small catalogue exact for one query, but builds HNSW for the item
    index once every user scored against every item passes ``BATCH_EXACT_FLOATS``; the other
    indexes are not queried by every user and stay as they were."""
    from shopgraph.retrieval import index as index_module
    from shopgraph.retrieval.build import updated_bundle

    ckpt = retriever.ckpt
    args = {"seen": retriever.bundle.seen, "seen_rel_types": ("PURCHASED",),
            "catalogue": Catalogue.empty(N_ITEMS)}
    pass_floats = N_USERS * N_ITEMS * ckpt.item_emb.shape[1]
    monkeypatch.setattr(index_module, "BATCH_EXACT_FLOATS", pass_floats)
    assert build_bundle(ckpt, **args).indexes["items"].exact
    monkeypatch.setattr(index_module, "BATCH_EXACT_FLOATS", pass_floats - 1)
    bundle = build_bundle(ckpt, **args)
    assert {name: ix.factory for name, ix in bundle.indexes.items()} == {
        "items": "HNSW32", "users": "Flat", "items_cosine": "Flat", "users_cosine": "Flat"}
    assert bundle.indexes["items"].info["recall@20"] >= 0.98
    # An update of an exact bundle past the limit rebuilds the item index approximate.
    exact = build_bundle(ckpt, **args, kind="exact")
    assert updated_bundle(exact, ckpt, ckpt, **args).indexes["items"].factory == "HNSW32"


def test_an_approximate_search_answers_a_row_alike_in_any_batch() -> None:
    """HNSW fetches k + the row's exclusions rounded up to a power of two, whatever rows share
    its batch: a row searched alone gets the bits it gets among others (else user blocks would
    change answers)."""
    rng = np.random.default_rng(1)
    index = EmbeddingIndex.build(rng.standard_normal((3000, 16), dtype=np.float32),
                                 kind="hnsw")
    index.params = {"efSearch": 16}  # a shallow search: the fetch width changes its answers
    queries = rng.standard_normal((200, 16), dtype=np.float32)
    counts = rng.integers(0, 40, len(queries))
    exclude = sp.csr_matrix((np.ones(counts.sum(), dtype=np.float32),
                             rng.integers(0, 3000, counts.sum()),
                             np.concatenate([[0], np.cumsum(counts)])), shape=(200, 3000))
    together = index.search(queries, 10, exclude=exclude)
    for row in range(len(queries)):
        alone = index.search(queries[row:row + 1], 10, exclude=exclude[row:row + 1])
        np.testing.assert_array_equal(alone.ids[0], together.ids[row])
        np.testing.assert_array_equal(alone.scores[0], together.scores[row])


def test_a_two_worker_dask_cluster_gives_identical_results(retriever: Retriever,
                                                           dask_cluster: str) -> None:
    local = stacked(retriever.recommend_all(K, block_size=128, engine=LocalEngine()))
    with open_engine(dask_cluster) as engine:
        assert engine.workers == 2
        remote = stacked(retriever.recommend_all(K, block_size=128, engine=engine))
        ran_on = engine.client.run(lambda: 1)  # type: ignore[attr-defined]
    assert len(ran_on) == 2
    np.testing.assert_array_equal(remote.ids, local.ids)
    np.testing.assert_array_equal(remote.scores, local.scores)


def test_export_on_the_cluster_equals_the_batch_frame(workspace: Path, retriever: Retriever,
                                                      dask_cluster: str, tmp_path: Path) -> None:
    expected = retriever.recommend_batch(None, K).to_pandas()
    out = tmp_path / "recs.parquet"
    result = CliRunner().invoke(app, ["recommend", "--all", "-k", str(K), "--engine",
                                      dask_cluster, "-o", str(out), "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).num_row_groups == 1  # default block: one
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    assert retriever.export_all(out, K, block_size=100) == len(expected)
    assert pq.ParquetFile(out).num_row_groups == 6
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    shown = CliRunner().invoke(app, ["recommend", "--all", "-k", "2", "--format", "csv",
                                     "-w", str(workspace)])
    assert shown.exit_code == 0, shown.output
    frame = retriever.recommend_batch(None, 2).to_pandas()
    assert shown.stdout.startswith(frame.to_csv(index=False)[:200])


def test_engine_setting_file_env_and_option(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "shopgraph.toml"
    assert load_engine_config(settings) == EngineConfig("local", 65536)
    settings.write_text('[engine]\naddress = "tcp://10.0.0.5:8786"\nblock_size = 1000\n')
    assert load_engine_config(settings) == EngineConfig("tcp://10.0.0.5:8786", 1000)
    monkeypatch.setenv("SHOPGRAPH_ENGINE", "local")
    assert load_engine_config(settings).address == "local"
    assert load_engine_config(settings, address="tcp://h:1").address == "tcp://h:1"
    with pytest.raises(ConfigError, match="--engine"):
        load_engine_config(settings, address="h:8786")
    settings.write_text("[engine]\nblock_size = 0\n")
    with pytest.raises(ConfigError, match="block_size"):
        load_engine_config(settings)


def test_engine_addresses_that_cannot_work_fail_clearly() -> None:
    with open_engine("local") as engine:
        assert list(engine.map(lambda s, p: s + p, 10, [1, 2, 3])) == [11, 12, 13]
    with pytest.raises(ConfigError, match="neither 'local' nor"), open_engine("h:8786"):
        pass
    with pytest.raises(ConfigError, match="no Dask scheduler answered"), \
            open_engine("tcp://127.0.0.1:9", timeout=1):
        pass
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as empty, \
            pytest.raises(ConfigError, match="no workers after 1 s"), \
            open_engine(empty.scheduler_address, timeout=1):
        pass
