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
    assert (
        h.count_above(0.001) == int(np.sum(values > 0.001))
        or abs(h.count_above(0.001) - np.sum(values > 0.001)) <= 2
    )
    h.add(1.0)  # beyond the span: counted, and the maximum
    assert h.percentile(100) == 1.0 and h.count_above(0.04) >= 1


def test_loop_stats_period_error_and_overruns() -> None:
    s = LoopStats("x", 0.002, 0.001)
    for t, late in ((0.0, 0), (0.002, 0), (0.0045, 0.0005), (0.0061, 0.0015), (0.0082, 0.0012), (0.0100, 0)):
        s.mark(t, late, 0.0001)
    assert s.period_error.count == 5 and s.overruns == 2 and s.consecutive_overruns == 0
    assert s.period_error.max == pytest.approx(0.0005, abs=1e-6)


def test_deadline_scheduler_keeps_the_grid_whatever_the_work() -> None:
    period = 0.004
    sched = DeadlineScheduler(period, spin_s=0.0005)
    start = time.perf_counter()
    sched.start(start)
    wakes = []
    for k in range(50):
        sched.wait()
        wakes.append(time.perf_counter())
        time.sleep(0.001 + 0.001 * (k % 2))  # uneven work
    # No drift: wakes stay on the grid (typical offset well under a period), unlike sleep-after-work's,
    # which adds the work every time.
    offsets = np.asarray(wakes) - (start + period * np.arange(1, 51))
    assert np.median(offsets) < 0.001
    baseline = SleepAfterWorkScheduler(period)
    baseline.start()
    t0 = time.perf_counter()
    for _ in range(20):
        baseline.wait()
        time.sleep(0.001)
    assert time.perf_counter() - t0 > 20 * (period + 0.001)


def test_deadline_scheduler_skips_missed_ticks_instead_of_bursting() -> None:
    clock = {"t": 0.0}
    sched = DeadlineScheduler(0.002, spin_s=0.0, clock=lambda: clock["t"])
    sched.start(0.0)
    clock["t"] = 0.0105  # woke 8.5 ms late for the 2 ms deadline
    lateness = sched.wait()
    assert lateness == pytest.approx(0.0085) and sched.deadline == pytest.approx(0.012) and sched.skipped == 4
