"""Aggregate statistics for RL results: mean, IQM, stratified bootstrap CIs, probability of improvement.

The definitions follow Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021) and its library rliable, so that our numbers can be compared with papers that
use it; this module reimplements them so the platform does not depend on rliable and its pins.

Scores are passed as *score sets*: one array per task (environment), runs (seeds) on the last axis.
Tasks may have different numbers of runs. Leading axes are allowed and carried through, which is how a
learning curve (steps x runs) gets a confidence band at every step in one vectorised call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
ScoreSet = Sequence[FloatArray]
Statistic = Callable[..., FloatArray]

DEFAULT_REPS = 2000
DEFAULT_CONFIDENCE = 0.95
_MAX_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval."""

    point: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON output."""
        return {"point": self.point, "low": self.low, "high": self.high}


def score_set(tasks: Sequence[ArrayLike] | ArrayLike) -> list[FloatArray]:
    """Normalise scores to a score set: a list of float arrays, one per task, runs on the last axis.

    A 1-D array is one task; a 2-D array is read as rliable's (runs x tasks) matrix; a list is taken
    as one array per task.
    """
    if isinstance(tasks, np.ndarray):
        if tasks.ndim == 1:
            return [np.asarray(tasks, dtype=np.float64)]
        if tasks.ndim == 2:
            return [np.asarray(tasks[:, m], dtype=np.float64) for m in range(tasks.shape[1])]
        raise ValueError(f"a score array must be 1-D (runs) or 2-D (runs x tasks), got shape {tasks.shape}")
    out = [np.asarray(t, dtype=np.float64) for t in cast(Sequence[ArrayLike], tasks)]
    for t in out:
        if t.ndim == 0 or t.shape[-1] == 0:
            raise ValueError("every task needs an array of at least one run")
    return out


def trim_mean(x: ArrayLike, proportion: float, axis: int = -1) -> FloatArray:
    """Mean after cutting int(proportion * n) of the lowest and of the highest values along axis.

    Same convention as scipy.stats.trim_mean: the cut count is rounded down, so n < 4 gives the plain
    mean at proportion 0.25.
    """
    a = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = a.shape[axis]
    if not 0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
    cut = int(proportion * n)
    kept = np.take(a, np.arange(cut, n - cut), axis=axis)
    return np.asarray(np.mean(kept, axis=axis), dtype=np.float64)


def aggregate_mean(tasks: ScoreSet) -> FloatArray:
    """Mean over tasks of the per-task mean over runs (rliable's aggregate_mean)."""
    per_task = np.stack([np.mean(t, axis=-1) for t in tasks], axis=-1)
    return np.asarray(np.mean(per_task, axis=-1), dtype=np.float64)


def aggregate_median(tasks: ScoreSet) -> FloatArray:
    """Median over tasks of the per-task mean over runs (rliable's aggregate_median)."""
    per_task = np.stack([np.mean(t, axis=-1) for t in tasks], axis=-1)
    return np.asarray(np.median(per_task, axis=-1), dtype=np.float64)


def aggregate_iqm(tasks: ScoreSet) -> FloatArray:
    """Interquartile mean: the 25% trimmed mean of all runs of all tasks pooled together."""
    # Pooling runs x tasks before trimming (rather than trimming per task) is what rliable does: it
    # is robust to outlier runs and still uses half of all scores, so it needs few seeds per task.
    return trim_mean(np.concatenate(list(tasks), axis=-1), 0.25, axis=-1)


def iqm(scores: ArrayLike) -> float:
    """IQM of a flat array of scores (one task)."""
    return float(trim_mean(np.ravel(np.asarray(scores, dtype=np.float64)), 0.25))


def probability_of_improvement(x: ScoreSet, y: ScoreSet) -> FloatArray:
    """P(X > Y): for each task the chance that a random run of X beats one of Y (ties count half),
    averaged over tasks.

    Per task this is the Mann-Whitney U statistic of X over Y divided by n_x * n_y, as in rliable.
    """
    if len(x) != len(y):
        raise ValueError(f"X and Y must have the same tasks, got {len(x)} and {len(y)}")
    per_task = []
    for xt, yt in zip(x, y, strict=True):
        diff = xt[..., :, None] - yt[..., None, :]
        wins = np.mean(diff > 0, axis=(-2, -1)) + 0.5 * np.mean(diff == 0, axis=(-2, -1))
        per_task.append(wins)
    return np.asarray(np.mean(np.stack(per_task, axis=-1), axis=-1), dtype=np.float64)


def normalize(scores: ArrayLike, random: float, reference: float) -> FloatArray:
    """(score - random) / (reference - random): 0 is a random policy, 1 the reference."""
    if reference == random:
        raise ValueError(f"reference and random scores are equal ({reference}); cannot normalise")
    return (np.asarray(scores, dtype=np.float64) - random) / (reference - random)


def bootstrap_distribution(
    statistic: Statistic, *score_sets: ScoreSet, reps: int = DEFAULT_REPS, seed: int = 0
) -> FloatArray:
    """The statistic on `reps` stratified bootstrap resamples, on the last axis of the result.

    Each task's runs are resampled with replacement independently of the other tasks (the strata),
    and each score set independently of the others (as rliable's StratifiedIndependentBootstrap does
    for probability of improvement). Tasks themselves are never resampled: the CI describes the
    uncertainty from a finite number of seeds on this fixed set of tasks.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    rng = np.random.default_rng(seed)
    # Resample in chunks so that a long curve with many seeds (or a pairwise statistic) stays within
    # a few hundred MB; the product bounds pairwise comparisons such as probability of improvement.
    per_rep = math.prod(max(1, sum(t.size for t in tasks)) for tasks in score_sets)
    chunk = max(1, min(reps, _MAX_ELEMENTS // per_rep))
    parts = []
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        resampled_sets = []
        for tasks in score_sets:
            resampled = []
            for t in tasks:
                n = t.shape[-1]
                idx = rng.integers(0, n, size=(size, n))
                resampled.append(t[..., idx])  # (*leading, size, n)
            resampled_sets.append(resampled)
        parts.append(np.asarray(statistic(*resampled_sets), dtype=np.float64))
    return np.concatenate(parts, axis=-1)


def bootstrap_ci(
    statistic: Statistic,
    *score_sets: ScoreSet,
    reps: int = DEFAULT_REPS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Percentile stratified-bootstrap confidence interval (low, high) of the statistic."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dist = bootstrap_distribution(statistic, *score_sets, reps=reps, seed=seed)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(dist, [tail, 100.0 - tail], axis=-1)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def interval_estimate(
    statistic: Statistic,
    *score_sets: ScoreSet,
    reps: int = DEFAULT_REPS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """Point estimate and percentile bootstrap CI of a scalar statistic."""
    point = float(statistic(*score_sets))
    low, high = bootstrap_ci(statistic, *score_sets, reps=reps, confidence=confidence, seed=seed)
    return Estimate(point=point, low=float(low), high=float(high))
