"""Training progress: a rich bar on a terminal, plain periodic lines when output is not a TTY.

Both show the steps done out of the steps asked for (never past 100%: an agent that steps in whole
rollouts may run a little more, which the run's final line states), steps/s, elapsed time and an
estimate of the time left. The bar fits an 80-column terminal.

Setup phases that take a while before the first env step (e.g. prior_init's warm start) report
through `note()`, which prints one line to the running job's progress output (nothing when
`logger.progress=none`, or outside a run).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column

NoteSink = Callable[[str], None]
_NOTE_SINK: ContextVar[NoteSink | None] = ContextVar("robolearn_progress_notes", default=None)


def note(message: str) -> None:
    """Report one line about a setup phase to the current run's progress output."""
    sink = _NOTE_SINK.get()
    if sink is not None:
        sink(message)


@contextmanager
def notes_to(sink: NoteSink | None) -> Iterator[None]:
    """Send `note()` lines to `sink` inside the block."""
    token = _NOTE_SINK.set(sink)
    try:
        yield
    finally:
        _NOTE_SINK.reset(token)


def resolve_mode(mode: str) -> str:
    """auto -> bar on a terminal, lines otherwise."""
    if mode == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return mode


def print_note(mode: str) -> NoteSink | None:
    """A note sink that prints a line to stdout, or None when progress is off."""
    if resolve_mode(mode) == "none":
        return None

    def sink(message: str) -> None:
        print(message, flush=True)

    return sink


def format_duration(seconds: float) -> str:
    """h:mm:ss (or m:ss under an hour); '?' when unknown."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# The bar's width in columns; the text beside it gets the rest of the terminal.
_BAR_WIDTH = 16


class ProgressReporter:
    """Reports steps, steps/s, times and the latest returns; `mode` is auto | bar | lines | none."""

    def __init__(
        self,
        total: int,
        start: int,
        mode: str = "auto",
        every_s: float = 30.0,
        console: Console | None = None,
    ) -> None:
        self.mode, self.total, self.every_s = resolve_mode(mode), total, every_s
        self._start_step, self._t0 = start, time.perf_counter()
        self._last_line = self._t0
        self.episode_return: float | None = None
        self.eval_return: float | None = None
        self._bar: Progress | None = None
        if self.mode == "bar":
            self._bar = Progress(
                BarColumn(bar_width=_BAR_WIDTH),
                TextColumn(
                    "{task.fields[text]}",
                    markup=False,
                    table_column=Column(no_wrap=True, overflow="ellipsis"),
                ),
                console=console,
            )
            self._task = self._bar.add_task(
                "train", total=total, completed=min(start, total), text=self._text(start)
            )
            self._bar.start()

    def _rate(self, step: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return (step - self._start_step) / elapsed if elapsed > 0 else 0.0

    def _times(self, step: int) -> tuple[str, str]:
        elapsed = time.perf_counter() - self._t0
        rate = self._rate(step)
        left = max(self.total - step, 0) / rate if rate > 0 else float("inf")
        return format_duration(elapsed), format_duration(left)

    def _info(self) -> str:
        parts = []
        if self.episode_return is not None:
            parts.append(f"ep {self.episode_return:.1f}")
        if self.eval_return is not None:
            parts.append(f"eval {self.eval_return:.1f}")
        return ", ".join(parts)

    def _text(self, step: int) -> str:
        """The bar's text: the step count and times first, so a narrow terminal cuts only the returns."""
        shown = min(step, self.total)
        elapsed, left = self._times(step)
        info = self._info()
        text = f"{shown}/{self.total} {self._rate(step):.0f} steps/s {elapsed}<{left}"
        if info:
            text += f" | {info}"
        if self._bar is not None:
            room = self._bar.console.width - _BAR_WIDTH - 2
            if len(text) > room:
                text = text[: max(room - 1, 0)] + "…"
        return text

    def note(self, message: str) -> None:
        """One line above the bar, or a plain line."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        elif self.mode != "none":
            print(message, flush=True)

    def update(self, step: int, force: bool = False) -> None:
        """Show progress at `step` (lines mode prints at most every `every_s` seconds)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=min(step, self.total), text=self._text(step))
            if force:
                self._bar.refresh()
        elif self.mode == "lines":
            now = time.perf_counter()
            if force or now - self._last_line >= self.every_s:
                self._last_line = now
                shown = min(step, self.total)
                pct = 100.0 * shown / max(self.total, 1)
                elapsed, left = self._times(step)
                info = self._info()
                print(
                    f"step {shown}/{self.total} ({pct:.0f}%) | {self._rate(step):.0f} steps/s"
                    f" | {elapsed} elapsed, ~{left} left" + (f" | {info}" if info else ""),
                    flush=True,
                )

    def close(self, step: int, report: bool = True) -> None:
        """Final update (unless not `report`) and tear-down."""
        if report:
            self.update(step, force=True)
        if self._bar is not None:
            self._bar.stop()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
