"""metrics.jsonl: one JSON object per log point, always with `step` and `wall_time_s`.

The writer is an SB3 logger output, so the agent's own scalars (train/actor_loss, rollout/ep_rew_mean,
time/fps...) and ours (eval/mean_return) go through one path, to TensorBoard and wandb alike.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter


class WallClock:
    """Training wall time that continues across resumptions."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s
        self._start = time.perf_counter()

    def __call__(self) -> float:
        return self.offset_s + time.perf_counter() - self._start


def _scalar(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.ndarray) and value.size == 1:
        return _scalar(value.item())
    if hasattr(value, "item") and callable(value.item):  # 0-d torch tensors
        try:
            return _scalar(value.item())
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


class JsonlMetricsWriter(KVWriter):
    """Appends one line per SB3 logger dump; truncates to `offset` first when a run resumes."""

    def __init__(self, path: Path, clock: WallClock, offset: int | None = None) -> None:
        self.path = path
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        if offset is not None and path.exists():
            # Lines written after the checkpoint we resume from belong to the lost future.
            with open(path, "r+b") as fh:
                fh.truncate(offset)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run's lifetime

    def tell(self) -> int:
        """Byte offset of the end of what was written so far (stored in checkpoints)."""
        self._fh.flush()
        return self._fh.tell()

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        """Write one log point (SB3 KVWriter interface)."""
        row: dict[str, Any] = {"step": int(step), "wall_time_s": round(self.clock(), 3)}
        for key, value in sorted(key_values.items()):
            excluded = key_excluded.get(key)
            if excluded is not None and "json" in excluded:
                continue
            scalar = _scalar(value)
            if scalar is not None:
                row[key] = scalar
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


class WandbWriter(KVWriter):
    """Forwards every log point to an active wandb run."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        """Log the scalars at this step (SB3 KVWriter interface)."""
        data = {k: s for k, v in key_values.items() if (s := _scalar(v)) is not None}
        if data:
            self.run.log(data, step=int(step))

    def close(self) -> None:
        """Finish the wandb run."""
        self.run.finish()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All rows of a metrics.jsonl (a torn last line from a kill is skipped)."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
