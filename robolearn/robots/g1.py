"""Unitree G1 humanoid, 23-DoF variant (rev 1.0 hardware), in Unitree's unitree_hg motor order.

The unitree_hg LowCmd carries 35 motor slots and the G1 firmware uses 29 of them (G1JointIndex
0-28). The 23-DoF robot has no waist roll/pitch (slots 13, 14) and no wrist pitch/yaw (slots
20, 21, 27, 28), so its 23 joints use slots 0-12, 15-19 and 22-26.

Sources (details and the full table in docs/robots.md):
- Motor slots: unitree_sdk2_python example/g1/low_level/g1_low_level_example.py (G1JointIndex,
  with 13, 14, 20, 21, 27, 28 marked invalid for the 23-DoF G1).
- Joint ranges: unitree_ros robots/g1_description/g1_23dof_rev_1_0.urdf (mode_machine 4).
- Motors per joint and their constants: see robolearn.robots.actuators.
- Default pose: legs from unitree_rl_gym legged_gym/envs/g1/g1_config.py; arms from mjlab's
  G1 HOME_KEYFRAME (shoulder pitch 0.2, shoulder roll ±0.2, elbow 1.28).
- Control 0.02 s (unitree_rl_gym deploy/deploy_real/configs/g1.yaml control_dt); physics 0.005 s
  (legged_gym's sim dt, and mjlab's G1 velocity task timestep).
- Published mass: about 35 kg with battery (unitree.com G1 specifications).
"""

from __future__ import annotations

from robolearn.robots.actuators import G1_5020, G1_7520_14, G1_7520_22, G1_ANKLE, MotorModel
from robolearn.robots.spec import JointRow, RobotSpec, spec_from_joint_table

# Joint rows: (name, unitree_hg motor slot, drive, lower, upper, default). The 29-DoF G1
# (robolearn/robots/g1_29.py) has the same legs, waist yaw and arms up to the wrist roll.
JointRowData = tuple[str, int, MotorModel, float, float, float]
LEGS_AND_WAIST_YAW: tuple[JointRowData, ...] = (
    ("left_hip_pitch_joint", 0, G1_7520_14, -2.5307, 2.8798, -0.1),
    ("left_hip_roll_joint", 1, G1_7520_22, -0.5236, 2.9671, 0.0),
    ("left_hip_yaw_joint", 2, G1_7520_14, -2.7576, 2.7576, 0.0),
    ("left_knee_joint", 3, G1_7520_22, -0.087267, 2.8798, 0.3),
    ("left_ankle_pitch_joint", 4, G1_ANKLE, -0.87267, 0.5236, -0.2),
    ("left_ankle_roll_joint", 5, G1_ANKLE, -0.2618, 0.2618, 0.0),
    ("right_hip_pitch_joint", 6, G1_7520_14, -2.5307, 2.8798, -0.1),
    ("right_hip_roll_joint", 7, G1_7520_22, -2.9671, 0.5236, 0.0),
    ("right_hip_yaw_joint", 8, G1_7520_14, -2.7576, 2.7576, 0.0),
    ("right_knee_joint", 9, G1_7520_22, -0.087267, 2.8798, 0.3),
    ("right_ankle_pitch_joint", 10, G1_ANKLE, -0.87267, 0.5236, -0.2),
    ("right_ankle_roll_joint", 11, G1_ANKLE, -0.2618, 0.2618, 0.0),
    ("waist_yaw_joint", 12, G1_7520_14, -2.618, 2.618, 0.0),
)
LEFT_ARM: tuple[JointRowData, ...] = (
    ("left_shoulder_pitch_joint", 15, G1_5020, -3.0892, 2.6704, 0.2),
    ("left_shoulder_roll_joint", 16, G1_5020, -1.5882, 2.2515, 0.2),
    ("left_shoulder_yaw_joint", 17, G1_5020, -2.618, 2.618, 0.0),
    ("left_elbow_joint", 18, G1_5020, -1.0472, 2.0944, 1.28),
    ("left_wrist_roll_joint", 19, G1_5020, -1.972222054, 1.972222054, 0.0),
)
RIGHT_ARM: tuple[JointRowData, ...] = (
    ("right_shoulder_pitch_joint", 22, G1_5020, -3.0892, 2.6704, 0.2),
    ("right_shoulder_roll_joint", 23, G1_5020, -2.2515, 1.5882, -0.2),
    ("right_shoulder_yaw_joint", 24, G1_5020, -2.618, 2.618, 0.0),
    ("right_elbow_joint", 25, G1_5020, -1.0472, 2.0944, 1.28),
    ("right_wrist_roll_joint", 26, G1_5020, -1.972222054, 1.972222054, 0.0),
)
_TABLE: tuple[JointRowData, ...] = (*LEGS_AND_WAIST_YAW, *LEFT_ARM, *RIGHT_ARM)


def g1_spec(table: tuple[JointRow, ...], name: str, model_file: str) -> RobotSpec:
    """A G1 spec from its joint table: what every G1 variant shares (unitree_hg, 35 motor slots, the
    pelvis IMU, the legs and feet) is set here once."""
    return spec_from_joint_table(
        table,
        name=name,
        num_motor_slots=35,
        control_dt=0.02,
        physics_dt=0.005,
        message_family="unitree_hg",
        # LowState's IMU on the G1 is the pelvis one (unitree_rl_gym deploy config imu_type: pelvis).
        imu_body="pelvis",
        imu_site="imu_in_pelvis",
        base_body="pelvis",
        foot_bodies=("left_ankle_roll_link", "right_ankle_roll_link"),
        foot_geoms=("left_foot", "right_foot"),
        # Forward kinematics of the model at the default pose, soles on z = 0: the legs are the same
        # on every variant (tests/robots/test_robot_models.py and test_robot_g1_29.py recompute it).
        base_height=0.7842,
        total_mass=35.0,
        model_file=model_file,
    )


G1_SPEC: RobotSpec = g1_spec(tuple(JointRow(*row) for row in _TABLE), "g1", "g1/scene.xml")
