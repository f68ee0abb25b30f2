"""Actuator physics in one place: reflected inertia, PD gains derived from it, and the PD law.

Gains follow the approach of mjlab / BeyondMimic: treat each joint as its reflected rotor inertia
(the "armature") driven by a PD loop, and pick kp and kd so that this second-order system has a
chosen natural frequency and damping ratio:

    armature = sum_k rotor_inertia_k * (gear ratio between stage k and the joint)^2
    kp       = armature * omega^2
    kd       = 2 * zeta * armature * omega

with omega = 2*pi*NATURAL_FREQUENCY_HZ and zeta = DAMPING_RATIO. Stiff motors with heavy rotors get
stiff gains; the same armature goes into the MJCF so the simulated joint has the inertia the gains
were designed for. Sources for every motor constant are in MOTOR_SOURCES and docs/robots.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# mjlab's G1/Go1 constants and BeyondMimic use 10 Hz and zeta = 2: low enough that the loop stays
# far below the 200-1000 Hz physics rate, overdamped so tracking does not ring on contact.
NATURAL_FREQUENCY_HZ = 10.0
DAMPING_RATIO = 2.0

# Share of the peak torque one unit of action may ask for at the default pose (mjlab's rule:
# action_scale = 0.25 * torque_limit / kp), so every joint's action is on the same footing.
ACTION_TORQUE_FRACTION = 0.25


@dataclass(frozen=True)
class MotorModel:
    """A joint drive: rotor inertias per gear stage, gear ratios, torque and speed limits at the joint."""

    name: str
    rotor_inertias: tuple[float, ...]  # kg·m², motor side first
    gear_ratios: tuple[float, ...]  # reduction after each inertia; 1.0 for the last, output-side one
    torque_limit: float  # N·m at the joint
    velocity_limit: float  # rad/s at the joint
    source: str

    @property
    def armature(self) -> float:
        """Reflected inertia at the joint (kg·m²)."""
        return reflected_inertia(self.rotor_inertias, self.gear_ratios)

    def gains(
        self, natural_frequency_hz: float = NATURAL_FREQUENCY_HZ, damping_ratio: float = DAMPING_RATIO
    ) -> tuple[float, float]:
        """(kp, kd) for this motor's armature."""
        return pd_gains(self.armature, natural_frequency_hz, damping_ratio)

    def action_scale(self) -> float:
        """Radians of PD target per unit action (ACTION_TORQUE_FRACTION of peak torque / kp)."""
        kp, _ = self.gains()
        return ACTION_TORQUE_FRACTION * self.torque_limit / kp


def reflected_inertia(rotor_inertias: tuple[float, ...], gear_ratios: tuple[float, ...]) -> float:
    """Inertia felt at the joint: each stage's inertia times the square of the reduction after it."""
    if len(rotor_inertias) != len(gear_ratios) or not rotor_inertias:
        raise ValueError("rotor_inertias and gear_ratios must be non-empty and the same length")
    total = 0.0
    for k, inertia in enumerate(rotor_inertias):
        # Stage k spins (product of the reductions from k to the output) times faster than the joint.
        speed_ratio = math.prod(gear_ratios[k:])
        total += inertia * speed_ratio**2
    return total


def pd_gains(
    armature: float, natural_frequency_hz: float = NATURAL_FREQUENCY_HZ, damping_ratio: float = DAMPING_RATIO
) -> tuple[float, float]:
    """(kp, kd) giving a joint of inertia `armature` the chosen natural frequency and damping ratio."""
    omega = 2.0 * math.pi * natural_frequency_hz
    return armature * omega**2, 2.0 * damping_ratio * armature * omega


def pd_torque(
    target_pos: ArrayLike,
    joint_pos: ArrayLike,
    joint_vel: ArrayLike,
    kp: ArrayLike,
    kd: ArrayLike,
    torque_limit: ArrayLike,
    target_vel: ArrayLike = 0.0,
    feedforward: ArrayLike = 0.0,
) -> np.ndarray:
    """Ideal PD motor: kp*(q* - q) + kd*(dq* - dq) + tau_ff, clipped to ±torque_limit; batched by broadcasting.

    This is the law Unitree's motor drivers run on (q, dq, kp, kd) from LowCmd, so the simulator and
    the robot agree on what an action means. A non-finite result (NaN target, NaN state) gives zero
    torque: a limp joint is safer than a NaN reaching the physics or the motor bus.
    """
    q_err = np.asarray(target_pos, dtype=np.float64) - np.asarray(joint_pos, dtype=np.float64)
    dq_err = np.asarray(target_vel, dtype=np.float64) - np.asarray(joint_vel, dtype=np.float64)
    limit = np.abs(np.asarray(torque_limit, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        tau = np.asarray(kp, dtype=np.float64) * q_err + np.asarray(kd, dtype=np.float64) * dq_err
        tau = tau + np.asarray(feedforward, dtype=np.float64)
    tau = np.where(np.isnan(tau), 0.0, tau)
    return np.clip(tau, -limit, limit)


# --- Motor constants -------------------------------------------------------------------------------
# Go2: GO-M8010-6-class joint motors. Rotor inertia is the Ixx (spin axis) of the `*_hip_rotor`
# links in Unitree's go2_description URDF (unitree_ros, robots/go2_description/urdf/
# go2_description.urdf); 6.33:1 is the GO-M8010-6 planetary reduction (Unitree actuator SDK's
# gear ratio for GO_M8010_6). Torque and speed limits are the URDF joint limits. The calf is
# driven through a linkage: the URDF gives it 45.43 N·m / 15.70 rad/s against 23.7 N·m /
# 30.1 rad/s, an extra 1.917:1, so its total reduction is 6.33 * 45.43 / 23.7.
_GO2_ROTOR_INERTIA = 0.000111842
_GO2_GEAR = 6.33
GO2_HIP = MotorModel(
    name="go2_hip_thigh",
    rotor_inertias=(_GO2_ROTOR_INERTIA,),
    gear_ratios=(_GO2_GEAR,),
    torque_limit=23.7,
    velocity_limit=30.1,
    source="unitree_ros go2_description.urdf (rotor Ixx, limits); GO-M8010-6 reduction 6.33",
)
GO2_CALF = MotorModel(
    name="go2_calf",
    rotor_inertias=(_GO2_ROTOR_INERTIA,),
    gear_ratios=(_GO2_GEAR * 45.43 / 23.7,),
    torque_limit=45.43,
    velocity_limit=15.70,
    source="unitree_ros go2_description.urdf (rotor Ixx, calf limits); linkage ratio 45.43/23.7",
)

# G1: Unitree's motor datasheet values as quoted in mjlab (src/mjlab/asset_zoo/robots/unitree_g1/
# g1_constants.py, "Motor specs (from Unitree)"): per-stage rotor inertias of two-stage planetary
# gearboxes, and their stage ratios. Torque and speed limits are the joint limits of Unitree's
# g1_23dof_rev_1_0 URDF/MJCF (unitree_ros robots/g1_description).
G1_5020 = MotorModel(
    name="g1_5020",
    rotor_inertias=(0.139e-4, 0.017e-4, 0.169e-4),
    gear_ratios=(1 + 46 / 18, 1 + 56 / 16, 1.0),
    torque_limit=25.0,
    velocity_limit=37.0,
    source="Unitree 5020 datasheet via mjlab g1_constants.py; limits from g1_23dof_rev_1_0.urdf",
)
G1_7520_14 = MotorModel(
    name="g1_7520_14",
    rotor_inertias=(0.489e-4, 0.098e-4, 0.533e-4),
    gear_ratios=(4.5, 1 + 48 / 22, 1.0),
    torque_limit=88.0,
    velocity_limit=32.0,
    source="Unitree 7520-14 datasheet via mjlab g1_constants.py; limits from g1_23dof_rev_1_0.urdf",
)
G1_7520_22 = MotorModel(
    name="g1_7520_22",
    rotor_inertias=(0.489e-4, 0.109e-4, 0.738e-4),
    gear_ratios=(4.5, 5.0, 1.0),
    torque_limit=139.0,
    velocity_limit=20.0,
    source="Unitree 7520-22 datasheet via mjlab g1_constants.py; limits from g1_23dof_rev_1_0.urdf",
)
# Ankle: two 5020s through a four-bar linkage. Unitree's g1_23dof_rev_1_0.xml gives the joint
# ±50 N·m (its URDF says 35); the joint speed limit is the URDF's 30 rad/s.
G1_ANKLE = MotorModel(
    name="g1_ankle",
    rotor_inertias=tuple(2 * i for i in G1_5020.rotor_inertias),
    gear_ratios=G1_5020.gear_ratios,
    torque_limit=50.0,
    velocity_limit=30.0,
    source="2 x Unitree 5020 on a ~1:1 parallel linkage (mjlab); ±50 N·m from g1_23dof_rev_1_0.xml",
)

MOTOR_SOURCES: dict[str, str] = {
    m.name: m.source for m in (GO2_HIP, GO2_CALF, G1_5020, G1_7520_14, G1_7520_22, G1_ANKLE)
}
