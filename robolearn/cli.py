"""The command convention: `python -m robolearn.<verb> key=value ...`, mirrored by `robolearn-<verb>`.

Every verb checks its whole command line (composition and values) before Hydra starts a job, so a
typo costs a one-line error and nothing else.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable

from omegaconf import DictConfig

from robolearn.config.validate import precheck_overrides


def command_line(verb: str, argv: list[str]) -> str:
    """The command as a user would re-type it (recorded in summaries and reports)."""
    return shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", f"robolearn.{verb}", *argv])


def precheck(config_name: str, argv: list[str], validate: Callable[[DictConfig], None]) -> None:
    """Compose + validate what argv asks for; --help/--cfg/--info style Hydra flags skip the check."""
    if any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith("--cfg") for a in argv):
        return
    precheck_overrides(config_name, argv, validate)
