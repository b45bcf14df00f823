"""Small inline-SVG plots, written by hand so the report needs no plotting library.

Every function returns one ``<svg>`` element as a string: well-formed XML (it parses with
:mod:`xml.etree.ElementTree` on its own), with a ``data-plot="<name>"`` attribute that names the
plot, a ``<title>`` for screen readers and tooltips, and every piece of text HTML/XML-escaped.
Non-finite values (NaN, inf) are dropped; a plot with nothing finite to show draws its axes and
says "no data". Axis ticks are "nice" numbers (1, 2, 2.5 or 5 times a power of ten) and the axis
range is widened to the outer ticks, so every drawn point lies inside the plot area.

The functions:

- :func:`line_chart`: one or more :class:`Series` against shared axes, optional reference lines.
- :func:`bar_chart`: grouped bars, vertical or horizontal, one group per category.
- :func:`roc_curve`: a ROC curve on the unit square with the chance diagonal.
- :func:`calibration_plot`: observed against predicted rates with the identity line, markers
  sized by the number of cases in each bin.
- :func:`interval_chart`: one estimate per category with its interval (a dot on a capped
  segment), optionally beside the true value (a hollow diamond).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#7f7f7f")
WIDTH, HEIGHT = 560, 340
MARGIN = {"left": 64, "right": 16, "top": 44, "bottom": 48}
LEGEND_ROW = 14  # pixels per row of legend; rows past the first push the plot area down


@dataclass(frozen=True)
class Series:
    """One line of a :func:`line_chart`.

    Args:
        label: the legend text.
        x: the x values.
        y: the y values, as many as ``x``.
        dashed: draw a dashed line (used for references and ground truth).
        markers: draw a dot at every point.
        color: a CSS colour (default: the palette, by position).
        legend: list the series in the legend (reference lines such as the diagonal need not).
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False
    markers: bool = False
    color: str | None = None
    legend: bool = True


def _finite(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``, the first <= lo, the last >= hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag * (1 + 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def fmt_tick(v: float, step: float) -> str:
    """A short tick label: ``12k`` / ``1.5M`` for large values, else just enough decimals."""
    if abs(v) >= 1e6 and step >= 1e5:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4 and step >= 1e3:
        return f"{v / 1e3:g}k"
    exact = (d for d in range(13) if abs(round(step, d) - step) <= 1e-9 * max(1.0, step))
    decimals = next(exact, 12)
    text = f"{v:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


class _Frame:
    """The plot area of one SVG: scales from data to pixels and the axes' markup."""

    def __init__(self, x_ticks: list[float], y_ticks: list[float], width: int,
                 height: int, legend_rows: int = 1) -> None:
        self.x_ticks, self.y_ticks = x_ticks, y_ticks
        self.width, self.height = width, height
        self.left = MARGIN["left"]
        self.top = MARGIN["top"] + LEGEND_ROW * max(legend_rows - 1, 0)
        self.right = width - MARGIN["right"]
        self.bottom = height - MARGIN["bottom"]

    def x(self, v: float) -> float:
        lo, hi = self.x_ticks[0], self.x_ticks[-1]
        return self.left + (min(max(v, lo), hi) - lo) / (hi - lo) * (self.right - self.left)

    def y(self, v: float) -> float:
        lo, hi = self.y_ticks[0], self.y_ticks[-1]
        return self.bottom - (min(max(v, lo), hi) - lo) / (hi - lo) * (self.bottom - self.top)

    def axes(self, x_label: str, y_label: str, x_labels: Sequence[str] | None = None,
             x_numeric: bool = True, y_numeric: bool = True) -> list[str]:
        """Grid, ticks, tick labels and axis titles."""
        parts = [f'<rect class="area" x="{self.left}" y="{self.top}" '
                 f'width="{self.right - self.left}" height="{self.bottom - self.top}" '
                 'fill="none" stroke="#999"/>']
        if y_numeric:
            step = self.y_ticks[1] - self.y_ticks[0]
            for t in self.y_ticks:
                py = self.y(t)
                parts.append(f'<line x1="{self.left}" y1="{py:.1f}" x2="{self.right}" '
                             f'y2="{py:.1f}" stroke="#e5e5e5"/>')
                parts.append(f'<text x="{self.left - 6}" y="{py + 4:.1f}" text-anchor="end" '
                             f'class="tick">{escape(fmt_tick(t, step))}</text>')
        if x_numeric:
            step = self.x_ticks[1] - self.x_ticks[0]
            for t in self.x_ticks:
                px = self.x(t)
                parts.append(f'<line x1="{px:.1f}" y1="{self.bottom}" x2="{px:.1f}" '
                             f'y2="{self.bottom + 5}" stroke="#999"/>')
                parts.append(f'<text x="{px:.1f}" y="{self.bottom + 18}" text-anchor="middle" '
                             f'class="tick">{escape(fmt_tick(t, step))}</text>')
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        parts.append(f'<text x="{cx:.1f}" y="{self.height - 8}" text-anchor="middle" '
                     f'class="axis-label">{escape(x_label)}</text>')
        parts.append(f'<text x="14" y="{cy:.1f}" text-anchor="middle" class="axis-label" '
                     f'transform="rotate(-90 14 {cy:.1f})">{escape(y_label)}</text>')
        return parts


def _svg(name: str, title: str, body: list[str], width: int, height: int) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{escape(name)}" '
            f'role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">')
    heading = (f'<text x="{MARGIN["left"]}" y="18" class="plot-title">{escape(title)}</text>')
    return "\n".join([head, f"<title>{escape(title)}</title>", heading, *body, "</svg>"])


def _legend(labels: Sequence[tuple[str, str, bool]], width: int) -> tuple[list[str], int]:
    """Swatches and labels under the title, wrapped to ``width``: the markup and its rows.

    A single entry needs no legend (the title says what it is): no markup, one row.
    """
    if len(labels) < 2:
        return [], 1
    parts, x, row = [], float(MARGIN["left"]), 0
    for label, color, dashed in labels:
        size = 30 + 6.2 * len(label)
        if x + size > width - MARGIN["right"] and x > MARGIN["left"]:
            x, row = float(MARGIN["left"]), row + 1
        y = 31 + LEGEND_ROW * row
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x + 18:.1f}" y2="{y}" stroke="{color}" '
                     f'stroke-width="2.5"{dash}/>')
        parts.append(f'<text x="{x + 22:.1f}" y="{y + 4}" class="legend">{escape(label)}</text>')
        x += size + 8
    return parts, row + 1


def _no_data(frame: _Frame) -> str:
    cx, cy = (frame.left + frame.right) / 2, (frame.top + frame.bottom) / 2
    return f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="middle" class="no-data">no data</text>'


def _runs(xs: Sequence[float], ys: Sequence[float]) -> list[list[tuple[float, float]]]:
    """Split paired values into runs of finite points (a NaN breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys):
        if _finite(x) and _finite(y):
            runs[-1].append((float(x), float(y)))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _check_pairs(label: str, xs: Sequence[float], ys: Sequence[float]) -> None:
    if len(xs) != len(ys):
        raise ValueError(f"series {label!r} has {len(xs)} x values but {len(ys)} y values")


def _lines(series: Sequence[Series], x_label: str, y_label: str,
           x_range: tuple[float, float] | None, y_range: tuple[float, float] | None,
           vlines: Sequence[tuple[float, str]], hlines: Sequence[tuple[float, str]],
           width: int, height: int, x_integer: bool = False) -> tuple[_Frame, list[str]]:
    """The frame and markup of :func:`line_chart`, for plots that add to it."""
    for s in series:
        _check_pairs(s.label, s.x, s.y)
    runs = [_runs(s.x, s.y) for s in series]
    points = [p for rs in runs for r in rs for p in r]
    xs = [p[0] for p in points] + [v for v, _ in vlines if _finite(v)]
    ys = [p[1] for p in points] + [v for v, _ in hlines if _finite(v)]
    x_lo, x_hi = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    y_lo, y_hi = y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0))
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    legend, rows = _legend([(s.label, c, s.dashed) for s, c in zip(series, colors)
                            if s.legend], width)
    x_ticks = nice_ticks(x_lo, x_hi)
    if x_integer and x_ticks[1] - x_ticks[0] < 1:  # counts (rounds, epochs): no 0.5 ticks
        first, last = math.floor(x_lo), math.ceil(x_hi)
        x_ticks = [float(t) for t in range(first, max(last, first + 1) + 1)]
    frame = _Frame(x_ticks, nice_ticks(y_lo, y_hi), width, height, rows)
    body = frame.axes(x_label, y_label)
    for v, label in vlines:
        if _finite(v):
            px = frame.x(v)
            body.append(f'<line class="ref" x1="{px:.1f}" y1="{frame.top}" x2="{px:.1f}" '
                        f'y2="{frame.bottom}" stroke="#555" stroke-dasharray="2 3"/>')
            body.append(f'<text x="{px + 4:.1f}" y="{frame.top + 12}" class="ref-label">'
                        f"{escape(label)}</text>")
    for v, label in hlines:
        if _finite(v):
            py = frame.y(v)
            body.append(f'<line class="ref" x1="{frame.left}" y1="{py:.1f}" x2="{frame.right}" '
                        f'y2="{py:.1f}" stroke="#555" stroke-dasharray="2 3"/>')
            body.append(f'<text x="{frame.left + 4}" y="{py - 4:.1f}" '
                        f'class="ref-label">{escape(label)}</text>')
    for s, rs, color in zip(series, runs, colors):
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for run in rs:
            pts = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in run)
            body.append(f'<polyline class="series" data-series="{escape(s.label)}" '
                        f'points="{pts}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
            if s.markers or len(run) == 1:
                body.extend(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" '
                            f'fill="{color}"/>' for x, y in run)
    if not points:
        body.append(_no_data(frame))
    body.extend(legend)
    return frame, body


def line_chart(name: str, title: str, series: Sequence[Series], *, x_label: str = "",
               y_label: str = "", x_range: tuple[float, float] | None = None,
               y_range: tuple[float, float] | None = None, vlines: Sequence[tuple[float, str]] = (),
               hlines: Sequence[tuple[float, str]] = (), x_integer: bool = False,
               width: int = WIDTH, height: int = HEIGHT) -> str:
    """Lines (and optional markers) of one or more series against shared numeric axes.

    Args:
        name: the ``data-plot`` attribute.
        title: shown above the plot and as its ``<title>``.
        series: the lines; x and y of each must have the same length.
        x_label: the x axis title.
        y_label: the y axis title.
        x_range: fixed ``(lo, hi)`` of the x axis (default: the data's, widened to nice ticks).
        y_range: fixed ``(lo, hi)`` of the y axis (default: the data's, widened to nice ticks).
        vlines: vertical reference lines as ``(x, label)``.
        hlines: horizontal reference lines as ``(y, label)``.
        x_integer: the x values are counts (rounds, epochs): ticks at whole numbers only.
        width: SVG width in pixels (default: 560).
        height: SVG height in pixels (default: 340).

    Raises:
        ValueError: when a series' x and y differ in length.
    """
    frame, body = _lines(series, x_label, y_label, x_range, y_range, vlines, hlines, width, height,
                         x_integer)
    return _svg(name, title, body, width, height)


def bar_chart(name: str, title: str, categories: Sequence[str],
              series: Mapping[str, Sequence[float]], *, value_label: str = "",
              horizontal: bool = False, width: int = WIDTH, height: int | None = None) -> str:
    """Grouped bars: one group per category, one bar per series in each group.

    Args:
        name: the ``data-plot`` attribute.
        title: shown above the plot and as its ``<title>``.
        categories: the group labels.
        series: legend label -> one value per category (a non-finite value leaves a gap).
        value_label: the value axis title.
        horizontal: bars run left to right, categories down the side (for long labels).
        width: SVG width in pixels (default: 560).
        height: SVG height in pixels (default: 340, or enough rows when horizontal).

    Raises:
        ValueError: when a series does not have one value per category.
    """
    for label, values in series.items():
        if len(values) != len(categories):
            raise ValueError(f"series {label!r} has {len(values)} values for "
                             f"{len(categories)} categories")
    values = [v for vs in series.values() for v in vs if _finite(v)]
    ticks = nice_ticks(min([0.0, *values]), max([0.0, *values]) if values else 1.0)
    n_series = max(len(series), 1)
    colors = [PALETTE[j % len(PALETTE)] for j in range(len(series))]
    legend, rows = _legend([(label, c, False) for label, c in zip(series, colors)], width)
    if height is None:
        height = HEIGHT if not horizontal else \
            MARGIN["top"] + LEGEND_ROW * (rows - 1) + MARGIN["bottom"] \
            + max(len(categories), 1) * (10 + 14 * n_series)
    if horizontal:
        # Categories down the left side need a wider margin than numbers do.
        pad = min(max((len(c) for c in categories), default=4) * 7, 200)
        frame = _Frame(ticks, [0.0, 1.0], width, height, rows)
        frame.left = max(MARGIN["left"], pad + 12)
        body = frame.axes(value_label, "", y_numeric=False)
    else:
        frame = _Frame([0.0, 1.0], ticks, width, height, rows)
        body = frame.axes("", value_label, x_numeric=False)
    span = (frame.bottom - frame.top) if horizontal else (frame.right - frame.left)
    slot = span / max(len(categories), 1)
    bar = slot * 0.8 / n_series
    zero = frame.x(0.0) if horizontal else frame.y(0.0)
    for j, ((label, vals), color) in enumerate(zip(series.items(), colors)):
        for i, v in enumerate(vals):
            if not _finite(v):
                continue
            offset = i * slot + slot * 0.1 + j * bar
            tip = f"<title>{escape(str(categories[i]))}, {escape(str(label))}: {v:,.4g}</title>"
            if horizontal:
                end = frame.x(v)
                body.append(f'<rect class="bar" x="{min(zero, end):.1f}" '
                            f'y="{frame.top + offset:.1f}" width="{abs(end - zero):.1f}" '
                            f'height="{bar:.1f}" fill="{color}">{tip}</rect>')
            else:
                end = frame.y(v)
                body.append(f'<rect class="bar" x="{frame.left + offset:.1f}" '
                            f'y="{min(zero, end):.1f}" width="{bar:.1f}" '
                            f'height="{abs(end - zero):.1f}" fill="{color}">{tip}</rect>')
    for i, cat in enumerate(categories):
        mid = i * slot + slot / 2
        if horizontal:
            body.append(f'<text x="{frame.left - 6}" y="{frame.top + mid + 4:.1f}" '
                        f'text-anchor="end" class="tick">{escape(cat)}</text>')
        else:
            body.append(f'<text x="{frame.left + mid:.1f}" y="{frame.bottom + 18}" '
                        f'text-anchor="middle" class="tick">{escape(cat)}</text>')
    if not values:
        body.append(_no_data(frame))
    body.extend(legend)
    return _svg(name, title, body, width, height)


def roc_curve(name: str, title: str, fpr: Sequence[float], tpr: Sequence[float], *,
              label: str = "model", truth: tuple[Sequence[float], Sequence[float]] | None = None,
              width: int = 400, height: int = 360) -> str:
    """A ROC curve on the unit square with the chance diagonal.

    Args:
        name: the ``data-plot`` attribute.
        title: shown above the plot and as its ``<title>``.
        fpr: false-positive rates, ascending.
        tpr: true-positive rates, one per ``fpr``.
        label: the legend text of the curve (put the AUC here).
        truth: an optional second curve ``(fpr, tpr)``, drawn dashed (e.g. the ROC of the true
            probabilities on simulated data).
        width: SVG width in pixels (default: 400).
        height: SVG height in pixels (default: 360).
    """
    series = [Series(label, fpr, tpr)]
    if truth is not None:
        series.append(Series("true probabilities", truth[0], truth[1], dashed=True))
    series.append(Series("chance", [0.0, 1.0], [0.0, 1.0], dashed=True, color="#999",
                         legend=False))
    return line_chart(name, title, series, x_label="false-positive rate",
                      y_label="true-positive rate", x_range=(0.0, 1.0), y_range=(0.0, 1.0),
                      width=width, height=height)


def calibration_plot(name: str, title: str, predicted: Sequence[float],
                     observed: Sequence[float], count: Sequence[float] | None = None, *,
                     width: int = 400, height: int = 360) -> str:
    """Observed rate against mean predicted probability per bin, with the identity line.

    Args:
        name: the ``data-plot`` attribute.
        title: shown above the plot and as its ``<title>``.
        predicted: mean predicted probability of each bin.
        observed: observed rate of each bin.
        count: cases per bin; markers' areas follow it (default: equal markers).
        width: SVG width in pixels (default: 400).
        height: SVG height in pixels (default: 360).

    Raises:
        ValueError: when the lists differ in length.
    """
    _check_pairs("calibration", predicted, observed)
    if count is not None and len(count) != len(predicted):
        raise ValueError(f"calibration has {len(predicted)} bins but {len(count)} counts")
    hi = max([1e-9, *(v for v in [*predicted, *observed] if _finite(v))])
    top = 1.0 if hi > 0.5 else nice_ticks(0.0, hi)[-1]  # rare events: zoom into the corner
    frame, body = _lines([Series("model", predicted, observed),
                          Series("perfectly calibrated", [0.0, top], [0.0, top], dashed=True,
                                 color="#999", legend=False)],
                         "mean predicted probability", "observed rate", (0.0, top), (0.0, top),
                         (), (), width, height)
    finite_counts = [c for c in (count if count is not None else []) if _finite(c) and c > 0]
    biggest = max(finite_counts, default=1.0)
    for i, (p, o) in enumerate(zip(predicted, observed)):
        if not (_finite(p) and _finite(o)):
            continue
        c = count[i] if count is not None else None
        sized = c is not None and _finite(c) and c > 0
        r = 2.5 + 5.5 * math.sqrt(c / biggest) if sized and c is not None else 3.5
        tip = f"predicted {p:.3f}, observed {o:.3f}" + (f", {c:,.0f} cases" if sized else "")
        body.append(f'<circle class="bin" cx="{frame.x(p):.1f}" cy="{frame.y(o):.1f}" '
                    f'r="{r:.1f}" fill="{PALETTE[0]}" fill-opacity="0.6">'
                    f"<title>{escape(tip)}</title></circle>")
    return _svg(name, title, body, width, height)


def interval_chart(name: str, title: str, categories: Sequence[str], estimate: Sequence[float],
                   low: Sequence[float], high: Sequence[float], *,
                   truth: Sequence[float] | None = None, label: str = "estimate",
                   truth_label: str = "true", value_label: str = "", width: int = WIDTH,
                   height: int = HEIGHT) -> str:
    """Estimates with their intervals, one per category, optionally beside the true values.

    Each category gets a capped vertical segment from ``low`` to ``high`` with a dot at the
    estimate; a true value is a hollow diamond on the same vertical, so an interval that misses
    the truth is plain to see. A non-finite value leaves out its part (a dot without interval,
    an interval without dot, no diamond).

    Args:
        name: the ``data-plot`` attribute.
        title: shown above the plot and as its ``<title>``.
        categories: one label per estimate, along the x axis.
        estimate: the point estimates.
        low: the intervals' lower ends.
        high: the intervals' upper ends.
        truth: the true values (default: none drawn).
        label: the legend text of the estimates.
        truth_label: the legend text of the true values.
        value_label: the value axis title.
        width: SVG width in pixels (default: 560).
        height: SVG height in pixels (default: 340).

    Raises:
        ValueError: when a list does not have one value per category.
    """
    columns = {"estimate": estimate, "low": low, "high": high}
    if truth is not None:
        columns["truth"] = truth
    for what, vals in columns.items():
        if len(vals) != len(categories):
            raise ValueError(f"{what} has {len(vals)} values for {len(categories)} categories")
    values = [float(v) for vals in columns.values() for v in vals if _finite(v)]
    ticks = nice_ticks(min(values), max(values)) if values else nice_ticks(0.0, 1.0)
    est_color, true_color = PALETTE[0], PALETTE[1]
    legend, rows = _legend([(label, est_color, False)]
                           + ([(truth_label, true_color, False)] if truth is not None else []),
                           width)
    frame = _Frame([0.0, 1.0], ticks, width, height, rows)
    body = frame.axes("", value_label, x_numeric=False)
    slot = (frame.right - frame.left) / max(len(categories), 1)
    every = max(1, math.ceil(len(categories) * 40 / (frame.right - frame.left)))  # label room
    cap = min(6.0, slot * 0.25)
    for i, cat in enumerate(categories):
        cx = frame.left + slot * (i + 0.5)
        e, lo, hi = estimate[i], low[i], high[i]
        tip = escape(f"{cat}: {label} " + (f"{e:,.4g}" if _finite(e) else "n/a")
                     + (f" [{lo:,.4g}, {hi:,.4g}]" if _finite(lo) and _finite(hi) else ""))
        if _finite(lo) and _finite(hi):
            y0, y1 = frame.y(lo), frame.y(hi)
            body.append(f'<line class="interval" x1="{cx:.1f}" y1="{y0:.1f}" x2="{cx:.1f}" '
                        f'y2="{y1:.1f}" stroke="{est_color}" stroke-width="2">'
                        f"<title>{tip}</title></line>")
            body.extend(f'<line x1="{cx - cap:.1f}" y1="{y:.1f}" x2="{cx + cap:.1f}" '
                        f'y2="{y:.1f}" stroke="{est_color}" stroke-width="2"/>' for y in (y0, y1))
        if _finite(e):
            body.append(f'<circle class="estimate" cx="{cx:.1f}" cy="{frame.y(e):.1f}" r="4" '
                        f'fill="{est_color}"><title>{tip}</title></circle>')
        if truth is not None and _finite(truth[i]):
            t = float(truth[i])
            ty = frame.y(t)
            body.append(f'<path class="truth" data-x="{cx:.1f}" data-y="{ty:.1f}" '
                        f'd="M{cx:.1f},{ty - 6:.1f} L{cx + 6:.1f},{ty:.1f} L{cx:.1f},{ty + 6:.1f} '
                        f'L{cx - 6:.1f},{ty:.1f} Z" fill="none" stroke="{true_color}" '
                        f'stroke-width="2"><title>{escape(f"{cat}: {truth_label} {t:,.4g}")}'
                        "</title></path>")
        if i % every == 0:
            body.append(f'<text x="{cx:.1f}" y="{frame.bottom + 18}" text-anchor="middle" '
                        f'class="tick">{escape(str(cat))}</text>')
    if not values:
        body.append(_no_data(frame))
    body.extend(legend)
    return _svg(name, title, body, width, height)
