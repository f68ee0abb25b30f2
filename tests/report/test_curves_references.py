"""Learning-curve alignment and the reference-score table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from robolearn.report.collect import Group, Run
from robolearn.report.curves import aggregate_curve, common_grid
from robolearn.report.references import REFERENCES, env_family, measure_random_return, reference_for

BASE = Run(
    path=Path("r"),
    label="r",
    config={},
    summary={"eval/mean_return": 0.0},
    eval_steps=(),
    eval_returns=(),
    method="sac",
    env_id="Hopper-v5",
    seed=0,
)


def _run(steps: list[int], values: list[float], seed: int = 0) -> Run:
    return replace(BASE, eval_steps=tuple(steps), eval_returns=tuple(values), seed=seed)


def test_common_grid_uses_shared_steps_or_the_overlap() -> None:
    same = [np.array([0, 10, 20]), np.array([0, 10, 20])]
    np.testing.assert_array_equal(common_grid(same), [0, 10, 20])
    shifted = [np.array([0, 10, 20, 30]), np.array([5, 15, 25])]
    np.testing.assert_array_equal(common_grid(shifted), [5, 10, 15, 20, 25])
    assert common_grid([np.array([0, 10]), np.array([20, 30])]) is None
    many = [np.arange(0, 1000, 3), np.arange(1, 1000, 7)]
    grid = common_grid(many, points=50)
    assert (
        grid is not None and len(grid) == 50 and grid[0] == 1 and grid[-1] == 995
    )  # 995 = last step of the sparser run


def test_curve_interpolates_and_aggregates() -> None:
    group = Group(
        "sac",
        "Hopper-v5",
        [
            _run([0, 10], [0.0, 10.0]),
            _run([0, 5, 10], [0.0, 5.0, 10.0], seed=1),
            _run([0, 10], [0.0, 30.0], seed=2),
        ],
    )
    curve = aggregate_curve(group, statistic="mean", reps=200)
    assert curve is not None
    assert curve.steps == (0.0, 5.0, 10.0)
    np.testing.assert_allclose(curve.center, [0.0, (5 + 5 + 15) / 3, 50 / 3])
    assert all(lo <= c <= hi for lo, c, hi in zip(curve.low, curve.center, curve.high, strict=True))


def test_curve_iqm_ignores_an_outlier_seed() -> None:
    runs = [_run([0, 1], [v, v], seed=i) for i, v in enumerate([1.0, 2.0, 3.0, 1000.0])]
    curve = aggregate_curve(Group("sac", "Hopper-v5", runs), statistic="iqm", reps=200)
    assert curve is not None and curve.center == (2.5, 2.5)
    assert aggregate_curve(Group("sac", "Hopper-v5", [BASE])) is None
    with pytest.raises(ValueError):
        aggregate_curve(Group("sac", "Hopper-v5", runs), statistic="median")


def test_references_are_sourced_and_looked_up_by_family() -> None:
    for family, ref in REFERENCES.items():
        assert ref.random_source and ref.reference_source, family
        assert ref.reference != ref.random, family
        assert env_family(ref.measured_on) == family
    assert env_family("Hopper-v5") == "Hopper"
    assert reference_for("Hopper-v5") is REFERENCES["Hopper"]
    assert reference_for("Pendulum-v1") is REFERENCES["Pendulum"]
    # Our own tasks never borrow gymnasium's reference scores, and unsourced envs have none.
    assert reference_for("robolearn/Hopper-v0") is None
    assert reference_for("CartPole-v1") is None


def test_pendulum_random_score_reproduces() -> None:
    # The stored value is the mean of 1000 episodes (std ~287); 100 episodes land within 3 SE of it.
    mean, std = measure_random_return("Pendulum-v1", episodes=100, seed=0)
    assert abs(mean - REFERENCES["Pendulum"].random) < 3 * std / 10
