"""Loop timing: deadline scheduling, the sleep-after-work baseline, and constant-memory statistics.

DeadlineScheduler sleeps until the next point of a fixed grid (t0 + k * period), so work time never
accumulates into the period: a tick that took 300 µs simply sleeps 300 µs less. It sleeps to
`spin_s` before the deadline and spins the rest, because a plain sleep on Linux overshoots by 50 µs
to 1 ms; when a tick is late by more than a period it skips ahead instead of bursting to catch up.

SleepAfterWorkScheduler is the loop of unitree_rl_gym's deploy_real.py (do the work, then
time.sleep(dt)): every period is dt + work + oversleep. It exists for benchmarks/deploy_loop.py.

LoopStats keeps a 1 µs histogram (constant memory for any soak length) of the period error,
|t_k - t_{k-1} - period|, measured at the moment each tick's command is sent, plus whatever other
durations a loop records.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Clock = Callable[[], float]


class DurationHistogram:
    """Counts of durations in 1 µs bins up to `span_s` (an overflow bin beyond), with max, mean and count."""

    def __init__(self, span_s: float = 0.05, resolution_s: float = 1e-6) -> None:
        self.resolution = resolution_s
        self.bins = np.zeros(round(span_s / resolution_s) + 1, dtype=np.int64)
        self.bins[:] = 0  # fault the pages in now, not when a rare long duration first lands in them
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        """Record one non-negative duration in seconds."""
        v = value if value > 0.0 else 0.0
        i = int(v / self.resolution)
        last = len(self.bins) - 1
        self.bins[i if i < last else last] += 1
        self.count += 1
        self.total += v
        if v > self.max:
            self.max = v

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) in seconds, to the bin resolution; nan when empty."""
        if self.count == 0:
            return float("nan")
        # The smallest recorded value with at least q % of the values at or below it (inverted CDF).
        rank = max(1, math.ceil(q / 100.0 * self.count - 1e-9))
        idx = int(np.searchsorted(np.cumsum(self.bins), rank, side="left"))
        return min((idx + 0.5) * self.resolution, self.max) if idx < len(self.bins) - 1 else self.max

    def count_above(self, threshold_s: float) -> int:
        """How many recorded durations exceed threshold_s (to the bin resolution). At or beyond the span
        the overflow bin holds values of unknown size: all of them count when the max exceeds the
        threshold (an upper bound: overruns are never under-reported)."""
        first = int(threshold_s / self.resolution) + 1
        last = len(self.bins) - 1
        if first >= last:
            return int(self.bins[last]) if self.max > threshold_s else 0
        return int(self.bins[first:].sum())

    def summary(self, prefix: str = "") -> dict[str, float]:
        """p50, p99, p99.9, max and mean in milliseconds, and the count."""
        ms = 1e3
        return {
            f"{prefix}count": float(self.count),
            f"{prefix}p50_ms": self.percentile(50) * ms,
            f"{prefix}p99_ms": self.percentile(99) * ms,
            f"{prefix}p999_ms": self.percentile(99.9) * ms,
            f"{prefix}max_ms": self.max * ms,
            f"{prefix}mean_ms": (self.total / self.count * ms) if self.count else float("nan"),
        }


@dataclass
class LoopStats:
    """Period error, lateness, work time and overruns of one periodic loop."""

    name: str
    period: float
    overrun_s: float

    def __post_init__(self) -> None:
        self.period_error = DurationHistogram()
        self.lateness = DurationHistogram()
        self.work = DurationHistogram()
        self.overruns = 0
        self.consecutive_overruns = 0
        self._last_mark: float | None = None

    def mark(self, t: float, lateness: float, work: float) -> float:
        """Record one tick whose command left at t; returns this tick's period error."""
        error = 0.0
        if self._last_mark is not None:
            error = abs(t - self._last_mark - self.period)
            self.period_error.add(error)
        self._last_mark = t
        self.lateness.add(lateness)
        self.work.add(work)
        if lateness > self.overrun_s:
            self.overruns += 1
            self.consecutive_overruns += 1
        else:
            self.consecutive_overruns = 0
        return error

    def summary(self) -> dict[str, float]:
        """Flat dict of the loop's figures (milliseconds), for logs and benchmark tables."""
        out = {"period_ms": self.period * 1e3, "overruns": float(self.overruns)}
        out.update(self.period_error.summary("period_error_"))
        out.update(self.lateness.summary("lateness_"))
        out.update(self.work.summary("work_"))
        out["missed_deadlines_over_2ms"] = float(self.period_error.count_above(0.002))
        return out


class DeadlineScheduler:
    """Wakes on a fixed grid t0 + k * period: sleep until spin_s before the deadline, then spin."""

    def __init__(self, period: float, spin_s: float = 0.0002, clock: Clock = time.perf_counter) -> None:
        self.period = float(period)
        self.spin_s = max(0.0, float(spin_s))
        self.clock = clock
        self.deadline = 0.0
        self.skipped = 0

    def start(self, now: float | None = None) -> None:
        """Put the first deadline one period from now."""
        self.deadline = (self.clock() if now is None else now) + self.period

    def wait(self) -> float:
        """Block until the current deadline; return how late we woke (s) and advance to the next one."""
        clock = self.clock
        remaining = self.deadline - clock() - self.spin_s
        if remaining > 0:
            time.sleep(remaining)
        while clock() < self.deadline:
            pass
        now = clock()
        lateness = now - self.deadline
        self.deadline += self.period
        if now > self.deadline:
            # More than a period late: drop the missed ticks rather than run them back to back.
            missed = int((now - self.deadline) / self.period) + 1
            self.skipped += missed
            self.deadline += missed * self.period
        return lateness


class SleepAfterWorkScheduler:
    """unitree_rl_gym's loop: time.sleep(period) after the work, whatever the work took."""

    def __init__(self, period: float, clock: Clock = time.perf_counter) -> None:
        self.period = float(period)
        self.clock = clock
        self.deadline = 0.0
        self.skipped = 0

    def start(self, now: float | None = None) -> None:
        """Nothing to align to; kept for the scheduler interface."""
        self.deadline = (self.clock() if now is None else now) + self.period

    def wait(self) -> float:
        """Sleep one full period; lateness is measured against where a fixed grid would be."""
        time.sleep(self.period)
        now = self.clock()
        lateness = max(0.0, now - self.deadline)
        self.deadline = now + self.period
        return lateness


Scheduler = DeadlineScheduler | SleepAfterWorkScheduler


def make_scheduler(kind: str, period: float, spin_s: float) -> Scheduler:
    """A scheduler by config name: deadline | sleep_after_work."""
    if kind == "sleep_after_work":
        return SleepAfterWorkScheduler(period)
    return DeadlineScheduler(period, spin_s)


def set_realtime_priority(priority: int, thread_id: int = 0) -> str | None:
    """Give a thread (0: the calling one) SCHED_FIFO at priority (1-99); returns why not, or None on success."""
    if priority <= 0:
        return None
    try:
        os.sched_setscheduler(thread_id, os.SCHED_FIFO, os.sched_param(min(int(priority), 99)))
    except (PermissionError, OSError, AttributeError) as exc:
        return f"SCHED_FIFO priority {priority} refused ({exc}); running with normal priority"
    return None


def set_process_realtime_priority(priority: int) -> str | None:
    """SCHED_FIFO for every thread of this process (Linux); threads started later inherit it.

    All of them, not only the control loop: a Python thread holding the GIL that a busy machine
    preempts would otherwise stall the real-time loop waiting for the GIL (priority inversion).
    """
    if priority <= 0:
        return None
    try:
        tasks = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tasks = [0]
    for tid in tasks:
        problem = set_realtime_priority(priority, tid)
        if problem:
            return problem
    return None
