"""Statistics against hand-computed values, simulated coverage, and rliable/scipy where installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from robolearn.report import stats

HAS_SCIPY = importlib.util.find_spec("scipy") is not None
HAS_RLIABLE = importlib.util.find_spec("rliable") is not None


# ------------------------------------------------------------------------------------- point values


def test_iqm_of_known_arrays() -> None:
    # n=8: cut int(0.25*8)=2 from each end, mean of 3,4,5,6.
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
    # n=5: cut 1 from each end: the outlier 100 is ignored.
    assert stats.iqm([0, 1, 2, 3, 100]) == pytest.approx(2.0)
    # n=4: cut 1: mean(2, 10).
    assert stats.iqm([10, 1, 1000, 2]) == pytest.approx(6.0)
    # n<4 cuts nothing: the plain mean.
    assert stats.iqm([1, 2, 9]) == pytest.approx(4.0)


def test_aggregate_iqm_pools_runs_and_tasks() -> None:
    # rliable's (runs x tasks) matrix: all 8 scores pooled, sorted 1..7,100, mean of 3,4,5,6.
    matrix = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 100.0]])
    assert float(stats.aggregate_iqm(stats.score_set(matrix))) == pytest.approx(4.5)


def test_aggregate_mean_is_mean_of_task_means_with_ragged_tasks() -> None:
    tasks = stats.score_set([[1.0, 2.0, 3.0], [10.0, 20.0]])
    assert float(stats.aggregate_mean(tasks)) == pytest.approx((2.0 + 15.0) / 2)
    assert float(stats.aggregate_median(stats.score_set([[1.0], [5.0], [100.0]]))) == pytest.approx(5.0)


@pytest.mark.skipif(
    not HAS_SCIPY, reason="scipy not installed: cross-check against scipy.stats.trim_mean skipped"
)
def test_trim_mean_matches_scipy() -> None:
    from scipy.stats import trim_mean

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 7, 10, 13, 50):
        x = rng.standard_cauchy(n)
        assert float(stats.trim_mean(x, 0.25)) == pytest.approx(trim_mean(x, 0.25))
    m = rng.normal(size=(6, 9))
    assert float(stats.aggregate_iqm(stats.score_set(m))) == pytest.approx(trim_mean(m, 0.25, axis=None))


def test_normalize() -> None:
    assert float(stats.normalize(3234.3, -20.272305, 3234.3)) == pytest.approx(1.0)
    assert float(stats.normalize(-20.272305, -20.272305, 3234.3)) == pytest.approx(0.0)
    assert float(stats.normalize(50.0, 0.0, 100.0)) == pytest.approx(0.5)
    # Lower-is-worse envs with negative returns (Pendulum) map the same way.
    np.testing.assert_allclose(stats.normalize([-1200.0, -700.0, -200.0], -1200.0, -200.0), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="equal"):
        stats.normalize(1.0, 5.0, 5.0)


# ------------------------------------------------------------------------- probability of improvement


def test_probability_of_improvement_hand_values() -> None:
    separated_x, separated_y = [np.array([10.0, 11.0, 12.0])], [np.array([1.0, 2.0, 3.0])]
    assert float(stats.probability_of_improvement(separated_x, separated_y)) == 1.0
    assert float(stats.probability_of_improvement(separated_y, separated_x)) == 0.0
    same = [np.array([1.0, 2.0, 3.0, 3.0])]
    assert float(stats.probability_of_improvement(same, same)) == pytest.approx(0.5)
    # x=[3,4] vs y=[1,3,5]: 3 wins (3>1, 4>1, 4>3) and 1 tie (3=3) of 6 pairs -> 3.5/6.
    x, y = [np.array([3.0, 4.0])], [np.array([1.0, 3.0, 5.0])]
    assert float(stats.probability_of_improvement(x, y)) == pytest.approx(3.5 / 6)
    # Averaged over tasks: (3.5/6 + 1) / 2.
    x2 = [np.array([3.0, 4.0]), np.array([9.0, 9.0])]
    y2 = [np.array([1.0, 3.0, 5.0]), np.array([0.0])]
    assert float(stats.probability_of_improvement(x2, y2)) == pytest.approx((3.5 / 6 + 1.0) / 2)


def test_probability_of_improvement_is_antisymmetric() -> None:
    rng = np.random.default_rng(3)
    x = [rng.integers(0, 5, 7).astype(float), rng.normal(size=4)]
    y = [rng.integers(0, 5, 6).astype(float), rng.normal(size=9)]
    pxy = float(stats.probability_of_improvement(x, y))
    pyx = float(stats.probability_of_improvement(y, x))
    assert pxy + pyx == pytest.approx(1.0)


def test_probability_of_improvement_ci() -> None:
    x, y = [np.array([10.0, 11.0, 12.0, 13.0])], [np.array([1.0, 2.0, 3.0])]
    e = stats.interval_estimate(stats.probability_of_improvement, x, y, reps=500, seed=0)
    assert (e.point, e.low, e.high) == (1.0, 1.0, 1.0)
    same = [np.array([1.0, 2.0, 3.0, 4.0, 5.0])]
    e = stats.interval_estimate(stats.probability_of_improvement, same, same, reps=2000, seed=0)
    assert e.point == pytest.approx(0.5)
    assert e.low < 0.5 < e.high


# ------------------------------------------------------------------------------------- bootstrap CIs


def test_bootstrap_ci_contains_true_value_and_is_deterministic() -> None:
    rng = np.random.default_rng(42)
    scores = [rng.normal(5.0, 1.0, size=50)]
    e1 = stats.interval_estimate(stats.aggregate_mean, scores, reps=2000, seed=7)
    e2 = stats.interval_estimate(stats.aggregate_mean, scores, reps=2000, seed=7)
    e3 = stats.interval_estimate(stats.aggregate_mean, scores, reps=2000, seed=8)
    assert e1 == e2
    assert e1 != e3
    assert e1.low < 5.0 < e1.high
    assert e1.low < e1.point < e1.high
    # The half-width is about 1.96 * sigma / sqrt(n) = 0.28.
    assert 0.2 < (e1.high - e1.low) / 2 < 0.36


def test_bootstrap_ci_coverage_is_near_nominal() -> None:
    """Over many simulated experiments, the 95% CI of the mean holds the true mean ~95% of the time."""
    rng = np.random.default_rng(0)
    hits = 0
    trials = 300
    for i in range(trials):
        scores = [rng.normal(1.0, 2.0, size=30)]
        low, high = stats.bootstrap_ci(stats.aggregate_mean, scores, reps=500, seed=i)
        hits += int(low <= 1.0 <= high)
    # The percentile bootstrap under-covers slightly at n=30; a bug (e.g. resampling too few runs)
    # shows as a far lower rate.
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_is_stratified_by_task() -> None:
    # Runs are resampled within each task: a task of zeros and a task of 100s always average to 50.
    # Pooled (unstratified) resampling would mix them and give a wide interval.
    tasks = [np.zeros(5), np.full(3, 100.0)]
    low, high = stats.bootstrap_ci(stats.aggregate_mean, tasks, reps=1000, seed=0)
    assert float(low) == float(high) == 50.0


def test_bootstrap_over_leading_axes_gives_a_band() -> None:
    # (steps, runs): one CI per step, each equal to the CI computed on that step alone.
    rng = np.random.default_rng(1)
    values = rng.normal(size=(4, 8))
    low, high = stats.bootstrap_ci(stats.aggregate_iqm, [values], reps=300, seed=3)
    assert low.shape == high.shape == (4,)
    assert np.all(low <= stats.aggregate_iqm([values])) and np.all(stats.aggregate_iqm([values]) <= high)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_ci(stats.aggregate_mean, [np.ones(3)], confidence=1.5)
    with pytest.raises(ValueError):
        stats.bootstrap_distribution(stats.aggregate_mean, [np.ones(3)], reps=0)
    with pytest.raises(ValueError):
        stats.score_set([[]])
    with pytest.raises(ValueError):
        stats.probability_of_improvement([np.ones(2)], [np.ones(2), np.ones(2)])


# ------------------------------------------------------------------------------ rliable cross-checks


@pytest.mark.skipif(
    not HAS_RLIABLE, reason="rliable not installed: cross-check skipped (pip install rliable)"
)
def test_point_estimates_match_rliable() -> None:
    from rliable import metrics

    rng = np.random.default_rng(5)
    for runs, tasks in ((5, 1), (10, 3), (7, 6)):
        m = np.round(rng.normal(size=(runs, tasks)), 1)  # rounding makes ties, which PoI must halve
        y = np.round(rng.normal(0.2, 1.0, size=(runs + 2, tasks)), 1)
        ours = stats.score_set(m)
        assert float(stats.aggregate_iqm(ours)) == pytest.approx(metrics.aggregate_iqm(m))
        assert float(stats.aggregate_mean(ours)) == pytest.approx(metrics.aggregate_mean(m))
        assert float(stats.aggregate_median(ours)) == pytest.approx(metrics.aggregate_median(m))
        assert float(stats.probability_of_improvement(ours, stats.score_set(y))) == pytest.approx(
            metrics.probability_of_improvement(m, y)
        )


@pytest.mark.skipif(
    not HAS_RLIABLE, reason="rliable not installed: cross-check skipped (pip install rliable)"
)
def test_bootstrap_cis_agree_with_rliable() -> None:
    from rliable import library, metrics

    rng = np.random.default_rng(11)
    m = rng.gamma(2.0, 1.0, size=(10, 3))
    y = rng.gamma(2.2, 1.0, size=(8, 3))
    reps = 4000
    np.random.seed(0)  # rliable draws from numpy's global generator
    _, cis = library.get_interval_estimates(
        {"iqm": m}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps
    )
    _, poi_cis = library.get_interval_estimates(
        {"poi": [m, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=1000
    )
    low, high = stats.bootstrap_ci(stats.aggregate_iqm, stats.score_set(m), reps=reps, seed=0)
    # Different random streams: the bounds agree up to Monte-Carlo error, a small part of the width.
    width = float(high - low)
    assert float(low) == pytest.approx(cis["iqm"][0, 0], abs=0.08 * width)
    assert float(high) == pytest.approx(cis["iqm"][1, 0], abs=0.08 * width)
    plow, phigh = stats.bootstrap_ci(
        stats.probability_of_improvement, stats.score_set(m), stats.score_set(y), reps=1000, seed=0
    )
    pwidth = float(phigh - plow)
    assert float(plow) == pytest.approx(poi_cis["poi"][0, 0], abs=0.1 * pwidth)
    assert float(phigh) == pytest.approx(poi_cis["poi"][1, 0], abs=0.1 * pwidth)


def test_chunked_bootstrap_matches_its_shape_and_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force tiny chunks: the distribution keeps its shape, stays within the data range, and the same
    # seed still gives the same interval.
    monkeypatch.setattr(stats, "_MAX_ELEMENTS", 10)
    values = np.arange(12.0).reshape(3, 4)
    dist = stats.bootstrap_distribution(stats.aggregate_mean, [values], reps=25, seed=1)
    assert dist.shape == (3, 25)
    assert np.all(dist.min(axis=-1) >= values.min(axis=-1)) and np.all(
        dist.max(axis=-1) <= values.max(axis=-1)
    )
    a = stats.bootstrap_ci(stats.aggregate_mean, [values], reps=25, seed=1)
    b = stats.bootstrap_ci(stats.aggregate_mean, [values], reps=25, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
