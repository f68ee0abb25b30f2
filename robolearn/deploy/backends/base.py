"""The backend interface: where states come from and commands go. The safety layer never lives here.

A backend hands the runtime the newest robot state (joints in the RobotSpec's motor order) and
puts each command on its way; it counts what it drops. Everything that decides what to command,
and every limit check, stays in robolearn.deploy.runtime and robolearn.deploy.commands.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from robolearn.deploy.commands import MotorCommand


@dataclass(frozen=True)
class StateSample:
    """One robot state as received: float32 values widened to float64, joints in motor order."""

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    quat: np.ndarray  # w x y z
    gyro: np.ndarray  # body frame, rad/s
    tick: int  # the robot's own counter (ms on Unitree robots)
    received: float  # runtime clock when it arrived
    remote: bytes = b""  # the 40 wireless_remote bytes, empty when the backend has no remote
    mode_machine: int = 0  # unitree_hg robots' hardware variant, echoed in every command
    base_lin_vel: np.ndarray | None = None  # body frame, m/s: only a simulator knows it (no LowState field)


@dataclass
class BackendStats:
    """Counters a backend keeps about its traffic."""

    states: int = 0
    commands: int = 0
    crc_errors: int = 0
    decode_errors: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class Backend(ABC):
    """Source of states and sink of commands."""

    name: str = "backend"
    # Whether its samples carry base_lin_vel; deploy refuses a policy observing it on a backend without.
    supplies_base_lin_vel: bool = False

    def __init__(self) -> None:
        self.stats = BackendStats()

    @abstractmethod
    def poll_state(self, now: float) -> StateSample | None:
        """The newest valid state that arrived since the last poll, or None."""

    @abstractmethod
    def send(self, command: MotorCommand) -> None:
        """Put a (limit-checked) command on its way to the motors."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
