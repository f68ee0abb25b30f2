"""Robot contract layer: one RobotSpec per robot, pure observation/action functions, actuator physics.

MuJoCo-specific helpers (loading and checking models, index maps) live in robolearn.robots.model,
imported on demand so the deploy runtime can use the rest without MuJoCo.
"""

from robolearn.robots.actuators import MotorModel, pd_gains, pd_torque, reflected_inertia
from robolearn.robots.g1 import G1_SPEC
from robolearn.robots.go2 import GO2_SPEC
from robolearn.robots.observations import (
    LOCOMOTION_TERMS,
    ObsLayoutEntry,
    ObsTerm,
    action_to_joint_targets,
    build_observation,
    joint_targets_to_action,
    observation_layout,
    observation_size,
)
from robolearn.robots.registry import ROBOT_SPECS, get_robot_spec, robot_names
from robolearn.robots.spec import RobotSpec
from robolearn.robots.state import RobotState

__all__ = [
    "G1_SPEC",
    "GO2_SPEC",
    "LOCOMOTION_TERMS",
    "ROBOT_SPECS",
    "MotorModel",
    "ObsLayoutEntry",
    "ObsTerm",
    "RobotSpec",
    "RobotState",
    "action_to_joint_targets",
    "build_observation",
    "get_robot_spec",
    "joint_targets_to_action",
    "observation_layout",
    "observation_size",
    "pd_gains",
    "pd_torque",
    "reflected_inertia",
    "robot_names",
]
