"""robolearn's own tasks, registered as gymnasium ids robolearn/<Name>-v<N> by register_envs().

gymnasium.make(id) gives the single-robot env (a RobotTask with num_envs=1, mujoco backend);
robolearn.envs.vector.make_batched_env(id, num_envs, ...) gives many robots on a batched backend.
Bump an id's version when its dynamics, rewards or observations change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class TaskEntry:
    """A registered id: the task class (module:Class), its fixed kwargs, its time limit, and the
    kwargs a user must give (a task over recorded data cannot be built without its data)."""

    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int = 1000
    required: tuple[str, ...] = ()


TASKS: dict[str, TaskEntry] = {
    # 20 s episodes at the 50 Hz control rate (legged_gym's episode_length_s = 20).
    "robolearn/Go2Velocity-v1": TaskEntry(
        "robolearn.envs.tasks.velocity:VelocityTask", {"robot": "go2"}, 1000
    ),
    "robolearn/G1Velocity-v1": TaskEntry("robolearn.envs.tasks.velocity:VelocityTask", {"robot": "g1"}, 1000),
    "robolearn/G1_29Velocity-v0": TaskEntry(
        "robolearn.envs.tasks.velocity:VelocityTask", {"robot": "g1_29dof"}, 1000
    ),
    # 10 s: two to five loops of the shipped clips.
    "robolearn/G1Tracking-v1": TaskEntry("robolearn.envs.tasks.tracking:TrackingTask", {"robot": "g1"}, 500),
    # ASAP's delta-action task over a target's recording (robolearn.sim2real.delta_task); its own
    # `horizon` ends episodes.
    "robolearn/Go2DeltaAction-v0": TaskEntry(
        "robolearn.sim2real.delta_task:DeltaActionTask", {"robot": "go2"}, 1000, ("dataset",)
    ),
    "robolearn/G1DeltaAction-v0": TaskEntry(
        "robolearn.sim2real.delta_task:DeltaActionTask", {"robot": "g1"}, 1000, ("dataset",)
    ),
}
# The ids a default construction builds (tests and listings that make every task use these).
BUILDABLE = tuple(sorted(k for k, e in TASKS.items() if not e.required))


def register_envs() -> None:
    """Register every id in TASKS with gymnasium (idempotent)."""
    for env_id, entry in TASKS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=entry.entry_point,
            kwargs=dict(entry.kwargs),
            max_episode_steps=entry.max_episode_steps,
        )


__all__ = ["BUILDABLE", "TASKS", "TaskEntry", "register_envs"]
