"""Continual metrics (robolearn.mbrl.continual.metrics) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.mbrl.continual.metrics import (
    backward_transfer,
    forward_transfer,
    prediction_error_growth,
    retention,
    summarize,
)

NAN = math.nan
# returns[i, j]: return on task j after learning task i.
R = np.array(
    [
        [100.0, NAN, NAN],
        [80.0, 50.0, NAN],
        [90.0, 25.0, 200.0],
    ]
)
E = np.array(
    [
        [0.1, NAN, NAN],
        [0.2, 0.05, NAN],
        [0.3, 0.10, 0.02],
    ]
)


def test_retention_plain_ratio() -> None:
    np.testing.assert_allclose(retention(R), [0.9, 0.5, 1.0])


def test_retention_with_a_reference_return() -> None:
    # b = (10, 20, 0): (90-10)/(100-10) = 8/9, (25-20)/(50-20) = 1/6, 1.
    np.testing.assert_allclose(retention(R, reference=[10.0, 20.0, 0.0]), [8 / 9, 1 / 6, 1.0])


def test_retention_of_negative_costs_needs_a_reference() -> None:
    # Pusher-like costs: -50 right after learning, -75 at the end, random policy -150.
    costs = np.array([[-50.0, NAN], [-75.0, -60.0]])
    assert np.isnan(retention(costs)).all()  # the plain ratio would claim 1.5: refused
    # (−75 − (−150)) / (−50 − (−150)) = 75/100; (−60+150)/(−60+150) = 1.
    np.testing.assert_allclose(retention(costs, reference=[-150.0, -150.0]), [0.75, 1.0])
    # Learned no better than the reference: undefined, NaN.
    assert np.isnan(retention(costs, reference=[-40.0, -150.0])[0])


def test_forward_transfer_against_single() -> None:
    single_diag = np.array([100.0, 40.0, 250.0])
    # (100-100)/100 = 0, (50-40)/40 = 0.25, (200-250)/250 = -0.2
    np.testing.assert_allclose(forward_transfer(R, single_diag), [0.0, 0.25, -0.2])
    # A single run's whole matrix gives the same (its diagonal is used).
    single_matrix = np.diag(single_diag)
    single_matrix[1, 0] = 7.0
    np.testing.assert_allclose(forward_transfer(R, single_matrix), [0.0, 0.25, -0.2])


def test_backward_transfer_and_prediction_error_growth() -> None:
    # ((90-100) + (25-50)) / 2 = -17.5
    assert backward_transfer(R) == pytest.approx(-17.5)
    np.testing.assert_allclose(prediction_error_growth(E), [3.0, 2.0, 1.0])
    assert math.isnan(backward_transfer(np.array([[5.0]])))


def test_summarize() -> None:
    out = summarize(R, E, single_returns=[100.0, 40.0, 250.0])
    assert out["continual/tasks"] == 3
    assert out["continual/final_mean_return"] == pytest.approx((90 + 25 + 200) / 3)
    assert out["continual/mean_return_when_learned"] == pytest.approx((100 + 50 + 200) / 3)
    assert out["continual/mean_retention"] == pytest.approx((0.9 + 0.5) / 2)  # earlier tasks only
    assert out["continual/min_retention"] == pytest.approx(0.5)
    assert out["continual/backward_transfer"] == pytest.approx(-17.5)
    assert out["continual/final_mean_pred_error"] == pytest.approx((0.3 + 0.1 + 0.02) / 3)
    assert out["continual/mean_pred_error_growth"] == pytest.approx(2.5)
    assert out["continual/mean_forward_transfer"] == pytest.approx((0.25 - 0.2) / 2)  # tasks >= 1
    assert "continual/mean_forward_transfer" not in summarize(R, E)
    one = summarize(np.array([[3.0]]), np.array([[0.1]]))
    assert math.isnan(one["continual/mean_retention"]) and one["continual/final_mean_return"] == 3.0


def test_bad_shapes_fail_with_one_line() -> None:
    with pytest.raises(UserError, match=r"returns has shape \(2, 3\); a continual run's matrix is T x T"):
        retention(np.zeros((2, 3)))
    with pytest.raises(UserError, match=r"single_returns has shape \(2,\); give 3 values"):
        forward_transfer(R, [1.0, 2.0])
    with pytest.raises(UserError, match="pred_errors has shape"):
        summarize(R, np.zeros((2, 2)))
