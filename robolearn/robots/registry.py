"""Robot specs by name: the names configs/robot/<name>.yaml and contract.json use."""

from __future__ import annotations

from robolearn.errors import UserError, close_matches
from robolearn.robots.g1 import G1_SPEC
from robolearn.robots.g1_29 import G1_29_SPEC
from robolearn.robots.go2 import GO2_SPEC
from robolearn.robots.spec import RobotSpec

ROBOT_SPECS: dict[str, RobotSpec] = {spec.name: spec for spec in (GO2_SPEC, G1_SPEC, G1_29_SPEC)}


def robot_names() -> list[str]:
    """Names of the robots with a spec, sorted."""
    return sorted(ROBOT_SPECS)


def get_robot_spec(name: str) -> RobotSpec:
    """The spec registered under name, or a UserError listing the choices."""
    try:
        return ROBOT_SPECS[name]
    except KeyError:
        raise UserError(
            f"unknown robot '{name}'{close_matches(name, ROBOT_SPECS)}; choices: {', '.join(robot_names())}"
        ) from None
