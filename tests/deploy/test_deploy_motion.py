"""A tracking policy through export and the deploy runtime: the artifact's motion file, the runtime's
reference player, and the same observation as the tracking env's on the states the runtime recorded."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from deploy_helpers import REFERENCE, export_small_policy, record_in_process, sim_frame

from robolearn.config.validate import compose_config
from robolearn.deploy.app import build_session
from robolearn.deploy.artifact import load_artifact
from robolearn.deploy.motion import MOTION_FILE, MotionPlayer, load_motion
from robolearn.deploy.policy import ObservationPipeline
from robolearn.deploy.recorder import read_log
from robolearn.envs.tasks.tracking import TRACKED_BODIES
from robolearn.errors import UserError
from robolearn.export import task_contract_fields, task_motion_library
from robolearn.robots.observations import build_observation
from robolearn.robots.rotations import quat_from_yaw, quat_multiply
from robolearn.robots.state import RobotState

CLIP = "stepping"


@pytest.fixture(scope="module")
def task() -> Any:
    from robolearn.envs.tasks.tracking import TrackingTask

    env = TrackingTask(start="first", randomization={"obs_noise": 0.0})
    yield env
    env.close()


@pytest.fixture(scope="module")
def artifact(task: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random tracking policy exported from the task (its clips in motion.npz)."""
    root = tmp_path_factory.mktemp("motion")
    reference = load_artifact(REFERENCE).contract
    contract = dataclasses.replace(
        reference, **task_contract_fields(task), normalization=None, source={"kind": "test"}
    )
    assert contract.motion is not None and [c["name"] for c in contract.motion["clips"]] == list(
        task.clip_names
    )
    return export_small_policy(contract, root, motion=task_motion_library(task))


@pytest.fixture(scope="module")
def recorded(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deploy session of the tracking artifact on the in-process G1, playing CLIP; its log. A G1 on
    a random policy tips past its tilt guard after about 1.1 s: the session ends at 1 s."""
    log = tmp_path_factory.mktemp("motion_log") / "log"
    return record_in_process(log, f"motion_clip={CLIP}", policy=artifact, robot="g1")


def test_the_artifact_carries_the_clips_in_motor_order(task: Any, artifact: Path) -> None:
    loaded = load_artifact(artifact)
    assert loaded.motion is not None and (artifact / MOTION_FILE).is_file()
    assert loaded.motion.names == task.clip_names and loaded.motion.anchor_body == "torso_link"
    contract = json.loads((artifact / "contract.json").read_text())
    assert [t["name"] for t in contract["observation"]["terms"]][-3:] == [
        "motion_joint_pos",
        "motion_joint_vel",
        "motion_anchor_ori",
    ]
    for ref, track in zip(task.references, loaded.motion.tracks, strict=True):
        np.testing.assert_array_equal(track.joint_pos, ref.joint_pos)
        np.testing.assert_array_equal(track.anchor_quat, ref.body_quat[:, 0])
        assert track.fps == ref.clip.fps and track.periodic == ref.clip.periodic


def test_the_runtime_observes_the_reference_as_the_tracking_env_does(
    task: Any, artifact: Path, recorded: Path
) -> None:
    log = read_log(recorded)
    steps = log.policy
    assert len(steps) > 30 and np.abs(steps["last_action"]).max() > 0.01
    assert not [e for e in log.events if e.get("type") == "fault"]
    clip = task.clip_names.index(CLIP)
    n = task.robot_spec.num_joints
    for i, rec in enumerate(steps):
        # The env i control steps into an episode that started on the clip's first frame.
        task.clip_index[0] = clip
        task.motion_time[0] = i * task.control_dt
        task.last_action = np.asarray(rec["last_action"], dtype=np.float64)[None]
        training = task.observe(sim_frame(rec, len(TRACKED_BODIES)))[0]
        # Joints exactly; the anchor's orientation up to the runtime's turn to the robot's heading at
        # the segment's start: the clip starts facing +x as the simulated robot does, which turned by
        # about 1e-5 rad while it ramped and held.
        np.testing.assert_array_equal(training[:-6], rec["obs"][:-6])
        np.testing.assert_allclose(training[-6:], rec["obs"][-6:], atol=1e-4)
    # The clip advanced one frame per policy step (50 fps at 50 Hz), from its first frame.
    ref = task.references[clip]
    joints = steps["obs"][:, -6 - 2 * n : -6 - n]
    np.testing.assert_allclose(
        joints, ref.joint_pos[: len(steps)] - task.robot_spec.default_pos_array, atol=1e-6
    )


def test_the_reference_is_turned_to_the_robots_heading_at_the_segments_start(artifact: Path) -> None:
    loaded = load_artifact(artifact)
    assert loaded.motion is not None
    track = loaded.motion.track(CLIP)
    contract = loaded.contract
    pipeline = ObservationPipeline(contract)
    base = np.array([0.98, 0.05, -0.1, 0.02])
    base /= np.linalg.norm(base)
    frames = []
    for yaw in (0.0, 1.3, -2.5):  # the same robot, facing elsewhere when the segment starts
        turned = quat_multiply(quat_from_yaw(np.array(yaw)), base)
        player = MotionPlayer(track, contract.control_dt)
        player.start(turned)
        state = dataclasses.replace(
            RobotState.default(contract.robot), base_quat=turned, motion=player.frame(7)
        )
        frames.append(pipeline.frame(state))
    np.testing.assert_allclose(frames[1], frames[0], atol=1e-6)
    np.testing.assert_allclose(frames[2], frames[0], atol=1e-6)
    # Without the turn the anchor term would see the heading difference.
    state = dataclasses.replace(
        RobotState.default(contract.robot), base_quat=quat_multiply(quat_from_yaw(np.array(1.3)), base)
    )
    unturned = MotionPlayer(track, contract.control_dt)
    unturned.start(base)
    raw = build_observation(
        dataclasses.replace(state, motion=unturned.frame(7)), contract.robot, contract.terms
    )
    assert np.abs(raw[-6:] - frames[0][-6:]).max() > 0.5


def test_a_periodic_clip_loops_and_a_finished_one_holds_its_last_frame(artifact: Path) -> None:
    loaded = load_artifact(artifact)
    assert loaded.motion is not None
    track = loaded.motion.track(CLIP)
    assert track.periodic
    dt = loaded.contract.control_dt
    assert track.frame_index(track.frames + 3, dt) == 3
    held = dataclasses.replace(track, periodic=False)
    assert held.frame_index(track.frames + 3, dt) == track.frames - 1


def test_motion_mistakes_are_one_line(artifact: Path, tmp_path: Path) -> None:
    loaded = load_artifact(artifact)
    assert loaded.motion is not None
    with pytest.raises(
        UserError, match=r"motion_clip=steping is not in the policy's motion file \(did you mean stepping"
    ):
        loaded.motion.track("steping")
    # The motion file gone: the artifact does not load.
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / MOTION_FILE).unlink()
    with pytest.raises(
        UserError, match=r"motion file not found: .*motion\.npz; the policy tracks a reference motion"
    ):
        load_artifact(broken)
    # contract.json with motion terms but no motion entry.
    data = json.loads((artifact / "contract.json").read_text())
    del data["motion"]
    (broken / MOTION_FILE).write_bytes((artifact / MOTION_FILE).read_bytes())
    (broken / "contract.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="has a motion_joint_pos term but no motion entry"):
        load_artifact(broken)
    # A motion file of another robot's joint count.
    with pytest.raises(UserError, match="joint_pos has shape"):
        load_motion(artifact / MOTION_FILE, load_artifact(REFERENCE).contract.robot)
    # motion_clip for a policy that tracks nothing, before any motor is touched.
    cfg = compose_config(
        "deploy", ["robot=go2", f"policy={REFERENCE}", "motion_clip=squat", "keyboard=false"]
    )
    with pytest.raises(UserError, match="motion_clip=squat but the policy tracks no reference motion"):
        build_session(cfg)


def test_sim2sim_measures_a_tracking_policys_joint_error_against_its_reference(artifact: Path) -> None:
    from robolearn.deploy.sim2sim import Sim2SimConfig, run_sim2sim

    config = Sim2SimConfig(
        duration_s=0.4, settle_s=0.1, episodes=1, motion_clip=CLIP, command=(0.0, 0.0, 0.0)
    )
    result = run_sim2sim(artifact, config)
    episode = result["episodes"][0]
    assert episode["policy_started"] and episode["runtime"]["policy_steps"] >= 15
    # The random policy barely moves the joints while the clip steps: an error of centimetres of
    # joint angle, from the reference's own motion (stepping lifts each foot 7 cm).
    assert 0.005 < episode["motion_joint_rms"] < 0.5
    plain = run_sim2sim(REFERENCE, Sim2SimConfig(duration_s=0.2, settle_s=0.1, episodes=1))
    assert plain["episodes"][0]["motion_joint_rms"] is None


def test_the_robustness_benchmark_reads_the_joint_error_from_a_deploy_log(
    task: Any, artifact: Path, recorded: Path
) -> None:
    from deploy_helpers import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    from locomotion_robustness import logged_motion_rms

    steps = read_log(recorded).policy
    ref = task.references[task.clip_names.index(CLIP)].joint_pos[: len(steps)]
    direct = np.sqrt(np.mean(np.square(steps["joint_pos"] - ref)))
    assert logged_motion_rms(load_artifact(artifact), steps["obs"]) == pytest.approx(direct, rel=1e-5)
    assert logged_motion_rms(load_artifact(REFERENCE), steps["obs"][:, :45]) is None
