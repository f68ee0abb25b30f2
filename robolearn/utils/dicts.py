"""Nested-mapping helpers shared by the trainer's run-directory check and the report's grouping."""

from __future__ import annotations

from typing import Any


def flatten(config: dict[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists and empty dicts stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
