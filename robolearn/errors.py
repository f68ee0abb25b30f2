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


def require(module: str, feature: str, extra: str, package: str | None = None) -> object:
    """Import an optional module or raise MissingExtraError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, package or module) from exc


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
