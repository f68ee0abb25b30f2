"""Atomic, exact checkpoints: model, optimisers, replay buffer, normalisation, RNGs and env state.

A checkpoint is a folder `checkpoints/step_<N>/` written under a temporary name and renamed into
place, then named in `checkpoints/latest.json` (itself replaced atomically), so a SIGKILL at any
moment leaves the previous checkpoint intact. `model.zip` is a plain stable-baselines3 save.
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from robolearn.envs.state import find_vec_normalize, get_vec_env_state, set_vec_env_state
from robolearn.errors import UserError
from robolearn.runs.layout import RunDir
from robolearn.utils.io import atomic_pickle, atomic_write_json, replace_dir
from robolearn.utils.seeding import get_global_rng_state, set_global_rng_state

MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
REPLAY_FILE = "replay_buffer.npz"
STATE_FILE = "state.pkl"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint folder and the env step it was taken at."""

    path: Path
    step: int

    @property
    def model(self) -> Path:
        """The SB3 model file."""
        return self.path / MODEL_FILE

    @property
    def vecnormalize(self) -> Path:
        """SB3 VecNormalize statistics (present when the run normalises)."""
        return self.path / VECNORM_FILE


def _replay_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    # Only the filled part: a 1M-transition buffer is mostly zeros early in training.
    filled = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size:
            arrays[name] = value[:filled]
        elif isinstance(value, dict):
            for key, sub in value.items():
                if isinstance(sub, np.ndarray) and sub.shape[0] == buffer.buffer_size:
                    arrays[f"{name}/{key}"] = sub[:filled]
    return arrays


def _save_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    arrays = _replay_arrays(buffer)
    meta = np.array([buffer.pos, int(buffer.full), buffer.buffer_size], dtype=np.int64)
    with open(path, "wb") as fh:
        np.savez(fh, __meta__=meta, **arrays)  # type: ignore[arg-type]


def _load_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    with np.load(path) as data:
        pos, full, size = (int(v) for v in data["__meta__"])
        if size != buffer.buffer_size:
            raise UserError(f"{path}: replay buffer size {size} != agent.buffer_size={buffer.buffer_size}")
        for key in data.files:
            if key == "__meta__":
                continue
            if "/" in key:
                name, sub = key.split("/", 1)
                target = getattr(buffer, name)[sub]
            else:
                target = getattr(buffer, key)
            target[: data[key].shape[0]] = data[key]
    buffer.pos, buffer.full = pos, bool(full)


def save_model_files(model: BaseAlgorithm, venv: VecEnv, folder: Path) -> None:
    """Write model.zip (+ vecnormalize.pkl) into folder, for evaluation and plain SB3 users."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    norm = find_vec_normalize(venv)
    if norm is not None:
        norm.save(str(folder / VECNORM_FILE))


def save_checkpoint(
    run: RunDir,
    model: BaseAlgorithm,
    venv: VecEnv,
    extra: dict[str, Any],
    save_replay_buffer: bool = True,
    keep: int = 2,
) -> Checkpoint:
    """Write a complete checkpoint of the current training state and point latest.json at it."""
    step = int(model.num_timesteps)
    name = f"step_{step:012d}"
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    tmp = run.checkpoints / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model_files(model, venv, tmp)
    if isinstance(model, OffPolicyAlgorithm) and save_replay_buffer and model.replay_buffer is not None:
        _save_replay_buffer(model.replay_buffer, tmp / REPLAY_FILE)
    state = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "rng": get_global_rng_state(),
        "action_space_rng": model.action_space.np_random.bit_generator.state,
        "env": get_vec_env_state(venv),
        "extra": extra,
    }
    atomic_pickle(tmp / STATE_FILE, state)
    final = run.checkpoints / name
    replace_dir(tmp, final)
    atomic_write_json(run.checkpoints / "latest.json", {"name": name, "step": step})
    _prune(run, keep, final)
    return Checkpoint(final, step)


def _prune(run: RunDir, keep: int, newest: Path) -> None:
    folders = sorted(p for p in run.checkpoints.glob("step_*") if p.is_dir())
    for old in folders[:-keep] if keep > 0 else []:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run: RunDir) -> Checkpoint | None:
    """The newest complete checkpoint of a run, None if it has none; a corrupt one is an error."""
    pointer = run.checkpoints / "latest.json"
    if not pointer.is_file():
        return None
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
        path, step = run.checkpoints / str(info["name"]), int(info["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UserError(f"{pointer} is corrupt; delete the checkpoints folder to restart the run") from None
    for needed in (MODEL_FILE, STATE_FILE):
        if not (path / needed).is_file():
            raise UserError(f"checkpoint {path} lacks {needed}; delete it and latest.json to restart the run")
    return Checkpoint(path, step)


def load_checkpoint(
    ckpt: Checkpoint, cls: type[BaseAlgorithm], venv: VecEnv, device: str
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Rebuild the algorithm from a checkpoint onto venv and restore every state; returns (model, extra)."""
    try:
        with open(ckpt.path / STATE_FILE, "rb") as fh:
            state = pickle.load(fh)
        model = cls.load(ckpt.model, env=venv, device=device, force_reset=False)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, KeyError) as exc:
        raise UserError(
            f"checkpoint {ckpt.path} cannot be read ({exc}); delete it to restart the run"
        ) from None
    if state.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"checkpoint {ckpt.path} has format {state.get('format_version')}, expected {FORMAT_VERSION}"
        )
    replay = ckpt.path / REPLAY_FILE
    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None and replay.is_file():
        _load_replay_buffer(model.replay_buffer, replay)
    set_vec_env_state(venv, state["env"])
    # Last, since loading the model re-seeded the global generators and the action space.
    set_global_rng_state(state["rng"])
    model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    return model, state["extra"]
