"""RobotSpec: JSON round trip, validation messages, registry, and the facts each spec records."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from robolearn.errors import UserError
from robolearn.robots import G1_SPEC, GO2_SPEC, ROBOT_SPECS, RobotSpec, get_robot_spec, robot_names

SPECS = [GO2_SPEC, G1_SPEC]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_json_round_trip_is_exact(spec: RobotSpec) -> None:
    text = spec.to_json()
    again = RobotSpec.from_json(text)
    assert again == spec
    assert json.loads(text) == spec.to_dict()
    assert RobotSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_is_consistent(spec: RobotSpec) -> None:
    assert spec.decimation * spec.physics_dt == pytest.approx(spec.control_dt)
    assert len(set(spec.motor_indices)) == spec.num_joints
    assert spec.default_pos_array.shape == (spec.num_joints,)
    with pytest.raises(ValueError):
        spec.default_pos_array[0] = 1.0  # shared arrays are read-only


def test_go2_facts() -> None:
    assert GO2_SPEC.num_joints == 12
    assert GO2_SPEC.joint_names[:3] == ("FR_hip_joint", "FR_thigh_joint", "FR_calf_joint")
    assert [n.split("_")[0] for n in GO2_SPEC.joint_names[::3]] == ["FR", "FL", "RR", "RL"]
    assert GO2_SPEC.motor_indices == tuple(range(12))
    assert GO2_SPEC.message_family == "unitree_go"
    assert GO2_SPEC.control_dt == 0.02 and GO2_SPEC.decimation == 4


def test_g1_uses_the_23dof_motor_slots() -> None:
    assert G1_SPEC.num_joints == 23
    assert G1_SPEC.message_family == "unitree_hg"
    slots = dict(zip(G1_SPEC.joint_names, G1_SPEC.motor_indices, strict=True))
    assert slots["left_hip_pitch_joint"] == 0 and slots["right_ankle_roll_joint"] == 11
    assert slots["waist_yaw_joint"] == 12
    assert slots["left_shoulder_pitch_joint"] == 15 and slots["left_wrist_roll_joint"] == 19
    assert slots["right_shoulder_pitch_joint"] == 22 and slots["right_wrist_roll_joint"] == 26
    # Waist roll/pitch and wrist pitch/yaw do not exist on the 23-DoF robot.
    assert not {13, 14, 20, 21, 27, 28} & set(G1_SPEC.motor_indices)


def _broken(**changes: object) -> dict[str, object]:
    data = GO2_SPEC.to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kp": [1.0] * 11}, "kp has 11 values but there are 12 joints"),
        ({"message_family": "unitree_gp"}, "is not one of unitree_go, unitree_hg (did you mean"),
        ({"motor_indices": [0] * 12}, "motor index 0 is used by two joints"),
        ({"motor_indices": list(range(15, 27))}, "outside 0..19"),
        ({"default_joint_pos": [5.0] * 12}, "default position 5.0 of FR_hip_joint is outside"),
        ({"physics_dt": 0.003}, "whole multiple of physics_dt"),
        ({"torque_limits": [0.0] * 12}, "torque_limits of FR_hip_joint must be positive"),
        ({"kd": [float("nan")] * 12}, "kd of FR_hip_joint is not finite"),
        ({"kp": "stiff"}, "field 'kp' must be a list"),
        ({"control_dt": True}, "must be float, got bool"),
        ({"joint_names": ["FR_hip_joint"] * 12}, "appears twice"),
    ],
)
def test_bad_spec_raises_one_line_user_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UserError) as info:
        RobotSpec.from_dict(_broken(**changes))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_and_missing_fields() -> None:
    data = GO2_SPEC.to_dict()
    data["kpp"] = data.pop("kp")
    with pytest.raises(UserError, match="unknown field 'kpp' \\(did you mean kp"):
        RobotSpec.from_dict(data)
    data = GO2_SPEC.to_dict()
    del data["kd"]
    with pytest.raises(UserError, match="missing field\\(s\\): kd"):
        RobotSpec.from_dict(data)
    with pytest.raises(UserError, match="not valid JSON"):
        RobotSpec.from_json("{")


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(UserError, match="lower limit"):
        dataclasses.replace(GO2_SPEC, joint_pos_lower=GO2_SPEC.joint_pos_upper)


def test_registry() -> None:
    # Other robots (the 29-DoF G1) may join; the list stays sorted and the error names them all.
    names = robot_names()
    assert names == sorted(names) and {"g1", "go2"} <= set(names)
    assert get_robot_spec("go2") is GO2_SPEC and ROBOT_SPECS["g1"] is G1_SPEC
    choices = re.escape(", ".join(names))
    with pytest.raises(
        UserError, match=f"unknown robot 'go3' \\(did you mean go2\\?\\); choices: {choices}$"
    ):
        get_robot_spec("go3")


def test_select_restricts_and_reorders_every_per_joint_field() -> None:
    names = ("FL_calf_joint", "FR_hip_joint", "RL_thigh_joint")
    sub = GO2_SPEC.select(names)
    index = [GO2_SPEC.joint_names.index(n) for n in names]
    assert sub.joint_names == names and sub.num_joints == 3
    for field in (
        "motor_indices",
        "default_joint_pos",
        "kp",
        "kd",
        "torque_limits",
        "joint_pos_lower",
        "action_scale",
    ):
        assert getattr(sub, field) == tuple(getattr(GO2_SPEC, field)[i] for i in index), field
    assert sub.name == GO2_SPEC.name and sub.control_dt == GO2_SPEC.control_dt
    assert GO2_SPEC.select(GO2_SPEC.joint_names) is GO2_SPEC
    with pytest.raises(
        UserError, match=r"joint 'FL_calf' is not a joint of go2 \(did you mean FL_calf_joint"
    ):
        GO2_SPEC.select(["FL_calf"])
    with pytest.raises(UserError, match="joint 'FR_hip_joint' is listed twice"):
        GO2_SPEC.select(["FR_hip_joint", "FR_hip_joint"])
    with pytest.raises(UserError, match="at least one joint"):
        GO2_SPEC.select([])
