"""Truth logs (robolearn.deploy.truth): a simulated target logs its whole state at every state it
publishes, and a deploy log's policy steps join it by tick, in process and over DDS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robolearn.deploy.recorder import read_log
from robolearn.deploy.safety import SafetyState
from robolearn.deploy.truth import TRUTH_VERSION, read_truth
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec

pytest.importorskip("onnxruntime")
from deploy_helpers import bridge_args, deploy_args, record_in_process

SPEC = get_robot_spec("go2")


def _joined(log_dir: Path, truth_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(policy records, the truth record at each one's tick)."""
    log, truth = read_log(log_dir), read_truth(truth_dir)
    policy = log.policy
    assert len(policy) > 20
    where = {int(t): i for i, t in enumerate(truth.records["tick"])}
    missing = [int(t) for t in policy["tick"] if int(t) not in where]
    assert not missing, f"policy ticks without a truth record: {missing[:5]}"
    return policy, truth.records[[where[int(t)] for t in policy["tick"]]]


def _check_states_agree(policy: np.ndarray, at: np.ndarray, layout: dict[str, list[int]]) -> None:
    # The state each policy step observed is the truth at its tick, as the wire carried it (float32).
    q = at["qpos"][:, layout["joint_qpos_adr"]].astype(np.float32)
    dq = at["qvel"][:, layout["joint_qvel_adr"]].astype(np.float32)
    np.testing.assert_array_equal(policy["joint_pos"], q)
    np.testing.assert_array_equal(policy["joint_vel"], dq)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s standing session on the in-process backend with mismatch=kp065, recorded (log/ and log/truth/)."""
    return record_in_process(tmp_path_factory.mktemp("truth") / "log", "mismatch=kp065")


def test_in_process_sessions_log_the_truth_beside_the_deploy_log(in_process: Path) -> None:
    truth = read_truth(in_process / "truth")
    assert truth.meta["version"] == TRUTH_VERSION and truth.meta["source"] == "mujoco"
    assert truth.meta["mismatch"] == {
        "name": "kp065",
        "edits": [{"kind": "motor_kp", "joint": "*", "scale": 0.65}],
    }
    assert truth.meta["summary"]["records"] == len(truth.records) and truth.meta["summary"]["dropped"] == 0
    policy, at = _joined(in_process, in_process / "truth")
    _check_states_agree(policy, at, truth.meta["layout"])
    # In POLICY the motors act on the commanded gains (the mismatch scales them inside the motor).
    np.testing.assert_array_equal(at["applied_kp"][-1], SPEC.kp_array.astype(np.float32))
    # The base's height and velocity, which no LowState carries, are there: the Go2 stands.
    root = truth.meta["layout"]["root_qpos_adr"]
    assert 0.2 < at["qpos"][-1, root + 2] < 0.4


def test_the_delta_dataset_holds_true_states_and_sent_actions(in_process: Path, tmp_path: Path) -> None:
    from robolearn.sim2real.recordings import load_delta_dataset, write_delta_dataset

    data = write_delta_dataset(in_process, in_process / "truth", tmp_path / "delta")
    segments, prov = load_delta_dataset(data, "go2")
    policy, at = _joined(in_process, in_process / "truth")
    inside = policy["safety"] == SafetyState.POLICY.value
    (seg,) = segments  # one POLICY stretch
    assert seg.steps == int(inside.sum()) - 1 and not seg.terminated
    np.testing.assert_array_equal(seg.qpos, at["qpos"][inside])
    np.testing.assert_array_equal(seg.qvel, at["qvel"][inside])
    np.testing.assert_array_equal(seg.actions, policy["action"][inside][:-1])
    np.testing.assert_array_equal(seg.tick, policy["tick"][inside])
    assert prov["mismatch"]["name"] == "kp065" and prov["control_dt"] == pytest.approx(SPEC.control_dt)
    np.testing.assert_allclose(prov["action_scale"], SPEC.action_scale)
    # Another robot, or another schema version, is refused in one line.
    with pytest.raises(UserError, match="was recorded on the go2, not the g1"):
        load_delta_dataset(data, "g1")
    meta_file = data / "metadata.json"
    meta = json.loads(meta_file.read_text())
    text = json.dumps(meta).replace('"version": 1}', '"version": 7}', 1)
    assert text != json.dumps(meta)
    meta_file.write_text(text)
    with pytest.raises(UserError, match="v7 is not robolearn-asap-delta v1"):
        load_delta_dataset(data, "go2")


def test_a_truth_log_of_another_format_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a truth log"):
        read_truth(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "robolearn-sim-truth", "version": 99}')
    with pytest.raises(UserError, match="v99 is not robolearn-sim-truth v1"):
        read_truth(tmp_path)


def test_the_sim_bridge_logs_the_truth_a_deploy_over_dds_joins(domains, procs, tmp_path: Path) -> None:
    """The collect path of a sim-to-sim rehearsal: a deploy over loopback DDS against a bridge with a
    physics mismatch; every policy step's state is the bridge's truth at the tick the LowState carried."""
    pytest.importorskip("cyclonedds")
    pytest.importorskip("unitree_sdk2py")
    domain = domains.take()
    truth_dir = tmp_path / "truth"
    bridge = procs(
        bridge_args(
            domain,
            "bridge.initial_pose=default",
            "mismatch=gains_strength",
            f"bridge.record_truth={truth_dir}",
        ),
        "bridge",
    )
    bridge.wait_for(r"mismatch gains_strength: motor_kp\(\*\), motor_kd\(\*\), joint_torque_limit\(\*\)", 30)
    deploy = procs(
        deploy_args(
            domain,
            tmp_path / "log",
            "autostart=true",
            "autopolicy_s=0.2",
            "settings.ramp_s=0.3",
            "exit_damp_s=0.2",
            "duration_s=1.5",
        ),
        "deploy",
    )
    assert deploy.wait(40) == 0, deploy.text()
    bridge.send("quit")
    assert bridge.wait(20) == 0, bridge.text()
    truth = read_truth(truth_dir)
    assert truth.meta["source"] == "bridge" and truth.meta["mismatch"]["name"] == "gains_strength"
    policy, at = _joined(tmp_path / "log", truth_dir)
    _check_states_agree(policy, at, truth.meta["layout"])


def test_policy_stretches_split_at_late_lost_or_skipped_steps() -> None:
    from robolearn.sim2real.recordings import TICK_TOLERANCE_MS, policy_stretches

    # 20 ms control period: tick 61 is 1 ms late (within tolerance); 85 is 4 ms late (split); step 7
    # is missing (split); 150 follows 130 (kept); 200 comes 50 ms later (split), a stretch of one.
    steps = np.array([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11])
    ticks = np.array([0, 20, 40, 61, 85, 105, 125, 130, 150, 200, 300])
    assert TICK_TOLERANCE_MS < 4
    parts, splits = policy_stretches(steps, ticks, 20)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8], [9], [10]]
    assert splits == 4 == len(parts) - 1
    assert policy_stretches(steps[:0], ticks[:0], 20) == ([], 0)
