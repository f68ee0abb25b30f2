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
from typing import NamedTuple

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


# MuJoCo zeroes every control of a model, with a warning, once one exceeds mjMAXVAL (1e10); targets
# beyond this bound are treated like infinite ones (the law saturates for any state a robot reaches).
MAX_FINITE_TARGET = 1e9


class PdActuatorParams(NamedTuple):
    """pd_torque as a MuJoCo affine actuator (gear 1): force = gain*ctrl + bias0 + bias1*q + bias2*dq, clipped.

    Arrays in the broadcast shape of pd_actuator_params' inputs, joints last; bias has 3 more on the end.
    """

    ctrl: np.ndarray  # the actuator control: the position target
    gain: np.ndarray  # gainprm[0]: kp
    bias: np.ndarray  # biasprm[0:3]: kd*dq* + tau_ff, -kp, -kd
    limit: np.ndarray  # forcerange is [-limit, limit]


def pd_actuator_params(
    target_pos: ArrayLike,
    kp: ArrayLike,
    kd: ArrayLike,
    torque_limit: ArrayLike,
    target_vel: ArrayLike = 0.0,
    feedforward: ArrayLike = 0.0,
) -> PdActuatorParams:
    """The actuator parameters under which MuJoCo computes pd_torque itself, at every physics step.

    kp*ctrl - kp*q - kd*dq + (kd*dq* + tau_ff) is pd_torque's sum in another order (equal up to float
    rounding). pd_torque's guard for commands it cannot evaluate carries over as a constant force,
    because MuJoCo would otherwise zero every control of the model: a NaN target or non-finite gain,
    target velocity or feedforward gives zero torque (a limp joint), and an infinite (or beyond
    MAX_FINITE_TARGET) target the saturated torque pd_torque gives for any finite state.
    """
    target = np.asarray(target_pos, dtype=np.float64)
    kp_a, kd_a = np.asarray(kp, dtype=np.float64), np.asarray(kd, dtype=np.float64)
    vel, ff = np.asarray(target_vel, dtype=np.float64), np.asarray(feedforward, dtype=np.float64)
    limit = np.abs(np.asarray(torque_limit, dtype=np.float64))
    target, kp_a, kd_a, vel, ff, limit = np.broadcast_arrays(target, kp_a, kd_a, vel, ff, limit)
    with np.errstate(invalid="ignore", over="ignore"):
        offset = kd_a * vel + ff
        gains_ok = np.isfinite(kp_a) & np.isfinite(kd_a) & np.isfinite(offset)
        regular = gains_ok & (np.abs(target) <= MAX_FINITE_TARGET)
    gain = np.where(regular, kp_a, 0.0)
    bias = np.stack((np.where(regular, offset, 0.0), -gain, np.where(regular, -kd_a, 0.0)), axis=-1)
    ctrl = np.where(regular, target, 0.0)
    if not regular.all():
        # The law at q = dq = 0: NaN (limp) or +-limit for an out-of-range target; zero for bad gains.
        held = np.where(gains_ok, pd_torque(target, 0.0, 0.0, kp_a, kd_a, limit, vel, ff), 0.0)
        bias[..., 0] = np.where(regular, bias[..., 0], held)
    return PdActuatorParams(ctrl=ctrl, gain=gain, bias=bias, limit=limit.copy())


# --- Motor constants -------------------------------------------------------------------------------
# Go2: GO-M8010-6-class joint motors. Rotor inertia is the Ixx (spin axis) of the `*_hip_rotor`
# links in Unitree's go2_description URDF (unitree_ros, robots/go2_description/urdf/
# go2_description.urdf); 6.33:1 is the GO-M8010-6 planetary reduction (Unitree actuator SDK's
# gear ratio for GO_M8010_6). Torque and speed limits are the URDF joint limits.
#
# The calf is driven through a linkage whose ratio Unitree does not publish. Unitree's commit
# 79f054e to that URDF ("modify knee joint info in go2's urdf", 2023-10-11) changed the calf from
# the Go1's 35.55 N·m / 20.07 rad/s (1.5 x the hip) to 45.43 N·m / 15.70 rad/s (1.917 x the hip);
# torque x speed stays 713 W-equivalent in all three rows, as one motor behind a fixed reduction
# gives. We read 45.43 / 23.7 as the linkage ratio: 6.33 x 1.917 = 12.13 in all. mjlab's Go2 keeps
# the Go1's 1.5 (9:1 in all); the go2_description xacro still carries the Go1 limits. Unsettled, so
# it is an option: go2_calf_motor(gear_ratio), robolearn.robots.go2.go2_spec(calf_gear_ratio), and
# the tasks' `robot_options: {calf_gear_ratio: ...}` (docs/robots.md).
_GO2_ROTOR_INERTIA = 0.000111842
_GO2_GEAR = 6.33
GO2_CALF_LINKAGE_RATIO = 45.43 / 23.7
GO2_CALF_GEAR_RATIO = _GO2_GEAR * GO2_CALF_LINKAGE_RATIO
GO2_HIP = MotorModel(
    name="go2_hip_thigh",
    rotor_inertias=(_GO2_ROTOR_INERTIA,),
    gear_ratios=(_GO2_GEAR,),
    torque_limit=23.7,
    velocity_limit=30.1,
    source="unitree_ros go2_description.urdf (rotor Ixx, limits); GO-M8010-6 reduction 6.33",
)


def go2_calf_motor(gear_ratio: float | None = None) -> MotorModel:
    """The Go2 calf drive; gear_ratio is its total reduction (None: 6.33 x 45.43/23.7 = 12.13)."""
    ratio = GO2_CALF_GEAR_RATIO if gear_ratio is None else float(gear_ratio)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"calf gear ratio must be a positive number, got {gear_ratio}")
    source = "unitree_ros go2_description.urdf (rotor Ixx, calf limits)"
    return MotorModel(
        name="go2_calf",
        rotor_inertias=(_GO2_ROTOR_INERTIA,),
        gear_ratios=(ratio,),
        torque_limit=45.43,
        velocity_limit=15.70,
        source=f"{source}; linkage ratio 45.43/23.7"
        if gear_ratio is None
        else f"{source}; gear ratio {ratio} (option)",
    )


GO2_CALF = go2_calf_motor()


@dataclass(frozen=True)
class JointLosses:
    """Passive joint losses a model carries besides its motors: Coulomb friction and viscous damping."""

    frictionloss: float  # N·m, MuJoCo's dry friction on the joint
    damping: float  # N·m·s/rad, on top of the PD law's kd
    source: str


# Unitree's own MuJoCo models (unitree_mujoco, the simulator behind its sim2sim examples) give every
# Go2 and G1 joint frictionloss 0.2 N·m, with damping 0.1 (Go2) and 0.05 (G1). Menagerie's Go2 has
# the same frictionloss. Unitree's URDFs carry zeros (go2_description's xacro had friction 0.2 until
# 2024), so these MJCF values are the only Unitree figures there are.
GO2_JOINT_LOSSES = JointLosses(
    frictionloss=0.2, damping=0.1, source="unitree_mujoco unitree_robots/go2/go2.xml (default class go2)"
)
G1_JOINT_LOSSES = JointLosses(
    frictionloss=0.2, damping=0.05, source="unitree_mujoco unitree_robots/g1/g1_23dof.xml (motor classes)"
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
