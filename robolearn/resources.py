"""Where the project's data folders (configs/, envs/, policies/) live, installed or from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # A checkout (or editable install) has the folders beside the package; a wheel carries them
    # inside it under robolearn/_data (see pyproject.toml's force-include).
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir() and (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return checkout
    return _PACKAGE_DIR / "_data" / name


def configs_dir() -> Path:
    """The Hydra config root (configs/)."""
    return _data_dir("configs")


def envs_dir() -> Path:
    """Environment data: robot models, scenes, reference motions, env cards (envs/)."""
    return _data_dir("envs")


def policies_dir() -> Path:
    """Policy files that are data: prior policies and reference exports (policies/)."""
    return _data_dir("policies")
