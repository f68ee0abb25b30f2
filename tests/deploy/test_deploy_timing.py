"""Histogram statistics and the two schedulers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from robolearn.deploy.timing import DeadlineScheduler, DurationHistogram, LoopStats, SleepAfterWorkScheduler


def test_histogram_percentiles_match_numpy_to_the_bin() -> None:
    rng = np.random.default_rng(0)
    values = rng.exponential(0.0003, 20000)
    h = DurationHistogram()
    for v in values:
        h.add(float(v))
    ordered = np.sort(values)
    for q in (50, 99, 99.9):
        # The smallest value with q % of the values at or below it, to the 1 µs bin.
        assert h.percentile(q) == pytest.approx(
            ordered[math.ceil(q / 100 * len(values) - 1e-9) - 1], abs=1e-6
        )
    assert h.max == values.max() and h.count == len(values)
    for threshold in (0.0005, 0.001, 0.002):
        # To the bin: every value beyond the threshold's 1 µs bin is counted, none at or below the
        # threshold is; only values inside that one bin may go either way.
        above = h.count_above(threshold)
        assert int(np.sum(values > threshold + 1e-6)) <= above <= int(np.sum(values > threshold))
    assert h.count_above(0.001) > 500  # the bounds are not met by counting nothing
    beyond = int(np.sum(values > 0.04))
    h.add(1.0)  # beyond the span: counted, and the maximum
    assert h.percentile(100) == 1.0 and h.count_above(0.04) == beyond + 1 and h.count == len(values) + 1


def test_histogram_count_above_is_exact_outside_the_threshold_bin() -> None:
    h = DurationHistogram()
    for v in (0.0004, 0.0010004, 0.0010015, 0.003, 0.1):
        h.add(v)
    assert h.count_above(0.0) == 5  # 0.0004 s is far above the first bin
    assert h.count_above(0.001) == 3  # 1.0004 ms shares the threshold's bin; 1.0015 ms does not
    assert h.count_above(0.0011) == 2
    assert h.count_above(0.01) == 1  # the 0.1 s value, kept in the overflow bin
    # Beyond the 0.05 s span only the overflow bin and the max are known: never under-reported.
    assert h.count_above(0.06) == 1 and h.count_above(0.2) == 0
    h.add(-0.5)  # a negative duration counts as zero
    assert h.count == 6 and h.count_above(0.0) == 5 and h.percentile(0) < 1e-6


def test_loop_stats_period_error_and_overruns() -> None:
    s = LoopStats("x", 0.002, 0.001)
    for t, late in ((0.0, 0), (0.002, 0), (0.0045, 0.0005), (0.0061, 0.0015), (0.0082, 0.0012), (0.0100, 0)):
        s.mark(t, late, 0.0001)
    assert s.period_error.count == 5 and s.overruns == 2 and s.consecutive_overruns == 0
    assert s.period_error.max == pytest.approx(0.0005, abs=1e-6)


class SimulatedTime:
    """A clock for the schedulers: time.sleep(d) advances it by d plus the OS's oversleep, every
    clock read by 1 µs (a spinning loop's cost), and work by what the test says. Deterministic on a
    busy machine, where wall-clock assertions about a 4 ms grid are not."""

    def __init__(self, oversleep: float = 0.0003) -> None:
        self.t = 0.0
        self.oversleep = oversleep

    def __call__(self) -> float:
        self.t += 1e-6
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds) + self.oversleep


def _wakes(
    scheduler: DeadlineScheduler | SleepAfterWorkScheduler, sim: SimulatedTime, work: list[float]
) -> np.ndarray:
    scheduler.start(0.0)
    wakes = []
    for w in work:
        scheduler.wait()
        wakes.append(sim.t)
        sim.t += w
    return np.asarray(wakes)


def test_deadline_scheduler_keeps_the_grid_whatever_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    period = 0.004
    sim = SimulatedTime()
    monkeypatch.setattr(time, "sleep", sim.sleep)
    work = [0.001 + 0.001 * (k % 2) for k in range(50)]  # uneven work, always within the period
    work[20] = 0.0095  # one long tick: the next two deadlines are missed
    sched = DeadlineScheduler(period, spin_s=0.0005, clock=sim)
    wakes = _wakes(sched, sim, work)
    # Every wake is on the grid (within the spin loop's few µs), the oversleep absorbed by spinning,
    # one grid point after the other...
    on_time = np.arange(50) != 21
    grid = np.round(wakes / period)
    np.testing.assert_allclose(wakes[on_time], grid[on_time] * period, atol=5e-6)
    assert grid[0] == 1 and np.all(np.diff(grid[:21]) == 1) and np.all(np.diff(grid[22:]) == 1)
    # ...except after the long tick: the late tick runs at once, the missed point is skipped, and the
    # loop is back on the grid at the next point ahead, not running ticks back to back to catch up.
    assert wakes[21] - wakes[20] == pytest.approx(work[20], abs=5e-6)
    assert grid[22] - grid[20] == 3 and sched.skipped == 1
    # Sleep-after-work on the same clock adds work and oversleep to every period: it drifts.
    sim.t = 0.0
    baseline = _wakes(SleepAfterWorkScheduler(period, clock=sim), sim, work)
    np.testing.assert_allclose(
        np.diff(baseline), period + sim.oversleep + np.asarray(work[:-1]) + 1e-6, atol=1e-9
    )
    assert baseline[-1] > wakes[-1] + 20 * 0.001


def test_deadline_scheduler_skips_missed_ticks_instead_of_bursting() -> None:
    clock = {"t": 0.0}
    sched = DeadlineScheduler(0.002, spin_s=0.0, clock=lambda: clock["t"])
    sched.start(0.0)
    clock["t"] = 0.0105  # woke 8.5 ms late for the 2 ms deadline
    lateness = sched.wait()
    assert lateness == pytest.approx(0.0085) and sched.deadline == pytest.approx(0.012) and sched.skipped == 4
