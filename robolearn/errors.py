"""User-facing errors: one line that names the bad value and the fix, no traceback."""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake in what the user asked for (config, path, file). Printed as one line, exit code 2."""


class MissingExtraError(UserError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(f"{feature} needs the '{package}' package: pip install \"robolearn[{extra}]\"")


def close_matches(value: str, choices: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean X?)' suffix for a misspelt name, or '' when nothing is close."""
    matches = difflib.get_close_matches(value, list(choices), n=n, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(matches) + "?)"


# Every optional module robolearn imports: import name -> (pip package, robolearn extra), as declared in
# pyproject.toml's [project.optional-dependencies]. One table, so each verb's missing-extra line names the
# same install command; tests/test_extras.py checks it against pyproject.toml.
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "deploy"),
    "onnxruntime": ("onnxruntime", "deploy"),
    "cyclonedds": ("cyclonedds", "deploy"),
    "unitree_sdk2py": ("unitree-sdk2py-dimos", "deploy"),
    "diffusers": ("diffusers", "imitation"),
    "openai": ("openai", "llm"),
    "RestrictedPython": ("RestrictedPython", "llm"),
    "pyseccomp": ("pyseccomp", "llm"),
    "warp": ("warp-lang", "gpu"),
    "mujoco_warp": ("mujoco-warp", "gpu"),
    "rsl_rl": ("rsl-rl-lib", "rsl"),
    "ray": ("ray", "dist"),
    "hydra_plugins.hydra_ray_launcher": ("hydra-ray-launcher", "dist"),
    "submitit": ("submitit", "dist"),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher", "dist"),
    "imageio": ("imageio", "video"),
    "pygame": ("pygame", "video"),
}


def require(module: str, feature: str, extra: str, package: str | None = None) -> object:
    """Import an optional module or raise MissingExtraError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, package or module) from exc


def require_extra(feature: str, *modules: str) -> None:
    """Import each optional module (keys of OPTIONAL_MODULES) before a verb starts work, or raise
    MissingExtraError: one line naming the feature, the package and `pip install "robolearn[<extra>]"`."""
    for module in modules:
        if module not in OPTIONAL_MODULES:
            raise KeyError(f"{module} is not in robolearn.errors.OPTIONAL_MODULES; add its package and extra")
        package, extra = OPTIONAL_MODULES[module]
        require(module, feature, extra, package)


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn UserError into 'error: <message>' on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> T:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
