"""Shared settings of the env tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn.envs.tasks.rewards import LocomotionContext

# Every domain-randomisation option on, at ranges wide enough to show in a few steps.
FULL_DR: dict[str, Any] = {
    "friction": [0.5, 1.25],
    "link_mass": [0.9, 1.1],
    "added_base_mass": [-1.0, 3.0],
    "joint_friction": [0.5, 1.5],
    "joint_damping": [0.5, 2.0],
    "com_offset": 0.03,
    "kp_scale": [0.8, 1.2],
    "kd_scale": [0.8, 1.2],
    "motor_strength": [0.9, 1.1],
    "action_delay": [0, 2],
    "obs_noise": 1.0,
    "push_interval_s": [0.1, 0.3],
    "push_velocity": 0.5,
}


def locomotion_context(n: int, nf: int, nj: int, **fields: Any) -> LocomotionContext:
    """n envs, nf feet, nj joints, standing still at the target height with feet down; `fields`
    replace any of it (the reward-term tests build the states they check on top of this)."""
    base: dict[str, Any] = {
        "command": np.zeros((n, 3)),
        "base_lin_vel": np.zeros((n, 3)),
        "base_ang_vel": np.zeros((n, 3)),
        "projected_gravity": np.tile([0.0, 0.0, -1.0], (n, 1)),
        "base_height": np.full(n, 0.3),
        "base_height_target": 0.3,
        "joint_pos": np.zeros((n, nj)),
        "joint_vel": np.zeros((n, nj)),
        "joint_acc": np.zeros((n, nj)),
        "default_joint_pos": np.zeros(nj),
        "soft_lower": -np.ones(nj),
        "soft_upper": np.ones(nj),
        "torque": np.zeros((n, nj)),
        "action": np.zeros((n, nj)),
        "last_action": np.zeros((n, nj)),
        "hip_joints": np.zeros(0, dtype=np.int64),
        "foot_contact": np.ones((n, nf), dtype=bool),
        "foot_first_contact": np.zeros((n, nf), dtype=bool),
        "foot_air_time": np.zeros((n, nf)),
        "foot_lin_vel": np.zeros((n, nf, 3)),
        "air_time_target": 0.5,
        "tracking_sigma": 0.25,
        "terminated": np.zeros(n, dtype=bool),
        "foot_stance_target": np.ones((n, nf), dtype=bool),
        "foot_height": np.zeros((n, nf)),
        "swing_height": 0.08,
    }
    base.update(fields)
    return LocomotionContext(**base)
