"""Task sequences for continual RL: a list of tasks, each a base env plus physical edits.

A sequence is a YAML file (configs/sequence/<name>.yaml, or any path):

    name: pendulum
    env: InvertedPendulum-v5          # default env of every task (a task may set its own)
    gym_kwargs: {}                    # default gymnasium.make kwargs (a task's own are merged over)
    tasks:
      - name: nominal
      - name: long_pole
        edits:
          - {kind: body_size, body: pole, scale: 1.5}

Edits are robolearn.envs.edits' format. Everything is validated when the sequence loads, before
any work: unknown env ids, unknown bodies/joints/geoms/actuators, scales <= 0, bad kinds, and tasks
whose observation or action spaces differ from the first task's all raise a one-line UserError
naming the field, e.g. `sequence halfcheetah_body tasks[2].edits[0].body = 'torsoo' is not ...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from robolearn.envs.edits import PENDULUM_ID, Edit, make_edited_env, parse_edits, validate_env_edits
from robolearn.errors import UserError, close_matches
from robolearn.resources import configs_dir

_TOP_KEYS = ("name", "description", "env", "gym_kwargs", "tasks")
_TASK_KEYS = ("name", "env", "gym_kwargs", "edits")


@dataclass(frozen=True)
class TaskSpec:
    """One task: a base env id, the physical edits made to it, and gymnasium.make kwargs."""

    name: str
    env_id: str
    edits: tuple[Edit, ...] = ()
    gym_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def make_env(self, seed: int | None = None) -> gym.Env[Any, Any]:
        """The task's env (edited model; the reward functions' gym kwargs merged under the task's own)."""
        env = make_edited_env(self.env_id, self.edits, **{**_reward_kwargs(self.env_id), **self.gym_kwargs})
        if seed is not None:
            env.reset(seed=seed)
            env.action_space.seed(seed)
        return env


@dataclass(frozen=True)
class Sequence:
    """A named, validated list of tasks."""

    name: str
    tasks: tuple[TaskSpec, ...]
    description: str = ""
    path: str = ""

    def make_env(self, task: int, seed: int | None = None) -> gym.Env[Any, Any]:
        """The env of task `task` (0-based)."""
        if not 0 <= task < len(self.tasks):
            raise UserError(f"task {task} is out of range for sequence {self.name} ({len(self.tasks)} tasks)")
        return self.tasks[task].make_env(seed)

    @property
    def task_names(self) -> list[str]:
        """The tasks' names in order."""
        return [t.name for t in self.tasks]

    def to_dict(self) -> dict[str, Any]:
        """A YAML-ready form (every task with its env, kwargs and edits written out)."""
        return {
            "name": self.name,
            "description": self.description,
            "tasks": [
                {
                    "name": t.name,
                    "env": t.env_id,
                    "gym_kwargs": dict(t.gym_kwargs),
                    "edits": [e.to_dict() for e in t.edits],
                }
                for t in self.tasks
            ],
        }


def _reward_kwargs(env_id: str) -> dict[str, Any]:
    # The gymnasium.make kwargs the env's torch reward needs (e.g. HalfCheetah keeping x in obs).
    from robolearn.mbrl.envfns import SUPPORTED_ENVS, env_kwargs

    return env_kwargs(env_id) if env_id in SUPPORTED_ENVS else {}


def sequences_dir() -> Path:
    """The folder of shipped sequences (configs/sequence/)."""
    return configs_dir() / "sequence"


def shipped_sequences() -> list[str]:
    """Names of the shipped sequences."""
    return sorted(p.stem for p in sequences_dir().glob("*.yaml"))


def _resolve(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.is_file():
            raise UserError(
                f"sequence file {name_or_path} does not exist; give a yaml path or a shipped name"
            )
        return path
    shipped = sequences_dir() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        names = shipped_sequences()
        raise UserError(
            f"sequence={name_or_path} is not a shipped sequence{close_matches(name_or_path, names)}; "
            f"shipped: {', '.join(names)} (or give a path to a sequence yaml)"
        )
    return shipped


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"{where} = {value!r} is not a mapping; write {{key: value, ...}}")
    return dict(value)


def parse_sequence(raw: Any, default_name: str, path: str = "") -> Sequence:
    """A Sequence from a loaded YAML document, validated against each env's model (one-line errors)."""
    if not isinstance(raw, Mapping):
        raise UserError(
            f"sequence {default_name}: the file holds {type(raw).__name__}, not a mapping with tasks"
        )
    name = str(raw.get("name") or default_name)
    pre = f"sequence {name}"
    for key in raw:
        if key not in _TOP_KEYS:
            raise UserError(
                f"{pre} {key} is not a sequence field{close_matches(str(key), _TOP_KEYS)}; fields: {', '.join(_TOP_KEYS)}"
            )
    default_env = raw.get("env")
    default_kwargs = _mapping(raw.get("gym_kwargs"), f"{pre} gym_kwargs")
    items = raw.get("tasks")
    if not isinstance(items, list) or not items:
        raise UserError(f"{pre} tasks = {items!r} is not a non-empty list; list the tasks")
    tasks: list[TaskSpec] = []
    for i, item in enumerate(items):
        where = f"{pre} tasks[{i}]"
        item = _mapping(item, where)
        for key in item:
            if key not in _TASK_KEYS:
                raise UserError(
                    f"{where}.{key} is not a task field{close_matches(str(key), _TASK_KEYS)}; "
                    f"fields: {', '.join(_TASK_KEYS)}"
                )
        env_id = item.get("env", default_env)
        if not isinstance(env_id, str) or not env_id:
            raise UserError(f"{where}.env = {env_id!r} is not an env id; set env (top level or per task)")
        task_name = str(item.get("name") or f"task{i}")
        if task_name in [t.name for t in tasks]:
            raise UserError(
                f"{where}.name = '{task_name}' repeats an earlier task's name; give each task its own"
            )
        gym_kwargs = {**default_kwargs, **_mapping(item.get("gym_kwargs"), f"{where}.gym_kwargs")}
        edits = parse_edits(item.get("edits"), where=f"{where}.edits")
        tasks.append(TaskSpec(task_name, env_id, tuple(edits), gym_kwargs))
    sequence = Sequence(name, tuple(tasks), str(raw.get("description") or ""), path)
    validate_sequence(sequence)
    return sequence


def validate_sequence(sequence: Sequence) -> None:
    """Check every task's env id and edits against its model, and that all tasks share spaces."""
    pre = f"sequence {sequence.name}"
    first: tuple[Any, Any] | None = None
    for i, task in enumerate(sequence.tasks):
        where = f"{pre} tasks[{i}]"
        try:
            validate_env_edits(task.env_id, task.edits, where=f"{where}.edits", gym_kwargs=task.gym_kwargs)
        except UserError as exc:
            msg = str(exc)
            if msg.startswith("env "):  # env-level errors name the task's env field
                raise UserError(f"{where}.env: {msg}") from None
            raise
        except TypeError as exc:  # gymnasium.make rejected a kwarg
            raise UserError(
                f"{where}.gym_kwargs = {dict(task.gym_kwargs)} is not accepted by {task.env_id}: {exc}"
            ) from None
        spaces = _spaces(task)
        if first is None:
            first = spaces
        elif spaces != first:
            raise UserError(
                f"{where}.env = {task.env_id} has observation/action shapes {spaces}, task 0 has {first}; "
                "every task of a sequence must share them"
            )


def _spaces(task: TaskSpec) -> tuple[Any, Any]:
    # The edited env itself: an edit can change a space (a payload adds a body to cfrc_ext terms).
    env = task.make_env()
    try:
        obs, act = env.observation_space, env.action_space
        return tuple(np.shape(obs.sample())), tuple(np.shape(act.sample()))
    finally:
        env.close()


def load_sequence(name_or_path: str) -> Sequence:
    """A shipped sequence by name (configs/sequence/<name>.yaml) or a yaml path, validated before any work."""
    path = _resolve(str(name_or_path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"sequence file {path} is not valid YAML: {first}") from None
    return parse_sequence(raw, path.stem, str(path))


__all__ = ["PENDULUM_ID", "Sequence", "TaskSpec", "load_sequence", "parse_sequence", "shipped_sequences"]
