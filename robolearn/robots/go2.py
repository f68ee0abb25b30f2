"""Unitree Go2 quadruped: 12 joints in Unitree's motor order (unitree_go LowCmd slots 0-11).

Sources (details and the full table in docs/robots.md):
- Motor order FR, FL, RR, RL x (hip, thigh, calf): unitree_sdk2_python example/go2/low_level/
  unitree_legged_const.py (LegID FR_0 = 0 ... RL_2 = 11); unitree_go LowCmd has 20 motor slots.
- Joint ranges, torque and speed limits: unitree_ros robots/go2_description/urdf/go2_description.urdf.
- Default pose, control period (0.02 s) and physics period (0.005 s): unitree_rl_gym
  legged_gym/envs/go2/go2_config.py (decimation 4 on a 0.005 s simulation step).
- Published mass: about 15 kg with battery (unitree.com Go2 specifications).
"""

from __future__ import annotations

from robolearn.robots.actuators import GO2_HIP, go2_calf_motor
from robolearn.robots.spec import JointRow, RobotSpec, spec_from_joint_table

_HIP_RANGE = (-1.0472, 1.0472)
_FRONT_THIGH_RANGE = (-1.5708, 3.4907)
_REAR_THIGH_RANGE = (-0.5236, 4.5379)
_CALF_RANGE = (-2.7227, -0.83776)

# unitree_rl_gym's Go2 stance: hips splayed 0.1 rad outwards, rear thighs 0.2 rad further back.
_DEFAULT_POSE = {
    "hip": {"FR": -0.1, "FL": 0.1, "RR": -0.1, "RL": 0.1},
    "thigh": {"FR": 0.8, "FL": 0.8, "RR": 1.0, "RL": 1.0},
    "calf": {"FR": -1.5, "FL": -1.5, "RR": -1.5, "RL": -1.5},
}

LEGS = ("FR", "FL", "RR", "RL")


def _rows(calf_gear_ratio: float | None) -> tuple[JointRow, ...]:
    calf = go2_calf_motor(calf_gear_ratio)
    rows = []
    for leg_index, leg in enumerate(LEGS):
        thigh_range = _FRONT_THIGH_RANGE if leg.startswith("F") else _REAR_THIGH_RANGE
        for part_index, (part, motor, (lo, hi)) in enumerate(
            (("hip", GO2_HIP, _HIP_RANGE), ("thigh", GO2_HIP, thigh_range), ("calf", calf, _CALF_RANGE))
        ):
            rows.append(
                JointRow(
                    name=f"{leg}_{part}_joint",
                    motor_index=3 * leg_index + part_index,
                    motor=motor,
                    lower=lo,
                    upper=hi,
                    default=_DEFAULT_POSE[part][leg],
                )
            )
    return tuple(rows)


def go2_spec(calf_gear_ratio: float | None = None) -> RobotSpec:
    """The Go2 spec; calf_gear_ratio overrides the calf's total reduction (None: 12.13, see actuators)."""
    return spec_from_joint_table(
        _rows(calf_gear_ratio),
        name="go2",
        num_motor_slots=20,
        control_dt=0.02,
        physics_dt=0.005,
        message_family="unitree_go",
        imu_body="base",
        imu_site="imu",
        base_body="base",
        foot_bodies=tuple(f"{leg}_foot" for leg in LEGS),
        foot_geoms=tuple(f"{leg}_foot" for leg in LEGS),
        # Forward kinematics of envs/go2/go2.xml at the default pose, mean of the four feet on z = 0
        # (tests/robots/test_robot_models.py recomputes it).
        base_height=0.3187,
        total_mass=15.0,
        model_file="go2/scene.xml",
    )


GO2_SPEC: RobotSpec = go2_spec()
