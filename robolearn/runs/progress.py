"""Training progress: a rich bar on a terminal, plain periodic lines when output is not a TTY."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressReporter:
    """Reports steps, steps/s and the latest returns; `mode` is auto | bar | lines | none."""

    def __init__(self, total: int, start: int, mode: str = "auto", every_s: float = 30.0) -> None:
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode, self.total, self.every_s = mode, total, every_s
        self._start_step, self._t0 = start, time.perf_counter()
        self._last_line = self._t0
        self.episode_return: float | None = None
        self.eval_return: float | None = None
        self._bar: Progress | None = None
        if mode == "bar":
            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7.0f} steps/s"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("train", total=total, completed=start, rate=0.0, info="")
            self._bar.start()

    def _rate(self, step: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return (step - self._start_step) / elapsed if elapsed > 0 else 0.0

    def _info(self) -> str:
        parts = []
        if self.episode_return is not None:
            parts.append(f"ep return {self.episode_return:.1f}")
        if self.eval_return is not None:
            parts.append(f"eval return {self.eval_return:.1f}")
        return " | ".join(parts)

    def update(self, step: int, force: bool = False) -> None:
        """Show progress at `step` (lines mode prints at most every `every_s` seconds)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=step, rate=self._rate(step), info=self._info())
        elif self.mode == "lines":
            now = time.perf_counter()
            if force or now - self._last_line >= self.every_s:
                self._last_line = now
                pct = 100.0 * step / max(self.total, 1)
                info = self._info()
                print(
                    f"step {step}/{self.total} ({pct:.0f}%) | {self._rate(step):.0f} steps/s"
                    + (f" | {info}" if info else ""),
                    flush=True,
                )

    def close(self, step: int) -> None:
        """Final update and tear-down."""
        self.update(step, force=True)
        if self._bar is not None:
            self._bar.stop()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
