"""Sim2sim (robolearn.deploy.sim2sim, evaluate policy=): real deploy runtime, real MuJoCo Go2, a few simulated seconds.

The figures are checked against what is known about the policy (the reference stands: no fall, no
motion; asked to walk it cannot, so its velocity error is the command) and against the simulator's
own state after the episode.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import REFERENCE, REPO

from robolearn.config.validate import compose_config
from robolearn.deploy.artifact import PolicyArtifact, load_artifact
from robolearn.deploy.sim2sim import Sim2SimConfig, run_episode, run_sim2sim, task_defaults
from robolearn.errors import UserError
from robolearn.evaluate import validate_evaluate_config
from robolearn.export import export_policy

SHORT = Sim2SimConfig(duration_s=2.0, settle_s=1.0, exit_damp_s=0.002)


@pytest.fixture(scope="module")
def hips_out(tmp_path_factory: pytest.TempPathFactory) -> PolicyArtifact:
    """A bad policy: a constant action of 4 on every hip (abduction to the joint stop), nothing else."""
    ref = load_artifact(REFERENCE)
    net = torch.nn.Linear(ref.contract.input_size, 12)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([4.0, 0, 0] * 4))
    return export_policy(net, ref.contract, tmp_path_factory.mktemp("bad") / "hips_out", {}, check_samples=8)


def test_reference_stands_and_the_report_matches_the_simulation() -> None:
    episode = run_episode(
        load_artifact(REFERENCE), dataclasses.replace(SHORT, command=(0.0, 0.0, 0.0)), seed=0
    )
    r, sim = episode.report, episode.backend.sim
    assert r["policy_started"] and r["completed"] and not r["fell"] and r["time_to_fall_s"] is None
    assert r["runtime"]["outcome"] == "clean" and r["safety_faults"] == []
    assert r["runtime"]["stop_reason"] == "sim2sim: duration 2 s reached"
    assert abs(r["runtime"]["policy_steps"] - 100) <= 2  # 2 s at the contract's 50 Hz
    assert r["lin_vel_rms"] < 0.03 and r["yaw_rate_rms"] < 0.03 and r["distance_m"] < 0.1
    assert r["joint_limit_hits"] == 0 and r["torque_limit_hits"] == 0
    # The simulator after the episode: the base started at the origin and stands where the report says.
    root = sim.index.root_qpos_adr
    assert np.hypot(*sim.data.qpos[root : root + 2]) == pytest.approx(r["distance_m"], abs=0.01)
    assert sim.data.qpos[root + 2] == pytest.approx(r["base_height_end_m"], abs=0.005)
    assert r["base_height_end_m"] > task_defaults("go2")[0].min_base_height


def test_a_command_the_policy_cannot_follow_is_all_error() -> None:
    # The reference only stands: asked for 0.5 m/s and 0.5 rad/s, its errors are the command itself.
    cfg = dataclasses.replace(SHORT, command=(0.5, 0.0, 0.5), episodes=1)
    result = run_sim2sim(REFERENCE, cfg)
    r = result["episodes"][0]
    assert not r["fell"] and abs(r["mean_vx"]) < 0.03
    assert r["lin_vel_rms"] == pytest.approx(0.5, abs=0.03)
    assert r["yaw_rate_rms"] == pytest.approx(0.5, abs=0.03)
    assert (
        result["summary"]["lin_vel_rms"] == r["lin_vel_rms"] and result["fall_rule"]["max_tilt_deg"] == 60.0
    )


def test_a_policy_driving_joints_to_their_stops_is_reported_falling(hips_out: PolicyArtifact) -> None:
    episode = run_episode(hips_out, dataclasses.replace(SHORT, command=(0.0, 0.0, 0.0), exit_damp_s=1.0), 0)
    r = episode.report
    assert r["joint_limit_hits"] > 0 and set(r["joint_limit_hits_by_joint"]) <= {
        "FR_hip_joint",
        "FL_hip_joint",
        "RR_hip_joint",
        "RL_hip_joint",
    }
    assert r["limited_commands"] > 0  # the runtime's limiter kept the hip targets inside their range
    # The runtime's tilt guard (45 deg) takes the motors away, the robot goes down while damped.
    assert r["runtime"]["outcome"] == "fault" and r["safety_faults"][0].startswith("base_tilt")
    assert r["fell"] and not r["completed"] and 0 < r["time_to_fall_s"] < 2.0
    rule = task_defaults("go2")[0]
    sim = episode.backend.sim
    assert sim.tilt_deg() > rule.max_tilt_deg or sim.read().base_pos[2] < rule.min_base_height


class _TinyLstm(torch.nn.Module):
    """An imported policy's shape: LSTM memory with explicit (h, c), a zero output layer (hold the pose)."""

    def __init__(self, num_obs: int, num_actions: int, hidden: int = 8) -> None:
        super().__init__()
        self.memory = torch.nn.LSTM(num_obs, hidden)
        self.actor = torch.nn.Linear(hidden, num_actions)
        with torch.no_grad():
            self.actor.weight.zero_()
            self.actor.bias.zero_()

    def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, (h2, c2) = self.memory(obs.unsqueeze(0), (h, c))
        return self.actor(out.squeeze(0)), h2, c2


def test_an_imported_leg_policy_runs_on_the_whole_g1(tmp_path: Path) -> None:
    # Contract 3's extensions as an importer writes them: 12 of the G1's 23 joints in the network's
    # own order, an LSTM's state as graph inputs/outputs, leg gains overridden, a gait clock.
    from robolearn.isaac.artifact import ImportedPolicy, write_imported_artifact
    from robolearn.robots.observations import ObsTerm
    from robolearn.robots.registry import get_robot_spec

    spec = get_robot_spec("g1")
    legs = spec.joint_names[:12]
    terms = (
        ObsTerm("base_ang_vel", 0.25),
        ObsTerm("projected_gravity"),
        ObsTerm("commands", (2.0, 2.0, 0.25)),
        ObsTerm("joint_pos_rel"),
        ObsTerm("joint_vel", 0.05),
        ObsTerm("last_action"),
        ObsTerm("gait_clock"),
    )
    imported = ImportedPolicy(
        robot="g1",
        policy_joints=tuple(reversed(legs)),
        overrides={"kp": dict.fromkeys(legs, 100.0)},
        terms=terms,
        obs_clip=100.0,
        action_clip=10.0,
        command_ranges=((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)),
        gait_period_s=0.8,
        history_length=1,
        module=_TinyLstm(47, 12),
        state_shapes=((1, 1, 8), (1, 1, 8)),
        reference=None,
        source={"importer": "tests/deploy/test_deploy_sim2sim.py"},
    )
    art = write_imported_artifact(imported, tmp_path / "g1_legs", check_steps=20)
    # No reset noise: a humanoid holding its default pose (action 0) does not stand long through it.
    cfg = dataclasses.replace(SHORT, command=(0.0, 0.0, 0.0), duration_s=1.0, settle_s=0.5)
    cfg = dataclasses.replace(cfg, init_joint_noise=0.0, init_velocity_noise=0.0)
    episode = run_episode(art, cfg, seed=0)
    r = episode.report
    assert r["runtime"]["outcome"] == "clean" and r["completed"] and not r["fell"]
    assert r["runtime"]["policy_steps"] == 50
    # The joints the policy does not control (waist, arms) were held at their defaults by the PD.
    sim = episode.backend.sim
    held = [spec.joint_names.index(j) for j in spec.joint_names[12:]]
    q = sim.read().joint_pos
    assert np.max(np.abs(q[held] - spec.default_pos_array[held])) < 0.1


def test_episodes_differ_by_seed_and_repeat_exactly() -> None:
    cfg = Sim2SimConfig(command=(0.0, 0.0, 0.0), duration_s=0.5, settle_s=0.0, exit_damp_s=0.002, episodes=2)
    a = run_sim2sim(REFERENCE, cfg)["episodes"]
    b = run_sim2sim(REFERENCE, cfg)["episodes"]
    assert a[0]["distance_m"] == b[0]["distance_m"] and a[0]["lin_vel_rms"] == b[0]["lin_vel_rms"]
    assert a[0]["distance_m"] != a[1]["distance_m"]  # reset noise drawn from each episode's seed


def test_pushes_move_the_standing_robot() -> None:
    base = dataclasses.replace(SHORT, command=(0.0, 0.0, 0.0), duration_s=1.6, settle_s=0.1)
    still = run_episode(load_artifact(REFERENCE), base, seed=0).report
    pushed = run_episode(
        load_artifact(REFERENCE), dataclasses.replace(base, push_velocity=0.8, push_interval_s=(0.5, 0.5)), 0
    ).report
    assert still["pushes"] == 0 and pushed["pushes"] == 3  # at 0.5, 1.0 and 1.5 s of simulated time
    assert pushed["lin_vel_rms"] > 2 * still["lin_vel_rms"] and pushed["path_m"] > still["path_m"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"command": (1.5, 0.0, 0.0)}, "command[0]=1.5 (vx) is outside the policy's command range [-1, 1]"),
        ({"command": (0.0, 0.0, -3.0)}, "command[2]=-3 (yaw rate) is outside"),
        ({"duration_s": 0.0}, "duration=0 is out of range"),
        ({"settle_s": 5.0}, "settle=5 must be in [0, duration=2)"),
        ({"episodes": 0}, "episodes=0 is out of range"),
        ({"push_velocity": -1.0}, "pushes=-1 is out of range"),
    ],
)
def test_bad_inputs_are_one_line_before_any_simulation(change: dict[str, object], message: str) -> None:
    cfg = dataclasses.replace(SHORT, **change)  # type: ignore[arg-type]
    with pytest.raises(UserError) as err:
        run_sim2sim(REFERENCE, cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_robot_is_one_line(tmp_path: Path) -> None:
    art = tmp_path / "go3_policy"
    shutil.copytree(REFERENCE, art)
    data = json.loads((art / "contract.json").read_text())
    data["robot"]["name"] = "go3"
    (art / "contract.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"unknown robot 'go3'.*choices: g1, g1_29dof, go2") as err:
        run_sim2sim(art, SHORT)
    assert "\n" not in str(err.value)


def _evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robolearn.evaluate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_evaluate_policy_writes_the_result_and_prints_a_table(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = _evaluate(
        f"policy={REFERENCE}", "command=[0.3,0,0]", "duration=1.5", "settle=1", "episodes=1", f"out={out}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seed  fell" in done.stdout and f"result: {out}" in done.stdout
    result = json.loads(out.read_text())
    assert result["robot"] == "go2" and result["config"]["command"] == [0.3, 0.0, 0.0]
    assert result["episodes"][0]["lin_vel_rms"] == pytest.approx(0.3, abs=0.03)
    # run= and policy= together: one line, exit 2, before any work.
    both = _evaluate(f"policy={REFERENCE}", "run=somewhere")
    assert (
        both.returncode == 2 and both.stderr.strip().count("\n") == 0 and "exactly one of run" in both.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["command=[0,2,0]"], "command[1]=2 (vy) is outside the policy's command range [-0.5, 0.5]"),
        (["command=[0.5,0]"], "command=[0.5, 0.0] must have 3 values"),
        (["video=true"], "video=true is for run="),
        (["settle=30"], "settle=30 must be in [0, duration=20)"),
    ],
)
def test_evaluate_policy_checks_its_keys_against_the_artifact(args: list[str], message: str) -> None:
    cfg = compose_config("evaluate", [f"policy={REFERENCE}", *args])
    with pytest.raises(UserError) as err:
        validate_evaluate_config(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)
