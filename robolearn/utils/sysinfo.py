"""Machine and package versions recorded with every run, so a figure always says where it came from."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

_PACKAGES = (
    "robolearn",
    "torch",
    "numpy",
    "gymnasium",
    "mujoco",
    "stable-baselines3",
    "hydra-core",
    "omegaconf",
)


def cpu_info() -> dict[str, object]:
    """CPU model name, logical cores visible to this process, and the platform."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 0
    return {"model": model, "cores": cores, "platform": platform.platform()}


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    out = {"python": sys.version.split()[0]}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
