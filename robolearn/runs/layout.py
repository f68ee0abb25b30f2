"""The run directory contract (ARCHITECTURE.md, contract 4): where each file of a run lives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robolearn.errors import UserError


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        """Resolved config of the run."""
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        """One JSON object per log point."""
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        """Final figures, written when the run completes."""
        return self.root / "summary.json"

    @property
    def checkpoints(self) -> Path:
        """Resumable checkpoints, one folder each, newest named in latest.json."""
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        """The model with the best periodic evaluation so far."""
        return self.root / "best"

    @property
    def final(self) -> Path:
        """The model at the end of training."""
        return self.root / "final"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files."""
        return self.root / "tb"

    @property
    def error(self) -> Path:
        """The failure message of a run that raised."""
        return self.root / "error.txt"

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json, or None when the run has not completed."""
        if not self.summary.is_file():
            return None
        try:
            data = json.loads(self.summary.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.summary} is corrupt ({exc}); delete it to re-run the job") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.summary} is not a JSON object; delete it to re-run the job")
        return data


def existing_run_dir(path: str | Path, key: str = "run") -> RunDir:
    """A RunDir for a path that must hold a run, or a one-line error saying what is missing."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{key}={path} is not a directory; pass the run directory that train wrote")
    run = RunDir(root)
    if not run.config.is_file():
        raise UserError(f"{key}={path} has no config.yaml, so it is not a robolearn run directory")
    return run
