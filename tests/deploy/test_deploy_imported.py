"""Imported policies through the deploy runtime (contract 3 extensions, issue 19).

A hand-built 12-joint leg policy on the 29-joint G1 (and the 23-joint one), in its own joint order,
an LSTM with explicit state, tuned gains (robot_overrides), base_lin_vel and clipped terms: built
here with torch and exported to ONNX, run by onnxruntime and MuJoCo like any artifact.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robolearn.deploy.artifact import (
    NETWORK_FILE,
    PolicyArtifact,
    PolicyContract,
    check_spec_matches,
    load_artifact,
    write_contract,
)
from robolearn.errors import UserError
from robolearn.robots import LOCOMOTION_TERMS, ObsTerm, RobotSpec, RobotState
from robolearn.robots.registry import get_robot_spec

pytest.importorskip("onnxruntime")

G1_29 = get_robot_spec("g1_29dof")
# unitree_rl_gym's G1 leg order is robolearn's; this network lists the right leg first and each leg
# from the ankle up, so a runtime that ignored policy_joints' order would feed it the wrong joints.
LEGS = tuple(
    f"{side}_{part}_joint"
    for side in ("right", "left")
    for part in ("ankle_roll", "ankle_pitch", "knee", "hip_yaw", "hip_roll", "hip_pitch")
)
TERMS: tuple[ObsTerm, ...] = tuple(dataclasses.replace(t, noise=0.0) for t in LOCOMOTION_TERMS)
RANGES = ((-0.8, 0.8), (-0.4, 0.4), (-1.0, 1.0))
HIDDEN = 8


class Mlp(torch.nn.Module):
    """A small MLP whose outputs stay well inside the action guard's limit (tanh * 0.3)."""

    def __init__(self, inputs: int, outputs: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(inputs, 16), torch.nn.ELU(), torch.nn.Linear(16, outputs)
        )

    def forward(self, obs: Any) -> Any:
        return 0.3 * torch.tanh(self.net(obs))


class Lstm(torch.nn.Module):
    """legged_gym's recurrent actor shape: LSTM memory then an MLP head; state in and out explicitly."""

    def __init__(self, inputs: int, outputs: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.memory = torch.nn.LSTM(inputs, HIDDEN, num_layers=1)
        self.head = torch.nn.Linear(HIDDEN, outputs)

    def forward(self, obs: Any, h: Any, c: Any) -> tuple[Any, Any, Any]:
        out, (h2, c2) = self.memory(obs.unsqueeze(0), (h, c))
        return 0.3 * torch.tanh(self.head(out.squeeze(0))), h2, c2


def build_artifact(
    root: Path,
    spec: RobotSpec = G1_29,
    joints: tuple[str, ...] | None = LEGS,
    terms: tuple[ObsTerm, ...] = TERMS,
    recurrent: bool = False,
    overrides: dict[str, dict[str, float]] | None = None,
    declared: tuple[str, ...] | None = None,
    action_clip: float | None = 5.0,
    seed: int = 0,
) -> PolicyArtifact:
    """An artifact as an importer writes it: the full robot spec (with tuned values), policy_joints,
    robot_overrides, network.state; the ONNX graph exported from a torch module made here."""
    for field, values in (overrides or {}).items():
        column = list(getattr(spec, field))
        for name, value in values.items():
            column[spec.joint_names.index(name)] = value
        changed: dict[str, Any] = {field: tuple(column)}
        spec = dataclasses.replace(spec, **changed)
    declared = tuple(overrides or ()) if declared is None else declared
    network: dict[str, Any] = {"file": NETWORK_FILE, "input": "obs", "output": "actions"}
    if recurrent:
        network["state"] = [
            {"input": "h_in", "output": "h_out", "shape": [1, 1, HIDDEN]},
            {"input": "c_in", "output": "c_out", "shape": [1, 1, HIDDEN]},
        ]
    contract = PolicyContract(
        robot=spec,
        terms=terms,
        obs_clip=100.0,
        history_length=1,
        normalization=None,
        action_clip=action_clip,
        command_ranges=RANGES,
        network=network,
        checkpoint=(),
        source={"kind": "test", "importer": "tests/deploy/test_deploy_imported.py"},
        policy_joints=joints,
        robot_overrides=declared,
    )
    inputs, outputs = contract.input_size, contract.action_size
    module = (Lstm if recurrent else Mlp)(inputs, outputs, seed).eval()
    root.mkdir(parents=True, exist_ok=True)
    args: tuple[Any, ...] = (torch.zeros(1, inputs),)
    names_in, names_out = ["obs"], ["actions"]
    if recurrent:
        args = (*args, torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))
        names_in, names_out = [*names_in, "h_in", "c_in"], [*names_out, "h_out", "c_out"]
    torch.onnx.export(
        module,
        args,
        str(root / NETWORK_FILE),
        input_names=names_in,
        output_names=names_out,
        opset_version=17,
        dynamo=False,
    )
    torch.save(module.state_dict(), root / "module.pt")
    network.update(input_size=inputs, output_size=outputs)
    write_contract(root / "contract.json", contract)
    return load_artifact(root)


def load_module(artifact: PolicyArtifact, recurrent: bool) -> Any:
    """The torch module the artifact's graph was exported from (the reference)."""
    c = artifact.contract
    module = (Lstm if recurrent else Mlp)(c.input_size, c.action_size, 0)
    module.load_state_dict(torch.load(artifact.root / "module.pt"))
    return module.eval()


# --- the contract ---------------------------------------------------------------------------------
def test_policy_joints_overrides_and_state_round_trip(tmp_path: Path) -> None:
    art = build_artifact(
        tmp_path / "a", recurrent=True, overrides={"kp": {"left_knee_joint": 120.0}}, action_clip=None
    )
    c = art.contract
    assert c.policy_joints == LEGS and c.robot_overrides == ("kp",) and c.action_size == 12
    assert [G1_29.joint_names[i] for i in c.policy_index] == list(LEGS)
    assert c.policy_spec.joint_names == LEGS and c.frame_size == 9 + 3 * 12
    assert [(e.input, e.output, e.shape) for e in c.recurrent_state] == [
        ("h_in", "h_out", (1, 1, HIDDEN)),
        ("c_in", "c_out", (1, 1, HIDDEN)),
    ]
    data = json.loads((art.root / "contract.json").read_text())
    assert data["policy_joints"] == list(LEGS) and data["robot_overrides"] == ["kp"]
    assert data["action"]["size"] == 12
    assert data["action"]["offset"] == [G1_29.default_joint_pos[G1_29.joint_names.index(j)] for j in LEGS]
    assert PolicyContract.from_dict(data).to_dict() == data
    # full_action scatters in network order, zero elsewhere; policy_state gathers the same joints.
    raw = np.arange(1.0, 13.0)
    full = c.full_action(raw)
    assert full.shape == (29,) and full[G1_29.joint_names.index("right_ankle_roll_joint")] == 1.0
    assert full[G1_29.joint_names.index("left_hip_pitch_joint")] == 12.0
    assert np.count_nonzero(full) == 12
    state = RobotState.default(G1_29)
    state = dataclasses.replace(state, joint_pos=np.arange(29.0), last_action=full)
    sub = c.policy_state(state)
    np.testing.assert_array_equal(sub.last_action, raw)
    assert sub.joint_pos[0] == G1_29.joint_names.index("right_ankle_roll_joint")


def test_contracts_without_the_new_fields_are_unchanged(tmp_path: Path) -> None:
    art = build_artifact(tmp_path / "a", joints=None)
    c = art.contract
    data = json.loads((art.root / "contract.json").read_text())
    assert "policy_joints" not in data and "robot_overrides" not in data and "state" not in data["network"]
    assert c.policy_spec is c.robot and c.action_size == 29 and c.recurrent_state == ()
    raw = np.linspace(-1, 1, 29)
    state = RobotState.default(G1_29)
    assert c.full_action(raw) is raw and c.policy_state(state) is state


def test_check_spec_matches_skips_only_declared_tuning_fields(tmp_path: Path) -> None:
    tuned = {"kp": {"left_knee_joint": 120.0}, "default_joint_pos": {"left_knee_joint": 0.35}}
    declared = build_artifact(tmp_path / "declared", overrides=tuned).contract
    check_spec_matches(declared.robot, G1_29, declared.robot_overrides)
    with pytest.raises(
        UserError,
        match=r"in default_joint_pos \(left_knee_joint: policy 0.35 vs robot 0.3\) \(an importer that tuned it",
    ):
        check_spec_matches(declared.robot, G1_29)  # not declared: refused
    with pytest.raises(UserError, match="only kp, kd, default_joint_pos, action_scale may differ"):
        check_spec_matches(declared.robot, G1_29, ("torque_limits",))
    # Declaring kp does not excuse a kd change.
    kd = dataclasses.replace(declared.robot, kd=tuple(2 * v for v in declared.robot.kd))
    with pytest.raises(UserError, match="in kd"):
        check_spec_matches(kd, G1_29, declared.robot_overrides)
    # Overridden values are still validated as a spec: a default outside the joint range is refused.
    with pytest.raises(UserError, match=r"default position 9.0 of left_knee_joint is outside its range"):
        build_artifact(tmp_path / "bad", overrides={"default_joint_pos": {"left_knee_joint": 9.0}})
