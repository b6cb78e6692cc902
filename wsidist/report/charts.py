"""Seed 000's ``slide_stats`` charts (and stage 2's) as PNGs, with axes, units and counts.

matplotlib with its Agg canvas and explicit figures: no pyplot, no global state. Each chart
is a function of the dataset rows; a chart with nothing to show is left out.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

Row = dict[str, Any]
SIZE_IN = (6.4, 4.0)
DPI = 120
BAR_COLOR = "#3b528b"
STATUS_COLORS = {"ok": "#2a9d55", "failed": "#c0392b", "flagged": "#e09f1f"}


def _values(rows: Sequence[Row], key: str) -> np.ndarray:
    vals = [r.get(key) for r in rows]
    return np.array([float(v) for v in vals if v is not None and np.isfinite(float(v))])


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _histogram(values: np.ndarray, title: str, xlabel: str, *, log: bool = False):
    fig, ax = _figure()
    if log and values.min() > 0 and values.max() / values.min() > 50:
        bins = np.geomspace(values.min(), values.max(), 30)
        ax.set_xscale("log")
    else:
        bins = min(30, max(5, int(np.sqrt(len(values))) + 1))
    ax.hist(values, bins=bins, color=BAR_COLOR, edgecolor="white")
    median = float(np.median(values))
    ax.axvline(median, color="#c0392b", linestyle="--", linewidth=1.2)
    ax.set_title(f"{title}\n(n = {len(values):,}; dashed line: median {median:.3g})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("slides")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _bars(counts: Counter, title: str, xlabel: str, colors: dict[str, str] | None = None):
    fig, ax = _figure()
    items = counts.most_common(12)
    labels = [str(k) for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    color = [(colors or {}).get(k, BAR_COLOR) for k in labels]
    bars = ax.barh(labels, values, color=color)
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.15)
    return fig


def size_chart(rows: Sequence[Row]):
    v = _values(rows, "mpix")
    return _histogram(v, "Slide size", "level-0 size (megapixels)", log=True) if v.size else None


def dimensions_chart(rows: Sequence[Row]):
    w, h = _values(rows, "width"), _values(rows, "height")
    if not w.size or w.size != h.size:
        return None
    fig, ax = _figure()
    ax.scatter(w, h, s=14, alpha=0.6, color=BAR_COLOR)
    ax.set_title(f"Slide width and height (n = {len(w):,})")
    ax.set_xlabel("width (px, level 0)")
    ax.set_ylabel("height (px, level 0)")
    ax.grid(alpha=0.3)
    return fig


def tissue_chart(rows: Sequence[Row]):
    v = _values([r for r in rows if r.get("status") == "ok"], "tissue_pct")
    return _histogram(v, "Tissue per slide", "tissue (% of slide area)") if v.size else None


def tiles_chart(rows: Sequence[Row]):
    v = _values([r for r in rows if r.get("status") == "ok"], "n_tissue_tiles")
    return _histogram(v, "Tissue tiles per slide", "tissue tiles per slide") if v.size else None


def time_chart(rows: Sequence[Row]):
    v = _values(rows, "seconds")
    return (
        _histogram(v, "Stage-1 time per slide", "time per slide (s)", log=True) if v.size else None
    )


def vendor_chart(rows: Sequence[Row]):
    counts = Counter(r.get("vendor") or "unknown" for r in rows)
    return _bars(counts, "Slides per vendor", "slides") if rows else None


def status_chart(rows: Sequence[Row]):
    counts = Counter(r.get("status") or "unknown" for r in rows)
    flagged = sum(1 for r in rows if r.get("status") == "ok" and (r.get("warning") or r.get("qc")))
    if flagged:
        counts["flagged"] = flagged
    return _bars(counts, "Slides per status (flagged: ok with a warning or QC flag)", "slides",
                 STATUS_COLORS) if rows else None  # fmt: skip


def saved_chart(rows: Sequence[Row]):
    v = _values([r for r in rows if r.get("pyr_status") == "ok"], "reduction_pct")
    if not v.size:
        return None
    fig = _histogram(v, "Stage 2: size saved", "size saved (% of source file)")
    saved = _values([r for r in rows if r.get("pyr_status") == "ok"], "saved_bytes").sum()
    fig.axes[0].set_title(f"Stage 2: size saved (n = {len(v):,}, {saved / 1e9:.3g} GB in all)")
    return fig


def ssim_chart(rows: Sequence[Row]):
    v = _values([r for r in rows if r.get("pyr_status") == "ok"], "ssim")
    return (
        _histogram(v, "Stage 2: SSIM to the source", "SSIM (mean over sampled tissue tiles)")
        if v.size
        else None
    )


CHARTS: dict[str, tuple[str, Callable[[Sequence[Row]], Any]]] = {
    "status": ("Status", status_chart),
    "vendor": ("Vendors", vendor_chart),
    "size": ("Slide size", size_chart),
    "dimensions": ("Width and height", dimensions_chart),
    "tissue": ("Tissue", tissue_chart),
    "tiles": ("Tiles", tiles_chart),
    "time": ("Time", time_chart),
    "saved": ("Size saved", saved_chart),
    "ssim": ("SSIM", ssim_chart),
}


def render_charts(rows: Sequence[Row], names: Sequence[str] | None = None) -> dict[str, bytes]:
    """PNG bytes of every chart that has data, by name (in :data:`CHARTS` order)."""
    out = {}
    for name, (_, make) in CHARTS.items():
        if names is not None and name not in names:
            continue
        fig = make(rows)
        if fig is not None:
            out[name] = _png(fig)
    return out
