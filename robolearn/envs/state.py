"""Capture and restore an environment's full state, for exact resumption after a kill.

Gymnasium envs do not pickle their live state (MuJoCo envs re-create themselves from their
constructor arguments), so we snapshot each wrapper layer's plain attributes (counters, flags, arrays,
RNGs) and the MuJoCo data, and write them back into a freshly constructed env of the same id.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

# Attributes that are structure, not state: the wrapped env, spaces' identity, renderers, models.
_SKIP = frozenset(
    {
        "env",
        "_env",
        "spec",
        "_cached_spec",
        "metadata",
        "render_mode",
        "model",
        "mujoco_renderer",
        "renderer",
        "viewer",
        "results_writer",
        "t_start",
    }
)
_PLAIN = (int, float, bool, str, bytes, type(None), np.ndarray, np.generic)


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _is_plain(v) for k, v in value.items())
    return False


def layer_state(layer: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in vars(layer).items():
        if name in _SKIP:
            continue
        if isinstance(value, np.random.Generator):
            state[name] = ("generator", copy.deepcopy(value.bit_generator.state))
        elif isinstance(value, gym.spaces.Space):
            rng = value._np_random
            if rng is not None:
                state[name] = ("space", copy.deepcopy(rng.bit_generator.state))
        elif isinstance(value, mujoco.MjData):
            state[name] = ("mjdata", pickle.dumps(value))
        elif _is_plain(value):
            state[name] = ("plain", copy.deepcopy(value))
    return state


def set_layer_state(layer: Any, state: dict[str, Any]) -> None:
    for name, (kind, value) in state.items():
        current = getattr(layer, name, None)
        if kind == "generator":
            if not isinstance(current, np.random.Generator):
                current = np.random.Generator(np.random.PCG64())
                setattr(layer, name, current)
            current.bit_generator.state = copy.deepcopy(value)
        elif kind == "space":
            if isinstance(current, gym.spaces.Space):
                current.np_random.bit_generator.state = copy.deepcopy(value)
        elif kind == "mjdata":
            saved = pickle.loads(value)
            if isinstance(current, mujoco.MjData):
                # Copy into the existing MjData: other objects (renderers) hold references to it.
                mujoco.mj_copyData(current, layer.model, saved)
            else:
                setattr(layer, name, saved)
        else:
            setattr(layer, name, copy.deepcopy(value))


def _layers(env: gym.Env) -> list[Any]:
    layers: list[Any] = []
    current: Any = env
    while True:
        layers.append(current)
        if not isinstance(current, gym.Wrapper):
            return layers
        current = current.env


class EnvSnapshotWrapper(gym.Wrapper):
    """Outermost wrapper that exposes get_state()/set_state() through VecEnv.env_method."""

    def get_state(self) -> list[dict[str, Any]]:
        """Per-layer snapshot, outermost first."""
        return [layer_state(layer) for layer in _layers(self.env)]

    def set_state(self, state: list[dict[str, Any]]) -> None:
        """Write a snapshot from get_state() back into this (identically built) env."""
        layers = _layers(self.env)
        if len(layers) != len(state):
            raise ValueError(f"env has {len(layers)} wrapper layers, snapshot has {len(state)}")
        for layer, layer_state in zip(layers, state, strict=True):
            set_layer_state(layer, layer_state)


def find_vec_normalize(venv: VecEnv) -> VecNormalize | None:
    """The VecNormalize wrapper in a VecEnv stack, or None."""
    current: Any = venv
    while current is not None:
        if isinstance(current, VecNormalize):
            return current
        current = getattr(current, "venv", None)
    return None


def get_vec_env_state(venv: VecEnv) -> dict[str, Any]:
    """Everything a VecEnv (and its VecNormalize, if any) needs to continue exactly."""
    state: dict[str, Any] = {"envs": venv.env_method("get_state")}
    norm = find_vec_normalize(venv)
    if norm is not None:
        state["vec_normalize"] = {
            name: copy.deepcopy(getattr(norm, name))
            for name in ("obs_rms", "ret_rms", "returns", "old_obs", "old_reward", "training")
            if hasattr(norm, name)
        }
    return state


def set_vec_env_state(venv: VecEnv, state: dict[str, Any]) -> None:
    """Restore get_vec_env_state's snapshot into an identically built VecEnv."""
    for idx, env_state in enumerate(state["envs"]):
        venv.env_method("set_state", env_state, indices=[idx])
    norm = find_vec_normalize(venv)
    saved = state.get("vec_normalize")
    if (norm is None) != (saved is None):
        raise ValueError("checkpoint and env disagree on observation/reward normalisation")
    if norm is not None and saved is not None:
        for name, value in saved.items():
            setattr(norm, name, value)
