"""contract.json is validated as a whole, against the ONNX graph and the robot spec, before any DDS traffic."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REFERENCE, run_module

from robolearn.config.validate import compose_config
from robolearn.deploy import dds
from robolearn.deploy.app import build_session
from robolearn.deploy.artifact import CONTRACT_FILE, load_artifact, max_action_clip
from robolearn.errors import UserError
from robolearn.robots import GO2_SPEC
from robolearn.robots.registry import get_robot_spec

Mutation = Callable[[dict[str, Any]], None]
# The action.clip bound of the reference artifact's spec, as the error prints it: "(0, 10.56]" for the Go2.
BOUND = re.escape(f"(0, {max_action_clip(load_artifact(REFERENCE).contract.robot):.4g}]")


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets one dotted path (list items as [i]) of the contract."""

    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value

    return mutate


# (mutation, a regex the one-line error must match: the field, the value, what is allowed)
BAD_FIELDS: dict[str, tuple[Mutation, str]] = {
    "format_version": (_set("format_version", 2), r"format_version 2 is not supported"),
    "robot.kp": (_set("robot.kp", "x"), r"robot: robot spec field 'kp' must be a list"),
    "control_dt": (_set("control_dt", 0), r"control_dt = 0 is not allowed; a finite number in \(0, inf\)"),
    "message_family": (
        _set("message_family", "unitree_xx"),
        r"message_family = \"unitree_xx\" .*one of unitree_go",
    ),
    "observation.terms.name": (
        _set("observation.terms[0].name", "base_ang_velocity"),
        r"observation.terms\[0\].name = \"base_ang_velocity\" is not allowed; one of",
    ),
    "observation.terms.noise": (
        _set("observation.terms[4].noise", -1.5),
        r"observation.terms\[4\].noise = -1.5 is not allowed; a finite number in \[0, inf\)",
    ),
    "observation.terms.scale": (
        _set("observation.terms[0].scale", [0.25, "x", 0.25]),
        r"observation.terms\[0\].scale\[1\] = \"x\"",
    ),
    "observation.clip": (
        _set("observation.clip", -1.0),
        r"observation.clip = -1.0 is not allowed; a finite number in \(0",
    ),
    "observation.history.length": (
        _set("observation.history.length", 0),
        r"observation.history.length = 0 is not allowed; an integer in \[1, 1000\]",
    ),
    "observation.history.length_vs_graph": (
        _set("observation.history.length", 2),
        r"the graph's input has 45 values, the contract's observation builds 90",
    ),
    "observation.normalization.var": (
        _set(
            "observation.normalization",
            {"mean": [0.0] * 45, "var": [-1.0] * 45, "epsilon": 1e-8, "clip": 10.0},
        ),
        r"observation.normalization.var\[0\] = -1.0 is not allowed; a finite number in \[0, inf\)",
    ),
    "action.size": (_set("action.size", 13), r"action.size = 13 is not allowed; the robot has 12 joints"),
    "action.scale_type": (
        _set("action.scale", "abc"),
        r"action.scale = \"abc\" is not allowed; expected a list of 12",
    ),
    "action.scale_item": (
        _set("action.scale[2]", "abc"),
        r"action.scale\[2\] = \"abc\" is not allowed; a finite number",
    ),
    "action.offset_inf": (
        _set("action.offset[0]", math.inf),
        r"action.offset\[0\] = inf is not allowed; a finite number",
    ),
    "action.clip_huge": (
        _set("action.clip", 1e9),
        r"action.clip = 1000000000.0 is not allowed; a number in " + BOUND + r" for go2",
    ),
    "action.clip_nan": (
        _set("action.clip", math.nan),
        r"action.clip = nan is not allowed; a number in " + BOUND,
    ),
    "action.clip_negative": (
        _set("action.clip", -1),
        r"action.clip = -1 is not allowed; a number in " + BOUND,
    ),
    "action.clip_string": (_set("action.clip", "5"), r"action.clip = \"5\" is not allowed"),
    "command.ranges": (
        _set("command.ranges[0]", [1.0, -1.0]),
        r"command.ranges\[0\] = \[1.0, -1.0\] is not allowed; expected \[min, max\]",
    ),
    "gait.period_s": (_set("gait", {"period_s": 0.0}), r"gait.period_s = 0.0 is not allowed"),
    "network.file": (
        _set("network.file", "../policy.onnx"),
        r"network.file = \"../policy.onnx\" is not allowed; a file name inside",
    ),
    "network.input": (
        _set("network.input", "observation"),
        r"the contract names input 'observation'.*inputs \['obs'\]",
    ),
    "network.input_size": (
        _set("network.input_size", 99),
        r"network.input_size = 99 is not allowed; the graph in policy.onnx has 45 input values",
    ),
    "network.output_size": (
        _set("network.output_size", 13),
        r"network.output_size = 13 is not allowed; the graph in policy.onnx has 12 output values",
    ),
    "network.input_size_type": (
        _set("network.input_size", "45"),
        r"network.input_size = \"45\" is not allowed; an integer",
    ),
    "command_missing": (lambda d: d.pop("command"), r"is malformed: command.ranges is missing"),
    # Contract 3 extensions (imported policies): policy_joints, robot_overrides, network.state, term clip.
    "policy_joints_unknown": (
        _set("policy_joints", ["FR_hip_joint", "FR_hipp_joint"]),
        r"policy_joints: joint 'FR_hipp_joint' is not a joint of go2 \(did you mean FR_hip_joint",
    ),
    "policy_joints_repeated": (
        _set("policy_joints", ["FR_hip_joint", "FR_hip_joint"]),
        r"policy_joints: joint 'FR_hip_joint' is listed twice",
    ),
    "policy_joints_type": (
        _set("policy_joints", "FR_hip_joint"),
        r"policy_joints = \"FR_hip_joint\" is not allowed; a non-empty list of go2 joint names",
    ),
    "policy_joints_vs_action_size": (
        _set("policy_joints", ["FR_hip_joint", "FR_thigh_joint"]),
        r"observation term 'joint_pos_rel' has 12 scales but 2 values for go2",
    ),
    "robot_overrides_hardware": (
        _set("robot_overrides", ["kp", "torque_limits"]),
        r"robot_overrides\[1\] = \"torque_limits\" is not allowed; an importer may only tune kp, kd,"
        r" default_joint_pos, action_scale",
    ),
    "observation.terms.clip": (
        _set("observation.terms[0].clip", [1.0, -1.0]),
        r"observation.terms\[0\].clip = \[1.0, -1.0\] is not allowed; \[lo, hi\] with lo < hi",
    ),
    "network.state_reuses_a_name": (
        _set("network.state", [{"input": "obs", "output": "h_out", "shape": [1, 1, 8]}]),
        r"network.state\[0\].input = \"obs\" is not allowed; a tensor name used nowhere else",
    ),
    "network.state_shape": (
        _set("network.state", [{"input": "h_in", "output": "h_out", "shape": [1, 0, 8]}]),
        r"network.state\[0\].shape\[1\] = 0 is not allowed; an integer in \[1, inf\]",
    ),
    "network.state_not_in_graph": (
        _set("network.state", [{"input": "h_in", "output": "h_out", "shape": [1, 1, 8]}]),
        r"network.state names input 'h_in', the graph's inputs are \['obs'\]",
    ),
}


def corrupted(tmp_path: Path, mutate: Mutation) -> Path:
    """A copy of the shipped reference artifact with one field changed."""
    folder = tmp_path / "artifact"
    shutil.copytree(REFERENCE, folder)
    data = json.loads((folder / CONTRACT_FILE).read_text())
    mutate(data)
    (folder / CONTRACT_FILE).write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("field", list(BAD_FIELDS))
def test_each_bad_contract_field_is_one_line_before_any_dds_traffic(
    field: str, domains, tmp_path: Path
) -> None:
    mutate, message = BAD_FIELDS[field]
    artifact = corrupted(tmp_path, mutate)
    domain = domains.take()
    cfg = compose_config(
        "deploy", [f"policy={artifact}", "backend=dds", f"domain_id={domain}", "keyboard=false"]
    )
    with pytest.raises(UserError) as caught:
        build_session(cfg)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 400, text
    assert re.search(message, text), text
    assert domain not in dds._domains  # refused before a DDS participant existed on the domain


def test_the_shipped_artifact_passes_every_check(domains) -> None:
    domain = domains.take()
    runtime, _, _ = build_session(
        compose_config(
            "deploy", [f"policy={REFERENCE}", "backend=dds", f"domain_id={domain}", "keyboard=false"]
        )
    )
    runtime.backend.close()
    assert runtime.controller.guards.action_limit.max() == 5.0  # the contract's clip, now trusted


@pytest.mark.parametrize("field", ["action.scale_type", "action.clip_huge"])
def test_the_deploy_verb_exits_2_with_one_line(field: str, domains, tmp_path: Path) -> None:
    artifact = corrupted(tmp_path, BAD_FIELDS[field][0])
    result = run_module(
        "robolearn.deploy",
        f"policy={artifact}",
        "backend=dds",
        f"domain_id={domains.take()}",
        "keyboard=false",
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert field.split("_")[0] in lines[0] and "Traceback" not in result.stdout + result.stderr


def test_action_clip_is_bounded_by_the_joint_ranges(tmp_path: Path) -> None:
    # The bound: the largest per-joint action that reaches the farther range edge (docs/deploy.md).
    bound = max_action_clip(GO2_SPEC)
    assert bound == pytest.approx((4.5379 - 1.0) / GO2_SPEC.action_scale[7])  # rear thigh, its upper edge
    assert max_action_clip(get_robot_spec("g1")) > 5.0  # the tasks' default clip fits both robots
    for clip, ok in ((bound * 0.999, True), (bound * 1.001, False), (None, True)):
        folder = corrupted(tmp_path / str(clip), _set("action.clip", clip))
        if ok:
            assert load_artifact(folder).contract.action_clip == clip
        else:
            with pytest.raises(UserError, match=r"action.clip = .* is not allowed; a number in " + BOUND):
                load_artifact(folder)
