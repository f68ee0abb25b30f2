"""Learning curves: evaluation return against environment steps, aggregated over the seeds of a group.

Seeds rarely evaluate at exactly the same steps (different eval schedules, resumed runs), so each run's
curve is linearly interpolated onto a common grid that lies inside every run's evaluated range: we
never extrapolate a run past its last evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robolearn.report import stats
from robolearn.report.collect import Group

STATISTICS = ("iqm", "mean")


@dataclass(frozen=True)
class Curve:
    """The aggregated learning curve of one group, with a bootstrap confidence band."""

    method: str
    env_id: str
    statistic: str  # "iqm" or "mean", over runs at each step
    steps: tuple[float, ...]
    center: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    n_runs: int

    def as_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {
            "method": self.method,
            "env": self.env_id,
            "statistic": self.statistic,
            "n_runs": self.n_runs,
            "steps": list(self.steps),
            "center": list(self.center),
            "low": list(self.low),
            "high": list(self.high),
        }


def common_grid(step_lists: list[np.ndarray], points: int = 100) -> np.ndarray | None:
    """A step grid shared by all runs: their own steps when identical, else within the overlap.

    Returns None when the runs' evaluated ranges do not overlap.
    """
    if not step_lists or any(len(s) == 0 for s in step_lists):
        return None
    first = step_lists[0]
    if all(len(s) == len(first) and np.array_equal(s, first) for s in step_lists):
        return first.astype(np.float64)
    lo = max(float(s[0]) for s in step_lists)
    hi = min(float(s[-1]) for s in step_lists)
    if lo > hi:
        return None
    union = np.unique(np.concatenate(step_lists).astype(np.float64))
    grid = union[(union >= lo) & (union <= hi)]
    if len(grid) > points:
        # Too many distinct steps (e.g. every run evaluated on its own schedule): an even grid is as
        # faithful and keeps figures and results.json small.
        grid = np.linspace(lo, hi, points)
    return grid


def aggregate_curve(
    group: Group,
    statistic: str = "iqm",
    reps: int = stats.DEFAULT_REPS,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    seed: int = 0,
    points: int = 100,
) -> Curve | None:
    """The group's learning curve (IQM or mean over runs at each grid step, with a bootstrap band).

    None when fewer than one run has an evaluation curve or the runs' step ranges do not overlap.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    runs = [r for r in group.runs if r.eval_steps]
    if not runs:
        return None
    step_lists = [np.asarray(r.eval_steps, dtype=np.float64) for r in runs]
    grid = common_grid(step_lists, points=points)
    if grid is None:
        return None
    # (steps, runs): runs on the last axis is the layout stats expects for one task.
    values = np.stack(
        [np.interp(grid, s, np.asarray(r.eval_returns)) for s, r in zip(step_lists, runs, strict=True)],
        axis=-1,
    )
    fn = stats.aggregate_iqm if statistic == "iqm" else stats.aggregate_mean
    center = fn([values])
    low, high = stats.bootstrap_ci(fn, [values], reps=reps, confidence=confidence, seed=seed)
    return Curve(
        method=group.method,
        env_id=group.env_id,
        statistic=statistic,
        steps=tuple(float(x) for x in grid),
        center=tuple(float(x) for x in center),
        low=tuple(float(x) for x in low),
        high=tuple(float(x) for x in high),
        n_runs=len(runs),
    )
