"""robolearn.isaac.legged_gym + write_imported_artifact: unitree_rl_gym deploy pairs built here (tiny
TorchScript policies in legged_gym's export layout, deploy yamls written by the tests) become artifacts
whose ONNX graph, contract and observation pipeline reproduce the original policy and deploy script."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from robolearn.deploy.artifact import load_artifact
from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.errors import UserError
from robolearn.isaac.artifact import write_imported_artifact
from robolearn.isaac.legged_gym import GO2_ISAAC_GYM_ORDER, import_legged_gym
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.state import RobotState

REPO = Path(__file__).resolve().parents[2]
G1_LEG_KPS = [100.0, 100.0, 100.0, 150.0, 40.0, 40.0] * 2
G1_LEG_KDS = [2.0, 2.0, 2.0, 4.0, 2.0, 2.0] * 2
G1_LEG_DEFAULTS = [-0.1, 0.0, 0.0, 0.3, -0.2, 0.0] * 2


class LeggedGymLSTMExport(torch.nn.Module):
    """The layout legged_gym's PolicyExporterLSTM scripts: memory + actor + in-place state buffers."""

    def __init__(self, num_obs: int, num_actions: int, hidden: int = 8) -> None:
        super().__init__()
        self.memory = torch.nn.LSTM(num_obs, hidden, num_layers=1)
        self.actor = torch.nn.Sequential(
            torch.nn.Linear(hidden, 16), torch.nn.ELU(), torch.nn.Linear(16, num_actions)
        )
        self.register_buffer("hidden_state", torch.zeros(1, 1, hidden))
        self.register_buffer("cell_state", torch.zeros(1, 1, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, (h, c) = self.memory(x.unsqueeze(0), (self.hidden_state, self.cell_state))
        self.hidden_state[:] = h  # type: ignore[operator]
        self.cell_state[:] = c  # type: ignore[operator]
        return self.actor(out.squeeze(0))

    @torch.jit.export
    def reset_memory(self) -> None:
        self.hidden_state[:] = 0.0  # type: ignore[operator]
        self.cell_state[:] = 0.0  # type: ignore[operator]


def _lstm_file(tmp: Path, num_obs: int, num_actions: int) -> Path:
    torch.manual_seed(0)
    path = tmp / "policy_lstm_1.pt"
    torch.jit.script(LeggedGymLSTMExport(num_obs, num_actions)).save(str(path))
    return path


def _mlp_file(tmp: Path, num_obs: int, num_actions: int, trace: bool = True) -> Path:
    """legged_gym's feed-forward export: the actor Sequential (traced here, scripted by legged_gym)."""
    torch.manual_seed(1)
    actor = torch.nn.Sequential(
        torch.nn.Linear(num_obs, 16),
        torch.nn.ELU(),
        torch.nn.Linear(16, 8),
        torch.nn.ELU(),
        torch.nn.Linear(8, num_actions),
    ).eval()
    path = tmp / "policy_1.pt"
    module = torch.jit.trace(actor, torch.zeros(1, num_obs)) if trace else torch.jit.script(actor)
    module.save(str(path))
    return path


def _yaml(tmp: Path, data: dict[str, Any], name: str = "deploy.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _g1_real_yaml(num_obs: int = 47) -> dict[str, Any]:
    """deploy_real/configs/g1.yaml's keys, with the right leg first in the network to test the slot mapping."""
    return {
        "control_dt": 0.02,
        "msg_type": "hg",
        "imu_type": "pelvis",
        "leg_joint2motor_idx": [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5],
        "kps": G1_LEG_KPS,
        "kds": G1_LEG_KDS,
        "default_angles": G1_LEG_DEFAULTS,
        "arm_waist_joint2motor_idx": [12, 13, 14, *range(15, 29)],
        "arm_waist_kps": [300.0] * 3 + [100.0, 100.0, 50.0, 50.0, 20.0, 20.0, 20.0] * 2,
        "arm_waist_kds": [3.0] * 3 + [2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0] * 2,
        "arm_waist_target": [0.0] * 17,
        "ang_vel_scale": 0.25,
        "dof_pos_scale": 1.0,
        "dof_vel_scale": 0.05,
        "action_scale": 0.25,
        "cmd_scale": [2.0, 2.0, 0.25],
        "num_actions": 12,
        "num_obs": num_obs,
        "max_cmd": [0.8, 0.5, 1.57],
    }


def _go2_yaml() -> dict[str, Any]:
    """A deploy_mujoco-style yaml for a legged_gym Go2 policy (Isaac Gym order FL, FR, RL, RR)."""
    defaults = {"hip": 0.1, "thigh": 0.8, "calf": -1.5}
    return {
        "simulation_dt": 0.005,
        "control_decimation": 4,
        "kps": [20.0] * 12,
        "kds": [0.5] * 12,
        "default_angles": [
            (-1 if leg.startswith(("FR", "RR")) and part == "hip" else 1) * defaults[part]
            + (0.2 if leg.startswith("R") and part == "thigh" else 0.0)
            for leg in ("FL", "FR", "RL", "RR")
            for part in ("hip", "thigh", "calf")
        ],
        "ang_vel_scale": 0.25,
        "dof_pos_scale": 1.0,
        "dof_vel_scale": 0.05,
        "action_scale": 0.25,
        "cmd_scale": [2.0, 2.0, 0.25],
        "num_actions": 12,
        "num_obs": 48,
        "cmd_init": [0.5, 0, 0],
    }


def _gravity_in_body(quat_wxyz: np.ndarray) -> np.ndarray:
    """R(q)^T (0, 0, -1) from the rotation matrix (independent of the quaternion formula under test)."""
    w, x, y, z = quat_wxyz / np.linalg.norm(quat_wxyz)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return rot.T @ np.array([0.0, 0.0, -1.0])


def test_g1_29dof_lstm_from_a_deploy_real_yaml(tmp_path: Path) -> None:
    spec = get_robot_spec("g1_29dof")
    policy = _lstm_file(tmp_path, 47, 12)
    config = _yaml(tmp_path, _g1_real_yaml())
    artifact = write_imported_artifact(
        import_legged_gym(policy, config, "g1_29dof"), tmp_path / "art", check_steps=50
    )
    contract = load_artifact(tmp_path / "art").contract

    # Network order follows leg_joint2motor_idx: the right leg (slots 6-11) first.
    by_slot = dict(zip(spec.motor_indices, spec.joint_names, strict=True))
    legs = [by_slot[s] for s in _g1_real_yaml()["leg_joint2motor_idx"]]
    assert contract.policy_joints == tuple(legs) and legs[0] == "right_hip_pitch_joint"
    # Gains and pose: the yaml's for the policy joints, arm_waist_* for the held ones; the rest robolearn's.
    robot = contract.robot
    for joint, kp, kd, q0 in zip(legs, G1_LEG_KPS, G1_LEG_KDS, G1_LEG_DEFAULTS, strict=True):
        i = robot.joint_names.index(joint)
        assert (robot.kp[i], robot.kd[i], robot.default_joint_pos[i], robot.action_scale[i]) == (
            kp,
            kd,
            q0,
            0.25,
        )
    elbow = robot.joint_names.index("left_elbow_joint")
    assert (robot.kp[elbow], robot.kd[elbow], robot.default_joint_pos[elbow]) == (50.0, 2.0, 0.0)
    assert robot.torque_limits == spec.torque_limits and robot.motor_indices == spec.motor_indices
    assert set(contract.robot_overrides) == {"kp", "kd", "default_joint_pos", "action_scale"}
    assert contract.gait_period_s == 0.8 and contract.terms[-1].name == "gait_clock"
    assert contract.command_ranges == ((-0.8, 0.8), (-0.5, 0.5), (-1.57, 1.57))
    assert [e.input for e in contract.recurrent_state] == ["h_in", "c_in"]
    assert (artifact.root / "checkpoint" / policy.name).read_bytes() == policy.read_bytes()
    assert len(contract.source["files"][config.name]["sha256"]) == 64

    # onnxruntime through deploy's OnnxPolicy (state carried, reset() zeroing it) == the scripted module.
    onnx = OnnxPolicy(artifact.network_path, contract)
    scripted = torch.jit.load(str(policy))
    rng = np.random.default_rng(3)
    for segment in range(2):
        onnx.reset()
        scripted.reset_memory()
        for _ in range(25):
            obs = rng.standard_normal((1, 47)).astype(np.float32)
            expected = scripted(torch.as_tensor(obs)).detach().numpy().reshape(-1)
            np.testing.assert_allclose(onnx(obs), expected, atol=1e-5, err_msg=f"segment {segment}")

    # The observation deploy builds from the full 29-joint state == deploy_real.py's layout.
    q = spec.default_pos_array + rng.uniform(-0.2, 0.2, spec.num_joints)
    dq = rng.standard_normal(spec.num_joints)
    quat = np.array([0.97, 0.1, -0.15, 0.05])
    last = np.zeros(spec.num_joints)
    idx = [spec.joint_names.index(j) for j in legs]
    last[idx] = rng.standard_normal(12)
    state = RobotState(
        joint_pos=q,
        joint_vel=dq,
        base_quat=quat,
        gyro=np.array([0.3, -0.2, 0.5]),
        command=np.array([0.4, -0.2, 0.8]),
        last_action=last,
        gait_phase=np.array([0.3]),
    )
    frame, _ = ObservationPipeline(contract)(state)
    expected_frame = np.concatenate(
        [
            np.array([0.3, -0.2, 0.5]) * 0.25,
            _gravity_in_body(quat),
            np.array([0.4, -0.2, 0.8]) * np.array([2.0, 2.0, 0.25]),
            q[idx] - np.array(G1_LEG_DEFAULTS),
            dq[idx] * 0.05,
            last[idx],
            [np.sin(2 * np.pi * 0.3), np.cos(2 * np.pi * 0.3)],
        ]
    )
    np.testing.assert_allclose(frame, expected_frame, atol=1e-6)


def test_go2_mlp_in_isaac_gym_order_observing_base_lin_vel(tmp_path: Path) -> None:
    spec = get_robot_spec("go2")
    policy = _mlp_file(tmp_path, 48, 12)
    config = _yaml(tmp_path, _go2_yaml())
    artifact = write_imported_artifact(
        import_legged_gym(policy, config, "go2"), tmp_path / "art", check_steps=50
    )
    contract = artifact.contract
    assert contract.policy_joints == GO2_ISAAC_GYM_ORDER and contract.policy_joints[0] == "FL_hip_joint"
    assert [t.name for t in contract.terms][:2] == ["base_lin_vel", "base_ang_vel"]
    assert (
        contract.terms[0].scale == (2.0, 2.0, 2.0)
        and contract.input_size == 48
        and contract.gait_period_s is None
    )
    # Mapped by name onto robolearn's motor order (FR, FL, RR, RL): FL_hip is motor 3.
    fl_hip = spec.joint_names.index("FL_hip_joint")
    assert (
        fl_hip == 3 and contract.robot.kp[fl_hip] == 20.0 and contract.robot.default_joint_pos[fl_hip] == 0.1
    )
    raw = np.arange(1.0, 13.0)
    full = contract.full_action(raw)
    assert full[fl_hip] == 1.0 and full[spec.joint_names.index("RR_calf_joint")] == 12.0
    # legged_gym's clip_actions 100 is past every joint's range: written as the largest clip that acts.
    assert contract.action_clip is not None and contract.action_clip < 100.0
    assert contract.source["action_clip"]["source"] == 100.0

    onnx = OnnxPolicy(artifact.network_path, contract)
    traced = torch.jit.load(str(policy))
    obs = np.random.default_rng(0).standard_normal((20, 1, 48)).astype(np.float32)
    for x in obs:
        np.testing.assert_allclose(
            onnx(x), traced(torch.as_tensor(x)).detach().numpy().reshape(-1), atol=1e-5
        )


def test_g1_default_leg_order_from_a_deploy_mujoco_yaml(tmp_path: Path) -> None:
    data = {
        k: v for k, v in _g1_real_yaml().items() if not k.startswith(("leg_", "arm_", "max_", "control_dt"))
    }
    data.update({"simulation_dt": 0.002, "control_decimation": 10, "cmd_init": [0.5, 0, 0]})
    policy = _mlp_file(tmp_path, 47, 12, trace=False)
    imported = import_legged_gym(policy, _yaml(tmp_path, data), "g1")
    assert imported.policy_joints == get_robot_spec("g1").joint_names[:12]
    assert imported.command_ranges == ((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0))
    assert set(imported.overrides) == {"kp", "kd", "default_joint_pos", "action_scale"}


def test_a_reference_that_disagrees_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    policy = _mlp_file(tmp_path, 48, 12)
    imported = import_legged_gym(policy, _yaml(tmp_path, _go2_yaml()), "go2")
    original = imported.reference
    assert original is not None
    shifted = dataclasses.replace(imported, reference=lambda x: original(x) + 1e-3)
    with pytest.raises(UserError, match=r"disagrees with the reference policy by 0\.001"):
        write_imported_artifact(shifted, tmp_path / "art", check_steps=5)
    assert not (tmp_path / "art").exists()


def _bad(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if changes.get(k, 0) is not None}
    out.update({k: v for k, v in changes.items() if v is not None})
    return out


@pytest.mark.parametrize(
    ("robot", "data", "num_obs", "message"),
    [
        ("h1", _g1_real_yaml(), 47, r"robot=h1: the legged_gym import knows go2, g1, g1_29dof"),
        ("g1_29dof", _bad(_g1_real_yaml(), kps=None), 47, r"has no 'kps'"),
        ("g1_29dof", _bad(_g1_real_yaml(), num_obs=50), 47, r"num_obs = 50 fits no legged_gym observation"),
        ("g1_29dof", _bad(_g1_real_yaml(), num_obs=48), 47, r"num_obs = 48, but policy_1.pt takes 47"),
        (
            "g1_29dof",
            _bad(_g1_real_yaml(), num_actions=11, num_obs=44),
            47,
            r"leg_joint2motor_idx must list 11",
        ),
        (
            "g1",
            _g1_real_yaml(),
            47,
            r"motor slot 13, which g1 does not have \(the 29-DoF G1: pass robot=g1_29dof\)",
        ),
        (
            "g1_29dof",
            _bad(_g1_real_yaml(), control_dt=0.01),
            47,
            r"runs every 0.01 s, robolearn's g1_29dof every 0.02 s",
        ),
        ("g1_29dof", _bad(_g1_real_yaml(), kds=[2.0] * 11), 47, r"kds has 11 values; expected 12"),
    ],
)
def test_bad_inputs_give_one_line(
    tmp_path: Path, robot: str, data: dict[str, Any], num_obs: int, message: str
) -> None:
    policy = _mlp_file(tmp_path, num_obs, 12)
    with pytest.raises(UserError, match=message) as info:
        import_legged_gym(policy, _yaml(tmp_path, data), robot)
    assert "\n" not in str(info.value)


def test_export_cli_imports_and_refuses_bad_arguments(tmp_path: Path) -> None:
    policy = _lstm_file(tmp_path, 47, 12)
    config = _yaml(tmp_path, _g1_real_yaml())
    out = tmp_path / "g1_walk"
    base = [
        sys.executable,
        "-m",
        "robolearn.export",
        "from=legged_gym",
        f"policy={policy}",
        f"config={config}",
    ]
    ok = subprocess.run(
        [*base, "robot=g1_29dof", f"out={out}", "check_samples=20"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stderr
    assert "imported legged_gym policy for g1_29dof" in ok.stdout and "12 of 29 joints" in ok.stdout
    assert (
        load_artifact(out).contract.source["command"].startswith("python -m robolearn.export from=legged_gym")
    )
    for args, message in (
        (["robot=g1_29dof"], "from=legged_gym needs out="),
        (["robot=h1", f"out={out}"], "robot=h1 is not a known robot"),
    ):
        bad = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["from=legged"], r"from=legged is unknown; choose one of run, legged_gym, isaaclab"),
        (
            ["from=legged_gym", "robot=g1", "out=x"],
            r"from=legged_gym needs policy=; usage: python -m robolearn.export",
        ),
        (
            ["from=legged_gym", "policy=/nonexistent.pt", "config=/nonexistent.yaml", "robot=g1", "out=x"],
            r"policy=/nonexistent.pt does not exist",
        ),
        (["from=isaaclab", "run=/nonexistent", "robot=go2", "out=x"], r"run=/nonexistent is not a folder"),
        (
            ["run=x", "robot=g1"],
            r"policy=, config= and robot= import a policy trained elsewhere: add from=legged_gym",
        ),
        (["from=legged_gym", "reference=go2_stand"], r"does not combine with from=legged_gym"),
        (
            ["from=legged_gym", "policy=/n.pt", "config=/n.yaml", "robot=g1", "out=x", "hold_kp=-1"],
            r"hold_kp=-1(\.0)? is not allowed; pass a gain >= 0",
        ),
        (
            ["from=legged_gym", "policy=/n.pt", "config=/n.yaml", "robot=g1", "out=x", "joint_names=[a]"],
            r"joint_names= gives an Isaac Lab articulation's joint order; it needs from=isaaclab",
        ),
        (
            [
                "from=legged_gym",
                "policy=/n.pt",
                "config=/n.yaml",
                "robot=g1",
                "out=x",
                "hold_joints='waist_(['",
            ],
            r"hold_joints=waist_\(\[ is not a regular expression",
        ),
    ],
)
def test_export_arguments_for_imports_fail_before_any_work(args: list[str], message: str) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.export import validate_export_config

    with pytest.raises(UserError, match=message):
        validate_export_config(compose_config("export", args))


def test_hold_gains_stiffen_only_the_matching_held_joints(tmp_path: Path) -> None:
    """hold_kp/hold_kd/hold_joints: the G1 leg policy's waist held stiff, legs and arms untouched."""
    from robolearn.config.validate import compose_config
    from robolearn.export import import_policy

    data = {
        k: v for k, v in _g1_real_yaml().items() if not k.startswith(("leg_", "arm_", "max_", "control_dt"))
    }
    data.update({"simulation_dt": 0.002, "control_decimation": 10})
    args = [
        "from=legged_gym",
        f"policy={_mlp_file(tmp_path, 47, 12, trace=False)}",
        f"config={_yaml(tmp_path, data)}",
        "robot=g1_29dof",
        f"out={tmp_path / 'artifact'}",
        "hold_kp=300",
        "hold_kd=25",
        "hold_joints=waist_.*",
        "check_samples=16",
    ]
    spec = get_robot_spec("g1_29dof")
    contract = import_policy(compose_config("export", args)).contract
    kp, kd = (
        dict(zip(spec.joint_names, contract.robot.kp, strict=True)),
        dict(zip(spec.joint_names, contract.robot.kd, strict=True)),
    )
    waist = [n for n in spec.joint_names if n.startswith("waist_")]
    assert len(waist) == 3 and all(kp[n] == 300.0 and kd[n] == 25.0 for n in waist)
    assert kp["left_hip_pitch_joint"] == data["kps"][0] and kd["left_knee_joint"] == data["kds"][3]
    mine = dict(zip(spec.joint_names, spec.kp, strict=True))
    assert kp["left_elbow_joint"] == mine["left_elbow_joint"]  # arms keep robolearn's gains
    assert contract.source["held_gains"]["joints"] == waist
    with pytest.raises(UserError, match=r"hold_joints=neck_.* matches none of the joints"):
        import_policy(compose_config("export", [*args[:-2], "hold_joints=neck_.*", "check_samples=16"]))
