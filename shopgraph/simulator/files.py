"""The simulated shop on disk: Parquet tables that ``shopgraph ingest tabular`` reads through
``mapping.toml``, the future in ``holdout.parquet`` (not in the mapping) and the truth in
``truth.npz``. Every writer is byte-deterministic: same seed, same bytes."""

from __future__ import annotations

import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shopgraph.artifacts import atomic_path
from shopgraph.config import (
    LoopConfig,
    OffersConfig,
    RunConfig,
    TargetConfig,
    TrainConfig,
    write_run_config,
)
from shopgraph.eventids import event_ids as shared_event_ids

#: (label or relationship, file, id or (src, dst), properties) in mapping order.
NODES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("User", "users.parquet", "user_id",
     ("email", "consent", "recency", "history", "newbie", "channel", "zip_code", "age",
      "income")),
    ("Item", "items.parquet", "item_id", ("name", "category", "price")),
    ("Category", "categories.parquet", "category_id", ("name",)),
    ("Campaign", "campaigns.parquet", "campaign_id",
     ("name", "type", "start_day", "end_day", "channel")),
    ("Offer", "offers.parquet", "offer_id",
     ("name", "type", "reward", "difficulty", "duration", "channels")),
)
#: (relationship, file, src, dst, eid, ts, value, properties); "" = not in the file.
EDGES: tuple[tuple[str, str, str, str, str, str, str, tuple[str, ...]], ...] = (
    ("IN_CATEGORY", "items.parquet", "item_id", "category", "", "", "", ()),
    ("INCLUDES", "offers.parquet", "campaign_id", "offer_id", "", "", "", ()),
    ("APPLIES_TO", "offer_items.parquet", "offer_id", "item_id", "", "", "", ()),
    ("VIEWED", "views.parquet", "user_id", "item_id", "event_id", "ts", "", ()),
    ("CARTED", "carts.parquet", "user_id", "item_id", "event_id", "ts", "", ()),
    ("PURCHASED", "purchases.parquet", "user_id", "item_id", "event_id", "ts", "value",
     ("quantity",)),
    ("EXPOSED", "exposed.parquet", "user_id", "campaign_id", "event_id", "ts", "", ()),
    ("RECEIVED", "received.parquet", "user_id", "offer_id", "event_id", "ts", "", ("arm",)),
    ("HELD_OUT", "held_out.parquet", "user_id", "campaign_id", "event_id", "ts", "", ("arm",)),
    ("VISITED", "visited.parquet", "user_id", "campaign_id", "event_id", "ts", "", ()),
    ("CONVERTED", "converted.parquet", "user_id", "campaign_id", "event_id", "ts", "value", ()),
    ("COMPLETED", "completed.parquet", "user_id", "offer_id", "event_id", "ts", "value", ()),
)
MAPPING = "mapping.toml"
HOLDOUT = "holdout.parquet"
TRUTH = "truth.npz"
MODE = 0o644  # shareable data, not secrets (the atomic writer's temp files are 0600)


def mapping_text(name: str, present: Collection[str]) -> str:
    """The TOML column mapping of the tables in ``present`` (file names; the tabular loader
    rejects a table without rows, so a small shop's empty ones are left out)."""
    lines = [f'name = "{name}"', ""]
    for label, file, key, props in NODES:
        if file not in present:
            continue
        lines += ["[[nodes]]", f'label = "{label}"', f'file = "{file}"', f'id = "{key}"',
                  "properties = { " + ", ".join(f'{p} = "{p}"' for p in props) + " }", ""]
    for rel, file, src, dst, eid, ts, value, props in EDGES:
        if file not in present:
            continue
        lines += ["[[edges]]", f'rel = "{rel}"', f'file = "{file}"', f'src = "{src}"',
                  f'dst = "{dst}"']
        lines += [f'{k} = "{v}"' for k, v in (("eid", eid), ("ts", ts), ("value", value)) if v]
        if props:
            lines.append("properties = { " + ", ".join(f'{p} = "{p}"' for p in props) + " }")
        lines.append("")
    return "\n".join(lines)


def files(present: Collection[str]) -> list[str]:
    """The files written, in mapping order: the mapping, the tables in ``present``, the holdout
    and the truth."""
    names = [n[1] for n in NODES] + [e[1] for e in EDGES]
    tables = [f for f in dict.fromkeys(names) if f in present]
    return [MAPPING, *tables, HOLDOUT, TRUTH]


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """One Parquet file (snappy, no index), atomically."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(path, MODE) as tmp:
        pq.write_table(table, tmp, compression="snappy")


def write_npz(path: Path, arrays: Mapping[str, np.ndarray | np.generic]) -> None:
    """Like ``np.savez_compressed`` without pickles, with fixed zip times: the same arrays give
    the same bytes (``np.savez`` stamps the current time into the archive)."""
    with atomic_path(path, MODE) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arrays[key]), allow_pickle=False)


def write_shop(out: Path, name: str, tables: Mapping[str, pd.DataFrame], holdout: pd.DataFrame,
               truth: Mapping[str, np.ndarray | np.generic]) -> list[str]:
    """Write the tables with rows (keyed by file name; an empty one is removed), the mapping,
    the holdout and the truth; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    present = [file for file, frame in tables.items() if len(frame)]
    for file, frame in tables.items():
        if len(frame):
            write_table(out / file, frame)
        else:
            (out / file).unlink(missing_ok=True)
    write_table(out / HOLDOUT, holdout)
    write_npz(out / TRUTH, truth)
    with atomic_path(out / MAPPING, MODE) as tmp:
        tmp.write_text(mapping_text(name, present), encoding="utf-8")
    users = len(tables["users.parquet"])
    converted = tables.get("converted.parquet")
    order_value = (float(converted["value"].mean()) if converted is not None and len(converted)
                   else 1.0)
    write_run_config(out / RUN_CONFIG, run_config(out, users, order_value),
                     RUN_CONFIG_HEADER)
    return [*files(present), RUN_CONFIG]


RUN_CONFIG = "run.toml"
OFFER_COSTS = {"discount": 4.0, "bogo": 5.0, "free_shipping": 2.0, "informational": 0.2}
"""Cost of one send of each offer in the written run configuration (money, like spend)."""


RUN_CONFIG_HEADER = """\
# shopgraph run configuration for this simulated shop: `shopgraph run run.toml`
#
# model: spectral (closed-form, seconds; its rank and item scaling are chosen on the held-out
#   part, then it is refitted on everything); or "lightgcn" with a time budget, e.g.
#   [run.train] max_seconds = 90.
# [run.target]: the audience for campaign-1's promoted items.
# [run.offers]: next offers, learnt from campaign-1's randomised arms, to raise conversions
#   (label), each worth the mean order value (value_per_response); kind = "logistic" because
#   calibrated LightGBM finds nothing worth sending here (docs/pipeline.md); cost: money per
#   send of each offer, like the order value.
# [run.loop]: `shopgraph loop run.toml`: a weekly campaign, each planned from every earlier
#   round's log, answered by this simulated shop (budget per round, cost per send)."""


def run_config(out: Path, users: int, order_value: float) -> RunConfig:
    """A ``shopgraph run`` configuration for the simulated shop in ``out`` (see
    docs/pipeline.md), with its file at ``out/run.toml``."""
    out = out.resolve()
    return RunConfig(
        file=out / RUN_CONFIG, source=out / MAPPING, format="tabular", model="spectral",
        truth=out / TRUTH, train=TrainConfig(),
        target=TargetConfig(campaign="campaign-1", n=max(10, users // 10), write_back=True),
        offers=OffersConfig(campaign="campaign-1", budget=float(max(10, users // 4)),
                            label="converted", kind="logistic",
                            value_per_response=round(order_value, 2), cost=dict(OFFER_COSTS)),
        loop=LoopConfig(budget=float(max(10, users // 4)), cost=dict(OFFER_COSTS)))


def numbered(prefix: str, n: int) -> np.ndarray:
    """``prefix`` + zero-padded 0..n-1, as an array of str."""
    width = len(str(max(n - 1, 0)))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width)).astype(object)


def event_ids(*parts: np.ndarray | str) -> np.ndarray:
    """Composite event ids, row by row (:func:`shopgraph.eventids.event_ids`, the ingest layer's
    rule: each part's ``%`` and ``:`` escaped, the parts joined with ``:``), as an object array.
    The simulator's parts (campaign, user and round ids, kinds, numbers) never hold ``%`` or
    ``:``, so its ids read ``campaign-1:u00042:received`` as they always did."""
    series = [p if isinstance(p, str) else pd.Series(np.asarray(p, dtype=object)).astype(str)
              for p in parts]
    ids: np.ndarray = shared_event_ids(*series).to_numpy(dtype=object)
    return ids
