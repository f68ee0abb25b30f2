"""Former home of the vectorised adapters, now robolearn.envs.vector (they build tasks, a higher layer).

Kept so `robolearn.envs.backends.vector.make_batched_env` keeps working; the names resolve on first
use, so importing this module never imports the tasks.
"""

from __future__ import annotations

import importlib
from typing import Any

_MOVED = ("BatchedVecEnv", "BatchedVectorEnv", "make_batched_env", "make_batched_vector_env")


def __getattr__(name: str) -> Any:
    """The adapters' names, from robolearn.envs.vector on first use."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("robolearn.envs.vector"), name)


__all__ = list(_MOVED)
