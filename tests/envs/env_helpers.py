"""Shared settings of the env tests."""

from __future__ import annotations

from typing import Any

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
