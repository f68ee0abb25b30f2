"""Continual-learning metrics from the T x T matrices a continual run records.

`returns[i, j]` is the MPC return on task j evaluated right after learning task i (NaN for j > i:
not seen yet); `pred_errors[i, j]` the held-out one-step prediction error on task j after task i.

Definitions (HyperCRL, Huang et al. IROS 2021, Sec. V, evaluates every seen task's reward after
each task and compares the rewards after the whole sequence; it names no retention figure, so the
ones below are ours, stated exactly):

* retention_j = (R[T-1, j] - b_j) / (R[j, j] - b_j): the share of what task j had gained over a
  reference return b_j right after it was learned that is left after the last task. 1 means nothing
  was forgotten, 0 means back at the reference, < 0 below it. With no reference (b = 0) this is the
  plain ratio R[T-1, j] / R[j, j]; that ratio means something only when returns are positive, so
  for envs whose returns are negative costs (Pendulum-v1, Pusher) give the random-policy return as
  b_j (the normalisation of D4RL's normalised score, Fu et al. 2020, Sec. 5). Where R[j, j] <= b_j
  (the task was never learned past the reference) retention is undefined: NaN, never a number
  that looks like one.
* forward transfer_j = (R[j, j] - S_j) / (S_j - b_j), with S_j the return of a fresh model trained
  on task j alone (learner=single): the gain of having learned tasks 0..j-1 first, relative to what
  single gained over the reference (the reference-normalised form of Continual World's forward
  transfer, Wolczyk et al. NeurIPS 2021, Sec. 4, on final returns instead of curve areas). NaN where
  S_j <= b_j. Task 0 has no earlier tasks, so its value only measures seed noise.
* backward transfer = mean over j < T-1 of R[T-1, j] - R[j, j] (GEM's BWT, Lopez-Paz & Ranzato
  NeurIPS 2017, Sec. 3), in return units: negative is forgetting.
* prediction-error growth_j = E[T-1, j] / E[j, j]: how much worse the model predicts task j's
  held-out transitions after the whole sequence than right after learning it (> 1: forgetting).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from robolearn.errors import UserError

FloatArray = NDArray[np.float64]


def _square(matrix: ArrayLike, name: str) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise UserError(f"{name} has shape {m.shape}; a continual run's matrix is T x T (T >= 1)")
    return m


def _per_task(values: ArrayLike | None, num_tasks: int, name: str) -> FloatArray:
    """A length-T vector; a T x T matrix gives its diagonal (a run's return right after each task)."""
    if values is None:
        return np.zeros(num_tasks, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2 and v.shape == (num_tasks, num_tasks):
        v = np.diag(v).copy()
    if v.shape != (num_tasks,):
        raise UserError(
            f"{name} has shape {v.shape}; give {num_tasks} values (one per task) or a T x T matrix"
        )
    return v


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(num.shape, np.nan)
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    out[ok] = num[ok] / den[ok]
    return out


def retention(returns: ArrayLike, reference: ArrayLike | None = None) -> FloatArray:
    """retention_j = (R[T-1, j] - b_j) / (R[j, j] - b_j) per task (NaN where R[j, j] <= b_j); b = reference or 0."""
    r = _square(returns, "returns")
    b = _per_task(reference, len(r), "reference")
    return _ratio(r[-1] - b, np.diag(r) - b)


def forward_transfer(
    returns: ArrayLike, single_returns: ArrayLike, reference: ArrayLike | None = None
) -> FloatArray:
    """forward transfer_j = (R[j, j] - S_j) / (S_j - b_j) per task, S from learner=single (vector or its matrix)."""
    r = _square(returns, "returns")
    s = _per_task(single_returns, len(r), "single_returns")
    b = _per_task(reference, len(r), "reference")
    return _ratio(np.diag(r) - s, s - b)


def backward_transfer(returns: ArrayLike) -> float:
    """GEM's BWT: mean over earlier tasks of R[T-1, j] - R[j, j] (NaN with one task)."""
    r = _square(returns, "returns")
    if len(r) < 2:
        return math.nan
    return _mean(r[-1, :-1] - np.diag(r)[:-1])


def prediction_error_growth(pred_errors: ArrayLike) -> FloatArray:
    """E[T-1, j] / E[j, j] per task (NaN where undefined)."""
    e = _square(pred_errors, "pred_errors")
    return _ratio(e[-1], np.diag(e))


def _mean(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.mean(finite)) if finite.size else math.nan


def _min(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.min(finite)) if finite.size else math.nan


def summarize(
    returns: ArrayLike,
    pred_errors: ArrayLike,
    single_returns: ArrayLike | None = None,
    reference: ArrayLike | None = None,
) -> dict[str, float]:
    """The run's scalar figures (keys `continual/...`); NaN where a figure is undefined (see the module doc).

    Retention, backward transfer and prediction-error growth average over the earlier tasks
    (j < T-1: the last task's are 1 and 0 by definition); forward transfer over j >= 1.
    """
    r = _square(returns, "returns")
    e = _square(pred_errors, "pred_errors")
    if e.shape != r.shape:
        raise UserError(
            f"pred_errors has shape {e.shape}, returns {r.shape}; both are T x T for the same run"
        )
    earlier = slice(0, len(r) - 1)
    ret = retention(r, reference)[earlier]
    growth = prediction_error_growth(e)[earlier]
    out = {
        "continual/tasks": float(len(r)),
        "continual/final_mean_return": _mean(r[-1]),
        "continual/mean_return_when_learned": _mean(np.diag(r)),
        "continual/mean_retention": _mean(ret),
        "continual/min_retention": _min(ret),
        "continual/backward_transfer": backward_transfer(r),
        "continual/final_mean_pred_error": _mean(e[-1]),
        "continual/mean_pred_error_growth": _mean(growth),
    }
    if single_returns is not None:
        out["continual/mean_forward_transfer"] = _mean(forward_transfer(r, single_returns, reference)[1:])
    return out
