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

    friction: scale of every geom's sliding friction (the floor's 1.0 and the feet's).
    link_mass: scale of each body's mass and inertia, sampled per body.
    com_offset: half-width (m) of a uniform offset of the base's centre of mass, per axis.
    kp_scale, kd_scale: scale of each joint's PD gains.
    motor_strength: scale of each joint's torque output (gains and torque limit together).
    action_delay: (min, max) control steps between a policy output and its PD targets.
    obs_noise: multiple of each observation term's noise (legged_gym's levels at 1.0).
    push_interval_s: (min, max) seconds between pushes; push_velocity: largest planar kick (m/s).
    """

    friction: tuple[float, float] | None = None
    link_mass: tuple[float, float] | None = None
    com_offset: float = 0.0
    kp_scale: tuple[float, float] | None = None
    kd_scale: tuple[float, float] | None = None
    motor_strength: tuple[float, float] | None = None
    action_delay: tuple[int, int] | None = None
    obs_noise: float = 0.0
    push_interval_s: tuple[float, float] | None = None
    push_velocity: float = 0.0

    def __post_init__(self) -> None:
        for name in ("friction", "link_mass", "kp_scale", "kd_scale", "motor_strength", "push_interval_s"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value[0] <= value[1]:
                raise UserError(f"randomization.{name}={list(value)} must be positive with min <= max")
        if self.action_delay is not None and not 0 <= self.action_delay[0] <= self.action_delay[1]:
            raise UserError(f"randomization.action_delay={list(self.action_delay)} must be 0 <= min <= max")
        for name in ("com_offset", "obs_noise", "push_velocity"):
            if getattr(self, name) < 0:
                raise UserError(f"randomization.{name} must be non-negative, got {getattr(self, name)}")
        if (self.push_velocity > 0) != (self.push_interval_s is not None):
            raise UserError("randomization: set push_interval_s and push_velocity together")

    @property
    def randomizes_dynamics(self) -> bool:
        """Whether model parameters (friction, masses, centre of mass) change per env."""
        return self.friction is not None or self.link_mass is not None or self.com_offset > 0

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
