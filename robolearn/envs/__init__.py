"""Environment construction for training, evaluation and benchmarks.

Every env the platform trains on is built here, from an `env` config node, so training, evaluation
and the overhead benchmark all measure the same stack of wrappers.

Importing this package registers robolearn's gymnasium ids (robolearn/<Name>-v<N>) and nothing more:
registration is a table of gym.register calls (no MuJoCo model is compiled), and the factory, which
pulls stable-baselines3 and torch, loads on first use of one of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from robolearn.envs.tasks import register_envs

if TYPE_CHECKING:
    from robolearn.envs.factory import make_env, make_eval_env, make_vec_env
    from robolearn.envs.state import EnvSnapshotWrapper, get_vec_env_state, set_vec_env_state

# Public name -> the module that defines it, imported when the name is first read (PEP 562).
_LAZY = {
    "make_env": "robolearn.envs.factory",
    "make_eval_env": "robolearn.envs.factory",
    "make_vec_env": "robolearn.envs.factory",
    "EnvSnapshotWrapper": "robolearn.envs.state",
    "get_vec_env_state": "robolearn.envs.state",
    "set_vec_env_state": "robolearn.envs.state",
}


def __getattr__(name: str) -> Any:
    """The factory's and state's public names, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robolearn.envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


register_envs()

__all__ = [
    "EnvSnapshotWrapper",
    "get_vec_env_state",
    "make_env",
    "make_eval_env",
    "make_vec_env",
    "register_envs",
    "set_vec_env_state",
]
