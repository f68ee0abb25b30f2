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


def tensor(x: np.ndarray) -> Any:
    """A float32 torch tensor of (a slice of) a recorded field (structured-array rows are strided)."""
    return torch.tensor(np.asarray(x, dtype=np.float32).tolist())


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


# --- the runtime ----------------------------------------------------------------------------------
def deploy_args(artifact: PolicyArtifact, log: Path, robot: str = "g1_29dof", *extra: str) -> list[str]:
    """A short in-process MuJoCo session: stand 0.1 s, POLICY 0.1 s later, stop at 0.6 s, recorded."""
    return [
        f"robot={robot}",
        f"policy={artifact.root}",
        "backend=mujoco",
        "keyboard=false",
        "settings.ramp_s=0.1",
        "autopolicy_s=0.1",
        "duration_s=0.6",
        "exit_damp_s=0.02",
        "status_every_s=0",
        f"record.dir={log}",
        *extra,
    ]


def hand_observation(spec: RobotSpec, joints: tuple[str, ...], rec: Any) -> np.ndarray:
    """TERMS over the named joints, written out from one recorded policy step (not via the robots package)."""
    idx = [spec.joint_names.index(j) for j in joints]
    w, x, y, z = (float(v) for v in rec["base_quat"])
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    # World (0, 0, -1) in the body frame: minus the third row of the body-to-world rotation matrix.
    gravity = -np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])
    default = np.asarray(spec.default_joint_pos)[idx]
    return np.concatenate(
        [
            0.25 * rec["gyro"].astype(np.float64),
            gravity,
            np.array([2.0, 2.0, 0.25]) * rec["command"],
            rec["joint_pos"].astype(np.float64)[idx] - default,
            0.05 * rec["joint_vel"].astype(np.float64)[idx],
            rec["last_action"][idx],
        ]
    )


@pytest.mark.parametrize("robot", ["g1_29dof", "g1"])
def test_a_leg_policy_sees_its_joints_in_its_order_and_the_rest_hold_the_default(
    robot: str, tmp_path: Path
) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.deploy.app import run_deploy
    from robolearn.deploy.recorder import read_log
    from robolearn.deploy.safety import SafetyState

    spec = get_robot_spec(robot)
    art = build_artifact(tmp_path / "legs", spec=spec)
    summary = run_deploy(compose_config("deploy", deploy_args(art, tmp_path / "log", robot)))
    assert summary["outcome"] == "clean" and summary["policy_steps"] >= 10, summary
    log = read_log(tmp_path / "log")
    steps = log.policy[log.policy["safety"] == SafetyState.POLICY.value]
    assert len(steps) >= 10 and steps["obs"].shape[1] == 45
    module = load_module(art, recurrent=False)
    idx = [spec.joint_names.index(j) for j in LEGS]
    held = [i for i in range(spec.num_joints) if i not in idx]
    for rec in steps:
        # The network's input is the observation of its 12 joints, in its order, from the robot state.
        np.testing.assert_allclose(rec["obs"], hand_observation(spec, LEGS, rec), rtol=0, atol=2e-6)
        # Its output, in its order, lands on those joints; the others get action 0.
        with torch.no_grad():
            expected = module(tensor(rec["obs"][None])).numpy()[0]
        np.testing.assert_allclose(rec["action_raw"][idx], expected, rtol=0, atol=1e-6)
        assert np.all(rec["action_raw"][held] == 0.0) and np.all(rec["last_action"][held] == 0.0)
    assert np.abs(steps["action_raw"][:, idx]).max() > 0.01  # the policy really moved its joints
    # The commands sent in POLICY: policy joints at default + scale * action, the rest at the
    # default pose with the robot's own gains, every tick.
    control = log.control[
        (log.control["safety"] == SafetyState.POLICY.value) & (log.control["policy_step"] > 0)
    ]
    assert len(control) > 50
    by_step = {int(r["step"]): r for r in steps}
    default = np.asarray(spec.default_joint_pos, dtype=np.float32)
    for tick in control:
        np.testing.assert_array_equal(tick["cmd_q"][held], default[held])
        np.testing.assert_array_equal(tick["cmd_kp"][held], np.asarray(spec.kp, dtype=np.float32)[held])
        np.testing.assert_array_equal(tick["cmd_kd"][held], np.asarray(spec.kd, dtype=np.float32)[held])
        action = by_step[int(tick["policy_step"])]["action"].astype(np.float64)
        target = np.asarray(spec.default_joint_pos) + np.asarray(spec.action_scale) * action
        np.testing.assert_allclose(tick["cmd_q"][idx], target[idx], rtol=0, atol=1e-6)


def scripted_session(
    contract: PolicyContract,
    policy: Any,
    log: Path,
    moves: list[tuple[int, str | None]],
    allow_faults: bool = False,
) -> Any:
    """Drive a Controller (no simulator) through PASSIVE -> ... -> POLICY and the operator events in
    `moves` ([(policy ticks to run first, event)]), with a moving robot state; returns the log."""
    from robolearn.deploy.backends.base import StateSample
    from robolearn.deploy.commands import CommandLimiter
    from robolearn.deploy.operator import OperatorInput
    from robolearn.deploy.recorder import Recorder, read_log
    from robolearn.deploy.runtime import Controller, RuntimeOptions
    from robolearn.deploy.safety import Event, GuardConfig, Guards
    from robolearn.robots.spec import supported_mode_machines

    spec = contract.robot
    recorder = Recorder(log, {}, spec.num_joints, contract.frame_size, contract.input_size)
    dt = 0.002
    c = Controller(
        spec,
        RuntimeOptions(command_dt=dt, policy_dt=10 * dt, ramp_s=0.02, autostart=True, autopolicy_s=0.02),
        Guards(spec, GuardConfig()),
        CommandLimiter(spec),
        OperatorInput({"start": "start"}, contract.command_ranges),
        contract,
        policy,
        recorder,
    )
    c.guards.set_action_limit(contract.action_clip)
    c.operator.command = np.array([0.5, 0.0, 0.2])
    modes = supported_mode_machines(spec) or (0,)
    rng = np.random.default_rng(0)
    k = 0
    for ticks, event in [*moves, (0, None)]:
        done = 0
        while done < ticks and k < 5000:  # bounded: after a fault no policy step comes
            t = k * dt
            wobble = 0.05 * np.sin(3.0 * t + np.arange(spec.num_joints))
            c.on_state(
                StateSample(
                    spec.default_pos_array + wobble,
                    rng.normal(scale=0.2, size=spec.num_joints),
                    np.array([1.0, 0.01, -0.02, 0.0]),
                    rng.normal(scale=0.1, size=3),
                    tick=k,
                    received=t,
                    mode_machine=modes[0],
                    base_lin_vel=np.array([0.3, -0.05, 0.01]),
                )
            )
            if k % 10 == 0:
                before = c.summary()["policy_steps"]
                c.policy_tick(t)
                done += c.summary()["policy_steps"] - before
            c.command_tick(t)
            k += 1
        if event is not None:
            c.operator.push(Event(event), "test")
    recorder.close(c.summary())
    assert allow_faults or not c.faults, c.faults
    return read_log(log), c


def test_lstm_state_is_carried_and_zeroed_on_each_policy_entry(tmp_path: Path) -> None:
    from robolearn.deploy.policy import OnnxPolicy
    from robolearn.deploy.safety import SafetyState

    art = build_artifact(tmp_path / "lstm", recurrent=True)
    c = art.contract
    policy = OnnxPolicy(art.network_path, c)
    # 12 policy steps, back to standing (POLICY -> RAMP -> HOLD), POLICY again (autopolicy) for 12.
    log, controller = scripted_session(c, policy, tmp_path / "log", [(12, "stand"), (12, None)])
    entries = [tr.time for tr in controller.machine.history if tr.target is SafetyState.POLICY]
    assert len(entries) == 2
    segments = [
        log.policy[(log.policy["t"] >= a) & (log.policy["t"] < b)]
        for a, b in zip(entries, [entries[1], np.inf], strict=True)
    ]
    assert [len(s) for s in segments] == [12, 12]
    module = load_module(art, recurrent=True)
    idx = c.policy_index
    zeros = (torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))
    state = zeros
    carried: list[np.ndarray] = []
    for n, segment in enumerate(segments):
        if n == 1:
            with torch.no_grad():  # what the first step would give had the state not been zeroed
                carried = [module(tensor(segment["policy_input"][:1]), *state)[0].numpy()[0]]
        state = zeros  # the reference restarts its state where a POLICY segment starts
        for rec in segment:
            with torch.no_grad():
                action, *state = module(tensor(rec["policy_input"][None]), *state)
            np.testing.assert_allclose(rec["action_raw"][idx], action.numpy()[0], rtol=0, atol=1e-5)
    # The state matters (the zeroing is observable): carried over, the first action would differ.
    assert np.abs(carried[0] - segments[1]["action_raw"][0][idx]).max() > 1e-3
    # And it is carried within a segment: a fresh state every step would not reproduce step 5.
    with torch.no_grad():
        fresh = module(tensor(segments[0]["policy_input"][5:6]), *zeros)[0].numpy()[0]
    assert np.abs(fresh - segments[0]["action_raw"][5][idx]).max() > 1e-3


def test_robot_overrides_declared_drive_the_motors_undeclared_or_hardware_refused(tmp_path: Path) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.deploy.app import build_session, run_deploy
    from robolearn.deploy.recorder import read_log
    from robolearn.deploy.safety import SafetyState

    knee = G1_29.joint_names.index("left_knee_joint")
    waist = G1_29.joint_names.index("waist_yaw_joint")  # not a policy joint: held, with the tuned gain
    tuned = {"kp": {"left_knee_joint": 120.0, "waist_yaw_joint": 150.0}}
    undeclared = build_artifact(tmp_path / "undeclared", overrides=tuned, declared=())
    with pytest.raises(
        UserError, match=r"differs from this robolearn's in kp \(left_knee_joint: policy 120.0"
    ):
        build_session(compose_config("deploy", deploy_args(undeclared, tmp_path / "log0")))
    hardware = build_artifact(tmp_path / "hardware", overrides=tuned)
    data = json.loads((hardware.root / "contract.json").read_text())
    data["robot_overrides"] = ["kp", "torque_limits"]
    (hardware.root / "contract.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"robot_overrides\[1\] = \"torque_limits\" is not allowed"):
        build_session(compose_config("deploy", deploy_args(hardware, tmp_path / "log1")))
    declared = build_artifact(tmp_path / "declared", overrides=tuned)
    summary = run_deploy(compose_config("deploy", deploy_args(declared, tmp_path / "log")))
    assert summary["outcome"] == "clean" and summary["policy_steps"] > 0, summary
    control = read_log(tmp_path / "log").control
    for state in (SafetyState.HOLD, SafetyState.POLICY):
        ticks = control[control["safety"] == state.value]
        assert len(ticks) > 10
        np.testing.assert_array_equal(ticks["cmd_kp"][:, knee], np.float32(120.0))
        np.testing.assert_array_equal(ticks["cmd_kp"][:, waist], np.float32(150.0))
        # Every other joint keeps robolearn's gain.
        others = [i for i in range(G1_29.num_joints) if i not in (knee, waist)]
        kp = np.asarray(G1_29.kp, dtype=np.float32)[others]
        bad = np.argwhere(ticks["cmd_kp"][:, others] != kp)
        assert len(bad) == 0, (state, bad[:5], ticks["cmd_kp"][bad[0][0], others], kp)


def test_overrides_line_names_the_tuned_fields_and_the_held_joints(tmp_path: Path) -> None:
    from robolearn.deploy.app import overrides_line

    c = build_artifact(
        tmp_path / "a", recurrent=True, overrides={"kd": {"left_knee_joint": 3.0}}, action_clip=None
    ).contract
    line = overrides_line(c)
    assert line is not None and "\n" not in line
    assert "commands 12 of 29 joints" in line and "the other 17 held at the default pose" in line
    assert (
        "robot_overrides: its kd differ from robolearn's g1_29dof spec" in line
        and "recurrent (2 state" in line
    )
    assert overrides_line(build_artifact(tmp_path / "b", joints=None).contract) is None


BASE_LIN_VEL_TERMS = (ObsTerm("base_lin_vel", scale=2.0), *TERMS)


def test_base_lin_vel_is_refused_over_dds_in_one_line(domains: Any, tmp_path: Path) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.deploy import dds
    from robolearn.deploy.app import build_session

    art = build_artifact(tmp_path / "v", terms=BASE_LIN_VEL_TERMS)
    domain = domains.take()
    cfg = compose_config(
        "deploy",
        ["robot=g1_29dof", f"policy={art.root}", "backend=dds", f"domain_id={domain}", "keyboard=false"],
    )
    participants = dict(dds._domains)  # this worker's earlier tests may hold this domain id already
    with pytest.raises(UserError) as caught:
        build_session(cfg)
    text = str(caught.value)
    assert "\n" not in text and text.startswith("the policy observes base_lin_vel, which backend=dds cannot")
    assert "backend=mujoco" in text
    assert dds._domains == participants  # refused before any DDS participant was made


def test_mujoco_backend_supplies_the_body_frame_base_velocity(tmp_path: Path) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.deploy.app import run_deploy
    from robolearn.deploy.backends.mujoco_backend import MujocoBackend
    from robolearn.deploy.recorder import read_log
    from robolearn.deploy.safety import SafetyState

    go2 = get_robot_spec("go2")
    backend = MujocoBackend(go2)
    d, idx = backend.sim.data, backend.sim.index
    r, v = idx.root_qpos_adr, idx.root_qvel_adr
    d.qpos[r + 3 : r + 7] = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]  # yawed 90 degrees left
    d.qvel[v : v + 3] = [1.0, 0.0, 0.5]  # world: 1 m/s along x (the body's right), 0.5 up
    sample = backend.poll_state(0.0)
    assert sample.base_lin_vel is not None
    np.testing.assert_allclose(sample.base_lin_vel, [0.0, -1.0, 0.5], atol=1e-6)
    # End to end: a Go2 policy observing it runs in the in-process simulation, and its first three
    # observed values are twice the velocity the simulator had (not zeros, not a refusal).
    art = build_artifact(tmp_path / "v", spec=go2, joints=None, terms=BASE_LIN_VEL_TERMS)
    summary = run_deploy(
        compose_config(
            "deploy",
            deploy_args(
                art, tmp_path / "log", "go2", "mujoco.push_interval_s=[0.05,0.1]", "mujoco.push_velocity=0.5"
            ),
        )
    )
    assert summary["outcome"] == "clean" and summary["policy_steps"] > 0, summary
    log = read_log(tmp_path / "log")
    steps = log.policy[log.policy["safety"] == SafetyState.POLICY.value]
    assert np.all(np.isfinite(steps["obs"][:, :3])) and np.abs(steps["obs"][:, :2]).max() > 0.05


def test_term_clip_reaches_the_network_input(tmp_path: Path) -> None:
    from robolearn.deploy.policy import ObservationPipeline

    terms = (dataclasses.replace(TERMS[0], clip=(-0.5, 0.5)), *TERMS[1:])
    c = build_artifact(tmp_path / "a", terms=terms).contract
    state = dataclasses.replace(RobotState.default(G1_29), gyro=np.array([2.0, -0.2, -3.0]))
    frame, x = ObservationPipeline(c)(state)
    # noise (none here) -> clip to [-0.5, 0.5] -> scale 0.25: 2.0 becomes 0.125, not 0.5.
    np.testing.assert_array_equal(frame[:3], np.array([0.125, -0.05, -0.125], dtype=np.float32))
    np.testing.assert_array_equal(x[0, :3], frame[:3])


def test_a_subset_policy_trips_the_action_guard_on_its_own_joint(tmp_path: Path) -> None:
    from robolearn.deploy.safety import SafetyState

    c = build_artifact(tmp_path / "a").contract
    for name, bad, reason in (
        ("huge", np.eye(12)[1] * 1e3, "action_limit: right_ankle_pitch_joint action 1e+03 beyond 2 x 5"),
        ("nan", np.full(12, np.nan), "non_finite_action: NaN/Inf in the policy output"),
    ):
        calls = {"n": 0}

        def policy(x: np.ndarray, bad: np.ndarray = bad, calls: dict[str, int] = calls) -> np.ndarray:
            calls["n"] += 1
            return bad.copy() if calls["n"] > 3 else np.zeros(12)  # network index 1: right ankle pitch

        _, controller = scripted_session(c, policy, tmp_path / name, [(6, None)], allow_faults=True)
        assert controller.machine.state is SafetyState.DAMP, name
        assert [f["reason"] for f in controller.faults] == [reason], name


def test_a_recurrent_subset_policy_runs_over_dds_against_the_sim_bridge(
    domains: Any, procs: Any, tmp_path: Path
) -> None:
    from deploy_helpers import bridge_args

    from robolearn.deploy.recorder import read_log
    from robolearn.deploy.safety import SafetyState

    # The Go2 (the G1 cannot lie in the bridge unpowered until deploy connects: no gantry in the
    # simulation): a recurrent policy of its front legs, listed left leg first, with a tuned gain.
    go2 = get_robot_spec("go2")
    joints = (
        "FL_calf_joint",
        "FL_thigh_joint",
        "FL_hip_joint",
        "FR_calf_joint",
        "FR_thigh_joint",
        "FR_hip_joint",
    )
    art = build_artifact(
        tmp_path / "lstm", spec=go2, joints=joints, recurrent=True, overrides={"kp": {"FL_calf_joint": 30.0}}
    )
    domain = domains.take()
    bridge = procs(bridge_args(domain), "bridge")
    bridge.wait_for(r"^telemetry ", 30)
    deploy = procs(
        [
            "robolearn.deploy",
            "robot=go2",
            f"policy={art.root}",
            "backend=dds",
            f"domain_id={domain}",
            f"record.dir={tmp_path / 'log'}",
            "keyboard=false",
            "status_every_s=0",
            "autostart=true",
            "settings.ramp_s=0.5",
            "autopolicy_s=0.1",
            "duration_s=2.5",
            "exit_damp_s=0.1",
            # As on a robot, and as deploy_helpers.deploy_args: SCHED_FIFO where permitted (root, CI), so
            # the other test worker loading both cores cannot start five command ticks in a row late.
            "loop.rt_priority=50",
        ],
        "deploy",
    )
    assert deploy.wait(60) == 0, deploy.text()
    deploy.wait_for(r"^policy: commands 6 of 12 joints .*robot_overrides: its kp .*recurrent \(2 state", 1)
    summary = deploy.json_lines("summary")[0]
    assert summary["outcome"] == "clean" and summary["policy_steps"] >= 10, deploy.text()
    log = read_log(tmp_path / "log")
    steps = log.policy[log.policy["safety"] == SafetyState.POLICY.value]
    held = np.setdiff1d(np.arange(12), art.contract.policy_index)
    ticks = log.control[log.control["safety"] == SafetyState.POLICY.value]
    assert len(ticks) > 50 and np.all(ticks["cmd_kp"][:, go2.joint_names.index("FL_calf_joint")] == 30.0)
    assert np.all(steps["action_raw"][:, held] == 0) and np.abs(steps["action_raw"]).max() > 0.01
    # The recurrent network, fed what the runtime fed it, gives what the runtime used.
    module = load_module(art, recurrent=True)
    state = (torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))
    for rec in steps:
        with torch.no_grad():
            action, *state = module(tensor(rec["policy_input"][None]), *state)
        np.testing.assert_allclose(rec["action_raw"][art.contract.policy_index], action.numpy()[0], atol=1e-5)
