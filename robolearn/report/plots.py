"""Figures for reports: learning curves with confidence bands and interval plots of final scores.

Figures are built on matplotlib's object API with the Agg canvas, never pyplot, so making a report
neither needs a display nor changes the backend of a notebook or program that imports us.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from robolearn.report.curves import Curve
from robolearn.report.results import AggregateResult, GroupResult
from robolearn.utils.io import atomic_write_bytes

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
FALLBACK = matplotlib.colormaps["tab20"]

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "svg.fonttype": "path",  # text as paths: the SVG renders the same without our fonts
    "svg.hashsalt": "robolearn-report",  # stable element ids, so the same data gives the same file
}

PNG_DPI = 200


def _style(**overrides: Any) -> AbstractContextManager[None]:
    """Our rcParams for the duration of a with-block, leaving the caller's settings untouched."""
    return matplotlib.rc_context(cast(Any, {**STYLE, **overrides}))


@dataclass(frozen=True)
class SavedFigure:
    """A figure written as PNG and SVG; the SVG text is kept for inlining into HTML."""

    name: str
    title: str
    caption: str
    png: Path
    svg: Path
    svg_bytes: bytes


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A fixed colour per method, the same in every figure of a report."""
    out = {}
    for i, m in enumerate(sorted(methods)):
        out[m] = PALETTE[i] if i < len(PALETTE) else matplotlib.colors.to_hex(FALLBACK(i % 20))
    return out


def slug(text: str) -> str:
    """A file-name-safe version of an env id or method label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


def format_steps(value: float, _pos: int | None = None) -> str:
    """Axis label for environment steps: 0, 500, 20k, 1.5M."""
    v = abs(value)
    if v >= 1e6:
        return f"{value / 1e6:g}M"
    if v >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def learning_curve_figure(
    curves: Sequence[Curve], env_id: str, colors: dict[str, str], confidence: float
) -> Figure:
    """Evaluation return against steps for every method on one env, with bootstrap bands."""
    with _style():
        fig = Figure(figsize=(5.0, 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for c in sorted(curves, key=lambda c: c.method):
            color = colors[c.method]
            marker = "o" if len(c.steps) < 3 else None
            ax.plot(c.steps, c.center, color=color, label=f"{c.method} (n={c.n_runs})", marker=marker, ms=3)
            ax.fill_between(c.steps, c.low, c.high, color=color, alpha=0.2, linewidth=0)
        stat = curves[0].statistic.upper() if curves[0].statistic == "iqm" else "Mean"
        ax.set_title(env_id)
        ax.set_xlabel("Environment steps")
        ax.set_ylabel(f"{stat} evaluation return")
        ax.xaxis.set_major_formatter(FuncFormatter(format_steps))
        ax.margins(x=0.01)
        ax.legend(loc="best", frameon=False)
    return fig


def interval_figure(
    rows_by_panel: dict[str, list[tuple[str, float, float, float]]],
    colors: dict[str, str],
    xlabel: str,
) -> Figure:
    """rliable-style interval plot: one panel per key, one row per method (point and CI bar)."""
    panels = list(rows_by_panel)
    n_methods = max(len(rows) for rows in rows_by_panel.values())
    # At most three panels a row, so that many envs wrap instead of shrinking the text.
    n_cols = min(3, len(panels))
    n_grid_rows = math.ceil(len(panels) / n_cols)
    with _style(**{"axes.grid": False}):
        fig = Figure(
            figsize=(2.4 * n_cols + 0.8, (0.4 * n_methods + 1.0) * n_grid_rows),
            layout="constrained",
        )
        FigureCanvasAgg(fig)
        axes = fig.subplots(n_grid_rows, n_cols, squeeze=False).ravel()
        for ax in axes[len(panels) :]:
            ax.set_axis_off()
        for ax, panel in zip(axes, panels, strict=False):
            rows = rows_by_panel[panel]
            for i, (method, point, low, high) in enumerate(reversed(rows)):
                color = colors[method]
                ax.barh(i, high - low, left=low, height=0.6, color=color, alpha=0.75)
                ax.vlines(point, i - 0.3, i + 0.3, color="black", linewidth=1.4)
            ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
            ax.set_title(panel)
            ax.set_xlabel(xlabel)
            ax.grid(axis="x", alpha=0.25)
            ax.spines["left"].set_visible(False)
            ax.tick_params(axis="y", length=0)
            ax.set_ylim(-0.6, len(rows) - 0.4)
    return fig


def final_return_figure(groups: Sequence[GroupResult], colors: dict[str, str], confidence: float) -> Figure:
    """Final-return IQM with CI for every method, one panel per env."""
    panels: dict[str, list[tuple[str, float, float, float]]] = {}
    for g in sorted(groups, key=lambda g: (g.env_id, g.method)):
        panels.setdefault(g.env_id, []).append((g.method, g.iqm.point, g.iqm.low, g.iqm.high))
    return interval_figure(panels, colors, f"Final return: IQM, {confidence:.0%} CI")


def normalized_figure(
    aggregates: Sequence[AggregateResult], colors: dict[str, str], confidence: float
) -> Figure:
    """Normalised score pooled over envs: IQM and mean with CIs."""
    panels = {
        "IQM": [(a.method, a.iqm.point, a.iqm.low, a.iqm.high) for a in aggregates],
        "Mean": [(a.method, a.mean.point, a.mean.low, a.mean.high) for a in aggregates],
    }
    return interval_figure(panels, colors, f"Normalised score, {confidence:.0%} CI")


def save_figure(fig: Figure, out_dir: Path, name: str, title: str, caption: str) -> SavedFigure:
    """Write the figure as out_dir/name.png and .svg (atomically) and keep the SVG for inlining."""
    with _style():
        png, svg = io.BytesIO(), io.BytesIO()
        # No creation date in the files: the same results give byte-identical figures.
        fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    png_path, svg_path = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    atomic_write_bytes(png_path, png.getvalue())
    atomic_write_bytes(svg_path, svg.getvalue())
    return SavedFigure(name, title, caption, png_path, svg_path, svg.getvalue())
