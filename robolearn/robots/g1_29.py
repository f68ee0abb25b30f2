"""Unitree G1 humanoid, 29-DoF variant (rev 1.0 hardware, mode_machine 5), in unitree_hg motor order.

The 29-DoF G1 uses every motor slot the G1 firmware knows (G1JointIndex 0-28): the 23-DoF robot's
joints plus waist roll/pitch (slots 13, 14) and wrist pitch/yaw (20, 21 left, 27, 28 right). It is
the G1 of Unitree's Isaac Lab tasks and of mjlab. Slots 29-34 of the 35-slot LowCmd stay unused.

Sources (details and the full table in docs/robots.md, "G1 with 29 DoF"):
- Motor slots: unitree_sdk2_python example/g1/low_level/g1_low_level_example.py (G1JointIndex,
  G1_NUM_MOTOR = 29); the same order is unitree_rl_lab's joint_sdk_names for UNITREE_G1_29DOF_CFG.
- Joint ranges, torque and speed limits: unitree_ros robots/g1_description/g1_29dof_rev_1_0.urdf
  (mode_machine 5 in that folder's README); ±50 N·m on the ankles and waist roll/pitch from its
  g1_29dof_rev_1_0.xml.
- Motors per joint: the README's rev 1.0 row (hip pitch 14.3:1 = 7520-14, hip roll 22.5:1 =
  7520-22, 4010 wrists) and mjlab's asset_zoo/robots/unitree_g1/g1_constants.py (which joints each
  motor drives; waist roll/pitch and ankles are two 5020s on a linkage; 4010 rotor inertia 0.068e-4
  kg·m² through 5:1 and 5:1).
- Default pose: mjlab's G1 HOME_KEYFRAME (the 29-DoF robot): the 23-DoF spec's pose, with the
  waist roll/pitch and wrist pitch/yaw at 0.
- Control 0.02 s and physics 0.005 s, as the 23-DoF G1 (unitree_rl_gym deploy g1.yaml control_dt;
  mjlab's G1 timestep).
- Published mass: about 35 kg with battery (unitree.com G1 specifications).
"""

from __future__ import annotations

import dataclasses

from robolearn.robots.actuators import G1_ANKLE, MotorModel
from robolearn.robots.g1 import LEFT_ARM, LEGS_AND_WAIST_YAW, RIGHT_ARM, JointRowData, g1_spec
from robolearn.robots.spec import JointRow, RobotSpec

# Wrist pitch/yaw: Unitree 4010, one rotor inertia through a 25:1 (5 x 5) reduction (mjlab
# g1_constants.py ROTOR_INERTIAS_4010 / GEARS_4010; unitree_rl_lab calls the drive W4010-25).
# Limits: 5 N·m and 22 rad/s, g1_29dof_rev_1_0.urdf's wrist pitch/yaw joints.
G1_4010 = MotorModel(
    name="g1_4010",
    rotor_inertias=(0.068e-4, 0.0, 0.0),
    gear_ratios=(5.0, 5.0, 1.0),
    torque_limit=5.0,
    velocity_limit=22.0,
    source="Unitree 4010 datasheet via mjlab g1_constants.py; limits from g1_29dof_rev_1_0.urdf",
)

# Waist roll/pitch: two 5020s on a linkage, like the ankle (mjlab G1_ACTUATOR_WAIST), and Unitree's
# g1_29dof_rev_1_0 files give them the ankle's limits (±50 N·m in the MJCF, 35 in the URDF; 30 rad/s).
G1_WAIST_LINKAGE = dataclasses.replace(
    G1_ANKLE,
    name="g1_waist_linkage",
    source="2 x Unitree 5020 on a linkage (mjlab); ±50 N·m from g1_29dof_rev_1_0.xml",
)

WRIST_ROLL_RANGE = 1.972222054
WRIST_PITCH_YAW_RANGE = 1.614429558
WAIST_ROLL_PITCH_RANGE = 0.52

# The 23-DoF G1's rows (robolearn/robots/g1.py) with the waist roll/pitch and the wrist pitch/yaw
# joints in their motor slots: (name, unitree_hg motor slot, drive, lower, upper, default).
_TABLE: tuple[JointRowData, ...] = (
    *LEGS_AND_WAIST_YAW,
    ("waist_roll_joint", 13, G1_WAIST_LINKAGE, -WAIST_ROLL_PITCH_RANGE, WAIST_ROLL_PITCH_RANGE, 0.0),
    ("waist_pitch_joint", 14, G1_WAIST_LINKAGE, -WAIST_ROLL_PITCH_RANGE, WAIST_ROLL_PITCH_RANGE, 0.0),
    *LEFT_ARM,
    ("left_wrist_pitch_joint", 20, G1_4010, -WRIST_PITCH_YAW_RANGE, WRIST_PITCH_YAW_RANGE, 0.0),
    ("left_wrist_yaw_joint", 21, G1_4010, -WRIST_PITCH_YAW_RANGE, WRIST_PITCH_YAW_RANGE, 0.0),
    *RIGHT_ARM,
    ("right_wrist_pitch_joint", 27, G1_4010, -WRIST_PITCH_YAW_RANGE, WRIST_PITCH_YAW_RANGE, 0.0),
    ("right_wrist_yaw_joint", 28, G1_4010, -WRIST_PITCH_YAW_RANGE, WRIST_PITCH_YAW_RANGE, 0.0),
)

G1_29_SPEC: RobotSpec = g1_spec(tuple(JointRow(*row) for row in _TABLE), "g1_29dof", "g1/scene_29dof.xml")

MOTOR_SOURCES_29: dict[str, str] = {m.name: m.source for m in (G1_4010, G1_WAIST_LINKAGE)}
