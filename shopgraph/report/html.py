"""HTML pieces the report's sections share: number formatting, tables, figure rows and
lookups in a results section (:mod:`shopgraph.report.build`)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, TypeGuard

NA = "n/a"



def is_num(v: object) -> TypeGuard[numbers.Real]:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def fmt(v: object) -> str:
    """A value as escaped table text: ``12,345``, ``0.1235``, ``1,234.5``, ``yes``, ``n/a``."""
    if v is None:
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if is_num(v):
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            return NA
        if f != 0 and abs(f) < 1e-3:
            return f"{f:.3g}"
        return f"{f:,.1f}" if abs(f) >= 1000 else f"{f:.4g}"
    return escape(str(v))


def is_scalar(v: object) -> bool:
    return v is None or isinstance(v, str | bool) or is_num(v)


def floats(values: object, where: str) -> list[float]:
    """A list of numbers (``None`` -> NaN), or ValueError naming ``where``."""
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise ValueError(f"{where} should be a list of numbers, got {type(values).__name__}")
    out = []
    for v in values:  # type: ignore[attr-defined]
        if v is not None and not is_num(v):
            raise ValueError(f"{where} should hold numbers, got {v!r}")
        out.append(float("nan") if v is None else float(v))
    return out


def curve(sec: Mapping[str, Any], key: str, x: str, y: str) -> tuple[list[float], list[float]]:
    c = sec[key]
    if not isinstance(c, Mapping):
        raise ValueError(f"{key} should be a dict with {x!r} and {y!r}")
    return floats(c[x], f"{key}.{x}"), floats(c[y], f"{key}.{y}")


def truth_of(sec: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(sec, "truth")


def mapping(sec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``sec[key]`` when it is a dict, else an empty one."""
    t = sec.get(key)
    return t if isinstance(t, Mapping) else {}


def label(key: object) -> str:
    return escape(str(key).replace("_", " "))


def table(rows: Sequence[Sequence[str]], head: Sequence[str], true_cols: Sequence[int] = ()
          ) -> str:
    """An HTML table from already-escaped cells; ``true_cols`` are shaded as ground truth."""
    cls = [' class="true"' if i in true_cols else "" for i in range(len(head))]
    th = "".join(f"<th{c}>{h}</th>" for c, h in zip(cls, head))
    body = "".join("<tr>" + "".join(f"<td{c}>{v}</td>" for c, v in zip(cls, r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def compare_table(estimates: Mapping[str, Any], truth: Mapping[str, Any] | None = None,
                  skip: Sequence[str] = ()) -> str:
    """Scalars of ``estimates`` as rows, with an "true" column when ``truth`` holds any.

    Truth scalars the estimates lack get rows of their own, with an empty estimate.
    """
    truth = {k: v for k, v in (truth or {}).items() if is_scalar(v) and k not in skip}
    keys = [k for k, v in estimates.items() if is_scalar(v) and k not in skip and k != "truth"]
    keys += [k for k in truth if k not in keys]
    if not keys:
        return ""
    if not truth:
        return table([[label(k), fmt(estimates.get(k))] for k in keys], ["", "value"])
    rows = [[label(k), cell(estimates, k), cell(truth, k)] for k in keys]
    return table(rows, ["", "estimated", "true"], true_cols=(2,))


def cell(values: Mapping[str, Any], key: str) -> str:
    """``values[key]`` formatted, or an empty cell when it is not given at all."""
    return fmt(values[key]) if key in values else ""


def row(*figures: str) -> str:
    return '<div class="row">' + "".join(f"<figure>{f}</figure>" for f in figures if f) + "</div>"


# --- sections -----------------------------------------------------------------------------

