"""benchmarks/locomotion_robustness.py's pieces with the real runtime: the command schedule reaches the
policy's observation when it should and repeats from its seed, the task's friction randomisation lands
on the simulated robot, and over DDS a policy that throws the robot over is counted as a fall."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import REFERENCE, REPO

from robolearn.deploy.artifact import load_artifact
from robolearn.deploy.recorder import read_log
from robolearn.deploy.safety import SafetyState
from robolearn.deploy.sim2sim import Sim2SimConfig, randomize_dynamics, run_episode
from robolearn.deploy.simulation import RobotSimulation
from robolearn.export import export_policy

sys.path.insert(0, str(REPO / "benchmarks"))
from locomotion_robustness import dds_episode, draw_schedule

RANGES = [[-0.3, 0.7], [-0.1, 0.1], [-0.2, 0.2]]


def test_the_schedule_reaches_the_observation_at_its_times_and_repeats_from_its_seed(tmp_path: Path) -> None:
    schedule = draw_schedule(RANGES, duration_s=2.0, every_s=1.0, seed=5)
    assert schedule == draw_schedule(RANGES, 2.0, 1.0, seed=5) != draw_schedule(RANGES, 2.0, 1.0, seed=6)
    assert [s[0] for s in schedule] == [0.0, 1.0]
    assert all(lo <= v <= hi for s in schedule for v, (lo, hi) in zip(s[1:], RANGES, strict=True))
    config = Sim2SimConfig(
        duration_s=2.0,
        settle_s=0.5,
        exit_damp_s=0.002,
        command_schedule=schedule,
        friction_range=(0.5, 1.25),
        joint_friction_range=(0.5, 1.5),
    )
    artifact = load_artifact(REFERENCE)
    episode = run_episode(artifact, config, seed=3, record_dir=tmp_path / "log")
    r = episode.report
    assert r["completed"] and [c[0] for c in r["command_changes"]] == [
        pytest.approx(0.0, abs=0.003),
        pytest.approx(1.0, abs=0.003),
    ]
    # The runtime's recorded observations: the commands term (scale 2, 2, 0.25) follows the schedule,
    # switching one policy step (20 ms) after the change at 1 s of policy time.
    policy = read_log(tmp_path / "log").policy
    policy = policy[policy["safety"] == SafetyState.POLICY.value]
    layout = {t["name"]: t for t in artifact.contract.to_dict()["observation"]["terms"]}
    start = layout["commands"]["start"]
    observed = policy["obs"][:, start : start + 3] / np.array([2.0, 2.0, 0.25])
    first, second = np.array(schedule[0][1:]), np.array(schedule[1][1:])
    is_first = np.all(np.abs(observed - first) < 1e-5, axis=1)
    is_second = np.all(np.abs(observed - second) < 1e-5, axis=1)
    assert np.all(is_first | is_second) and abs(int(is_first.sum()) - 51) <= 1
    assert np.all(is_first[: int(is_first.sum())])  # one switch, never back
    # The drawn friction is on the simulated robot, and the same seed draws the same values.
    sim = RobotSimulation(artifact.contract.robot)
    nominal = sim.model.geom_friction[:, 0].copy()
    drawn = randomize_dynamics(sim.model, sim.index.qvel_adr, config, seed=3)
    assert drawn == r["dynamics"] and 0.5 <= drawn["friction_scale"] <= 1.25
    model = episode.backend.sim.model
    assert np.array_equal(model.geom_friction, sim.model.geom_friction)
    assert np.allclose(model.geom_friction[:, 0], nominal * drawn["friction_scale"], atol=1e-4)
    assert np.array_equal(model.dof_frictionloss, sim.model.dof_frictionloss)


def test_over_dds_a_policy_that_throws_the_robot_over_is_a_fall(tmp_path: Path) -> None:
    pytest.importorskip("cyclonedds")
    ref = load_artifact(REFERENCE)
    net = torch.nn.Linear(ref.contract.input_size, 12)
    with torch.no_grad():  # every hip to its abduction stop: the Go2 tips over
        net.weight.zero_()
        net.bias.copy_(torch.tensor([4.0, 0, 0] * 4))
    bad = export_policy(net, ref.contract, tmp_path / "hips_out", {}, check_samples=8)
    config = Sim2SimConfig(
        duration_s=4.0, settle_s=0.5, exit_damp_s=1.0, command_schedule=((0.0, 0.0, 0.0, 0.0),)
    )
    e = dds_episode(
        bad,
        config,
        0,
        transient_s=0.5,
        work=tmp_path,
        rt_priority=0,
        deploy_overrides=["settings.ramp_s=0.5"],
    )
    assert e["error"] is None, e["deploy_tail"]
    # The tilt guard (45 deg) damps the robot; it goes down past the task's 60 deg while damped.
    assert e["fell"] and 0 < e["time_to_fall_s"] < 4.0 and not e["completed"]
    assert e["safety_faults"] and e["safety_faults"][0].startswith("base_tilt")
    assert e["final_state"] == "DAMP" and e["limited_commands"] > 0
    assert e["command_loop"]["period_error_count"] > 0 and e["bridge"]["bad_crc"] == 0
