"""Domain randomisation options (env kwarg `randomization`), their ranges, and per-env sampling.

Every option is off by default; each is a range sampled uniformly and independently per env at
every episode reset (pushes: at random times during the episode). Ranges follow legged_gym /
unitree_rl_gym and mjlab; docs/envs.md lists them with the values the env configs use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from robolearn.errors import UserError, close_matches


@dataclass(frozen=True)
class Randomization:
    """Domain randomisation settings; None (or 0 for the scalars) switches an option off.

    friction: scale of every geom's sliding friction (the feet's, which decide each foot contact:
        Go2 0.8, G1 1.0).
    link_mass: scale of each body's mass and inertia, sampled per body.
    added_base_mass: kg added to the base body's mass, [min, max] (unitree_rl_gym's added_mass_range).
    joint_friction: scale of each joint's frictionloss (0.2 N·m nominal), sampled per joint.
    joint_damping: scale of each joint's passive damping, sampled per joint.
    com_offset: half-width (m) of a uniform offset of the base's centre of mass, per axis.
    kp_scale, kd_scale: scale of each joint's PD gains.
    motor_strength: scale of each joint's torque output (gains and torque limit together).
    action_delay: (min, max) control steps between a policy output and its PD targets.
    obs_noise: multiple of each observation term's noise (legged_gym's levels at 1.0).
    push_interval_s: (min, max) seconds between pushes; push_velocity: largest planar kick (m/s).
    """

    friction: tuple[float, float] | None = None
    link_mass: tuple[float, float] | None = None
    added_base_mass: tuple[float, float] | None = None
    joint_friction: tuple[float, float] | None = None
    joint_damping: tuple[float, float] | None = None
    com_offset: float = 0.0
    kp_scale: tuple[float, float] | None = None
    kd_scale: tuple[float, float] | None = None
    motor_strength: tuple[float, float] | None = None
    action_delay: tuple[int, int] | None = None
    obs_noise: float = 0.0
    push_interval_s: tuple[float, float] | None = None
    push_velocity: float = 0.0

    def __post_init__(self) -> None:
        scales = ("friction", "link_mass", "kp_scale", "kd_scale", "motor_strength", "push_interval_s")
        for name in scales:
            value = getattr(self, name)
            if value is not None and not 0.0 < value[0] <= value[1]:
                raise UserError(f"randomization.{name}={list(value)} must be positive with min <= max")
        for name in ("joint_friction", "joint_damping"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value[0] <= value[1]:
                raise UserError(f"randomization.{name}={list(value)} must be non-negative with min <= max")
        if self.added_base_mass is not None and not self.added_base_mass[0] <= self.added_base_mass[1]:
            raise UserError(
                f"randomization.added_base_mass={list(self.added_base_mass)} must have min <= max (kg, e.g. [-1, 3])"
            )
        if self.action_delay is not None and not 0 <= self.action_delay[0] <= self.action_delay[1]:
            raise UserError(f"randomization.action_delay={list(self.action_delay)} must be 0 <= min <= max")
        for name in ("com_offset", "obs_noise", "push_velocity"):
            if getattr(self, name) < 0:
                raise UserError(f"randomization.{name} must be non-negative, got {getattr(self, name)}")
        if (self.push_velocity > 0) != (self.push_interval_s is not None):
            raise UserError("randomization: set push_interval_s and push_velocity together")

    @property
    def randomizes_dynamics(self) -> bool:
        """Whether model parameters (friction, masses, centre of mass, joint losses) change per env."""
        ranges = (
            self.friction,
            self.link_mass,
            self.added_base_mass,
            self.joint_friction,
            self.joint_damping,
        )
        return any(r is not None for r in ranges) or self.com_offset > 0

    @property
    def max_action_delay(self) -> int:
        """Longest delay in control steps (0 without delay)."""
        return 0 if self.action_delay is None else int(self.action_delay[1])

    @classmethod
    def from_kwargs(cls, data: Mapping[str, Any] | Randomization | None) -> Randomization:
        """Build from a config mapping (lists for ranges); UserError on an unknown key or bad value."""
        if data is None:
            return cls()
        if isinstance(data, Randomization):
            return data
        if not isinstance(data, Mapping):
            raise UserError(f"randomization must be a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise UserError(f"unknown randomization option '{key}'{close_matches(str(key), names)}")
            if value is None:
                kwargs[key] = None
            elif key == "action_delay":
                kwargs[key] = _pair(key, value, int)
            elif key in ("com_offset", "obs_noise", "push_velocity"):
                kwargs[key] = float(value)
            else:
                kwargs[key] = _pair(key, value, float)
        return cls(**kwargs)


def _pair(name: str, value: Any, kind: type) -> tuple[Any, Any]:
    try:
        items = [kind(v) for v in value]
    except (TypeError, ValueError):
        raise UserError(f"randomization.{name} must be a [min, max] pair, got {value!r}") from None
    if len(items) != 2:
        raise UserError(f"randomization.{name} must be a [min, max] pair, got {value!r}")
    return items[0], items[1]


def uniform(
    rng: np.random.Generator, bounds: tuple[float, float] | None, shape: tuple[int, ...]
) -> np.ndarray:
    """Uniform samples in bounds, or ones when the option is off (no draw, so seeds stay aligned)."""
    if bounds is None:
        return np.ones(shape)
    return rng.uniform(bounds[0], bounds[1], size=shape)
