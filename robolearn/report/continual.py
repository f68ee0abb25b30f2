"""Continual-run figures and table: the T x T prediction-error heat map and per-task return curves.

A continual run (`python -m robolearn.continual`) writes `continual/returns` and
`continual/pred_error` (T x T, row i = after learning task i, column j = task j, null above the
diagonal) to summary.json. `robolearn.report` finds such runs among the ones it collects and adds,
per sequence, one heat-map figure and one return-curve figure (a panel per learner, seeds averaged)
and a table of the continual metrics (robolearn.mbrl.continual.metrics). `plot_continual_run` draws
the same figures for one run directory.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from robolearn.errors import UserError
from robolearn.mbrl.continual.metrics import forward_transfer, summarize
from robolearn.report import plots
from robolearn.report.collect import Collection, Run
from robolearn.report.plots import SavedFigure
from robolearn.report.render import Cell, Section, Table, fmt

RETURNS_KEY = "continual/returns"
PRED_ERROR_KEY = "continual/pred_error"
REFERENCE_KEY = "continual/reference"  # optional: per-task reference (random-policy) returns


@dataclass(frozen=True)
class ContinualRun:
    """The matrices of one continual run."""

    label: str
    method: str
    sequence: str
    seed: int | None
    returns: np.ndarray  # [T, T], NaN above the diagonal
    pred_error: np.ndarray  # [T, T]
    reference: np.ndarray | None  # [T] or None
    task_names: tuple[str, ...] = ()  # from the run's saved sequence, when it has them


def _matrix(rows: Any, key: str, where: str) -> np.ndarray:
    try:
        m = np.array([[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{where}: summary.json {key} is not a matrix of numbers") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise UserError(f"{where}: summary.json {key} has shape {m.shape}; a continual run's is T x T")
    return m


def _config_task_names(config: Mapping[str, Any]) -> tuple[str, ...]:
    # robolearn.continual composes the sequence into the run's config: its task names are there.
    node = config.get("sequence")
    tasks = node.get("tasks") if isinstance(node, Mapping) else None
    if not isinstance(tasks, list):
        return ()
    return tuple(
        str(t.get("name") or f"task{j}") if isinstance(t, Mapping) else f"task{j}"
        for j, t in enumerate(tasks)
    )


def _config_sequence_name(config: Mapping[str, Any]) -> str | None:
    node = config.get("sequence")
    if isinstance(node, Mapping):
        return str(node.get("name")) if node.get("name") else None
    return str(node) if node else None


def continual_from_summary(
    summary: Mapping[str, Any],
    *,
    label: str,
    method: str,
    sequence: str,
    seed: int | None,
    names: Sequence[str] = (),
) -> ContinualRun | None:
    """The run's matrices, or None when the summary is not a continual run's."""
    if RETURNS_KEY not in summary or PRED_ERROR_KEY not in summary:
        return None
    returns = _matrix(summary[RETURNS_KEY], RETURNS_KEY, label)
    pred = _matrix(summary[PRED_ERROR_KEY], PRED_ERROR_KEY, label)
    if pred.shape != returns.shape:
        raise UserError(
            f"{label}: {PRED_ERROR_KEY} is {pred.shape}, {RETURNS_KEY} {returns.shape}; both are T x T"
        )
    ref = summary.get(REFERENCE_KEY)
    reference = None
    if isinstance(ref, list) and len(ref) == len(returns):
        reference = np.array([math.nan if v is None else float(v) for v in ref], dtype=np.float64)
    names = tuple(names) if len(names) == len(returns) else ()
    return ContinualRun(label, method, sequence, seed, returns, pred, reference, names)


def load_continual_run(run_dir: Path) -> ContinualRun:
    """A continual run directory's matrices (summary.json; labels from config.yaml when present)."""
    import yaml

    summary_path = Path(run_dir) / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{run_dir} has no summary.json; give a finished continual run directory")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    config: dict[str, Any] = {}
    if (Path(run_dir) / "config.yaml").is_file():
        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8")) or {}
    learner = config.get("learner") if isinstance(config.get("learner"), dict) else {}
    run = continual_from_summary(
        summary,
        label=str(run_dir),
        method=str((learner or {}).get("name") or "continual"),
        sequence=_config_sequence_name(config) or "sequence",
        seed=summary.get("seed", config.get("seed")),
        names=_config_task_names(config),
    )
    if run is None:
        raise UserError(
            f"{run_dir}/summary.json has no {RETURNS_KEY} and {PRED_ERROR_KEY}; is it a continual run?"
        )
    return run


@functools.lru_cache(maxsize=32)
def task_names(sequence: str, num_tasks: int) -> tuple[str, ...]:
    """The sequence's task names when it still loads with that many tasks, else task0, task1, ..."""
    try:
        from robolearn.mbrl.sequences import load_sequence

        names = tuple(load_sequence(sequence).task_names)
    except (UserError, OSError, ValueError):
        names = ()
    return names if len(names) == num_tasks else tuple(f"task{j}" for j in range(num_tasks))


def _stack(runs: Sequence[ContinualRun], attr: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        stacked = np.stack([getattr(r, attr) for r in runs])
        finite = np.isfinite(stacked).sum(0)
        total = np.where(np.isfinite(stacked), stacked, 0).sum(0)
        return np.where(finite > 0, total / np.maximum(finite, 1), np.nan)


def pred_error_heatmap(panels: Mapping[str, np.ndarray], names: Sequence[str], title: str) -> Figure:
    """Held-out one-step prediction error after learning task i (rows) on task j (columns), a panel per key."""
    keys = list(panels)
    values = np.concatenate([m[np.isfinite(m)].ravel() for m in panels.values()] or [np.zeros(0)])
    positive = values[values > 0]
    norm = LogNorm(vmin=float(positive.min()), vmax=float(positive.max())) if positive.size else None
    t = len(names)
    cell = 0.45 + 0.05 * max(0, 8 - t)
    with plots._style(**{"axes.grid": False}):
        fig = Figure(
            figsize=(max(2.6, cell * t + 1.4) * len(keys) + 0.8, cell * t + 1.6), layout="constrained"
        )
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(keys), squeeze=False).ravel()
        image = None
        for ax, key in zip(axes, keys, strict=True):
            m = panels[key]
            masked = np.ma.masked_invalid(np.where(m > 0, m, np.nan) if norm is not None else m)
            image = ax.imshow(masked, cmap="viridis", norm=norm, aspect="equal")
            for i in range(t):
                for j in range(t):
                    if np.isfinite(m[i, j]):
                        bright = norm is not None and m[i, j] > 0 and norm(m[i, j]) > 0.6
                        ax.text(
                            j,
                            i,
                            f"{m[i, j]:.2g}",
                            ha="center",
                            va="center",
                            fontsize=6.5,
                            color="black" if bright else "white",
                        )
            ax.set_xticks(range(t), names, rotation=45, ha="right")
            ax.set_yticks(range(t), names if ax is axes[0] else [""] * t)
            ax.set_xlabel("evaluated on task")
            if ax is axes[0]:
                ax.set_ylabel("after learning task")
            ax.set_title(key)
        if image is not None:
            fig.colorbar(image, ax=list(axes), shrink=0.8, label="one-step MSE (held out)")
        fig.suptitle(title)
    return fig


def task_return_figure(panels: Mapping[str, np.ndarray], names: Sequence[str], title: str) -> Figure:
    """Return on each task j after learning task i (i >= j): a line per task, a panel per key."""
    keys = list(panels)
    t = len(names)
    colors = [plots.PALETTE[j % len(plots.PALETTE)] for j in range(t)]
    with plots._style():
        fig = Figure(figsize=(2.9 * len(keys) + 1.6, 3.0), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(keys), squeeze=False, sharey=True).ravel()
        for ax, key in zip(axes, keys, strict=True):
            m = panels[key]
            for j in range(t):
                xs = np.arange(j, t)
                ys = m[j:, j]
                ok = np.isfinite(ys)
                if ok.any():
                    ax.plot(xs[ok], ys[ok], color=colors[j], marker="o", ms=3, label=names[j])
            ax.set_xticks(range(t), names, rotation=45, ha="right")
            ax.set_xlabel("after learning task")
            ax.set_title(key)
            ax.margins(x=0.05)
        axes[0].set_ylabel("MPC return")
        axes[-1].legend(title="task", loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.suptitle(title)
    return fig


def _runs_of(run: Run) -> ContinualRun | None:
    return continual_from_summary(
        run.summary,
        label=run.label,
        method=run.method,
        sequence=run.env_id,
        seed=run.seed,
        names=_config_task_names(run.config),
    )


def collect_continual(collection: Collection) -> dict[str, dict[str, list[ContinualRun]]]:
    """Continual runs among the collected ones: sequence -> learner -> runs (those of the common T)."""
    out: dict[str, dict[str, list[ContinualRun]]] = {}
    for group in collection.groups:
        found = [c for c in (_runs_of(r) for r in group.runs) if c is not None]
        if not found:
            continue
        sizes = [len(c.returns) for c in found]
        common = max(set(sizes), key=sizes.count)
        for c in found:
            if len(c.returns) != common:
                collection.warn(
                    c.label,
                    f"{len(c.returns)} tasks where its group has {common}; left out of the continual figures",
                )
        out.setdefault(group.env_id, {}).setdefault(group.method, []).extend(
            c for c in found if len(c.returns) == common
        )
    return out


def _figures_for(
    sequence: str, by_method: Mapping[str, Sequence[ContinualRun]]
) -> list[tuple[Figure, str, str, str]]:
    methods = sorted(m for m, runs in by_method.items() if runs)
    t_sizes = {len(by_method[m][0].returns) for m in methods}
    if len(t_sizes) != 1:  # learners run on different versions of the sequence: one figure each
        return [f for m in methods for f in _figures_for(f"{sequence} ({m})", {m: by_method[m]})]
    t = t_sizes.pop()
    saved = [r.task_names for m in methods for r in by_method[m] if r.task_names]
    names = saved[0] if saved else task_names(sequence.split(" (")[0], t)
    label = {m: f"{m} (n={len(by_method[m])})" for m in methods}
    errors = {label[m]: _stack(by_method[m], "pred_error") for m in methods}
    returns = {label[m]: _stack(by_method[m], "returns") for m in methods}
    slug = plots.slug(sequence)
    return [
        (
            pred_error_heatmap(errors, names, f"Held-out one-step prediction error, {sequence}"),
            f"continual_pred_error_{slug}",
            f"Prediction-error matrix on {sequence}",
            f"Held-out one-step prediction error (MSE, raw units; log colour scale) on task j (column) after "
            f"learning task i (row), mean over seeds; a rising column is forgetting. Sequence {sequence}.",
        ),
        (
            task_return_figure(returns, names, f"Per-task MPC return, {sequence}"),
            f"continual_returns_{slug}",
            f"Per-task returns on {sequence}",
            f"MPC return on each task after learning each later task, mean over seeds: a flat line keeps the "
            f"task, a falling one forgets it. Sequence {sequence}.",
        ),
    ]


def continual_figures(collection: Collection) -> list[tuple[Figure, str, str, str]]:
    """(figure, file name, title, caption) for every sequence with continual runs; [] when there are none."""
    pending: list[tuple[Figure, str, str, str]] = []
    for sequence, by_method in sorted(collect_continual(collection).items()):
        pending.extend(_figures_for(sequence, by_method))
    return pending


def _mean_metric(runs: Sequence[ContinualRun], key: str, single: np.ndarray | None) -> float | None:
    values = []
    for r in runs:
        s = summarize(r.returns, r.pred_error, single, r.reference)
        v = s.get(key, math.nan)
        if math.isfinite(v):
            values.append(v)
    return float(np.mean(values)) if values else None


def continual_sections(collection: Collection) -> list[Section]:
    """A table of the continual metrics per sequence and learner (means over seeds); [] when no runs."""
    found = collect_continual(collection)
    if not found:
        return []
    rows: list[list[Cell]] = []
    for sequence, by_method in sorted(found.items()):
        single_runs = by_method.get("single")
        single = _stack(single_runs, "returns") if single_runs else None
        for method in sorted(by_method):
            runs = by_method[method]
            if single is not None and single.shape != runs[0].returns.shape:
                single_m = None
            else:
                single_m = single
            ft = None
            if single_m is not None and method != "single":
                vals = [np.nanmean(forward_transfer(r.returns, single_m, r.reference)[1:]) for r in runs]
                finite = [v for v in vals if math.isfinite(v)]
                ft = float(np.mean(finite)) if finite else None
            cells = [
                Cell(sequence),
                Cell(method),
                Cell(str(len(runs)), numeric=True),
                Cell(fmt(_mean_metric(runs, "continual/final_mean_return", None)), numeric=True),
                Cell(fmt(_mean_metric(runs, "continual/mean_retention", None), 2), numeric=True),
                Cell(fmt(_mean_metric(runs, "continual/min_retention", None), 2), numeric=True),
                Cell(fmt(ft, 2), numeric=True),
                Cell(fmt(_mean_metric(runs, "continual/backward_transfer", None)), numeric=True),
                Cell(fmt(_mean_metric(runs, "continual/mean_pred_error_growth", None), 2), numeric=True),
            ]
            rows.append(cells)
    table = Table(
        "Continual metrics (means over seeds)",
        [
            "Sequence",
            "Learner",
            "Runs",
            "Final mean return",
            "Mean retention",
            "Min retention",
            "Forward transfer",
            "Backward transfer",
            "Pred. error growth",
        ],
        rows,
        note=(
            "Retention of task j: (R[T-1,j] - b_j) / (R[j,j] - b_j), averaged over the earlier tasks, with b the "
            "run's reference returns (continual/reference: a random policy's) or 0; undefined (–) where a task never beat "
            "the reference. Forward transfer: (R[j,j] - S_j) / (S_j - b_j) against learner=single's runs on the "
            "same sequence, tasks j >= 1. Backward transfer: mean R[T-1,j] - R[j,j] (negative = forgetting). "
            "Prediction-error growth: held-out error on task j after the last task over that right after task j. "
            "Definitions: robolearn/mbrl/continual/metrics.py."
        ),
    )
    return [Section("Continual learning", tables=[table])]


def plot_continual_run(run_dir: Path, out_dir: Path) -> list[SavedFigure]:
    """The heat map and return curves of one continual run directory, written to out_dir (png + svg)."""
    run = load_continual_run(run_dir)
    figures = _figures_for(run.sequence, {run.method: [run]})
    return [
        plots.save_figure(fig, Path(out_dir), name, title, caption) for fig, name, title, caption in figures
    ]
