"""Golden test: recorded states through the training observation path and the deploy path agree exactly.

Training path: robolearn.envs.tasks.VelocityTask.observe(), i.e. the robots package's
build_observation as the env calls it. Deploy path: contract.json (written by the exporter from that
env) -> ObservationPipeline, and the deploy runtime's own recorded observations. The states are
the ones a deploy session recorded while a policy drove the simulated robot (the Go2 and the 23-DoF
G1, each with and without a gait clock) with a velocity command; with a gait clock, the runtime's
phase (its policy-step count) must equal the env's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from deploy_helpers import REFERENCE, export_small_policy, sim_frame

from robolearn.config.validate import compose_config
from robolearn.deploy.app import build_session
from robolearn.deploy.artifact import load_artifact
from robolearn.deploy.commands import CommandLimiter
from robolearn.deploy.policy import ObservationPipeline
from robolearn.deploy.recorder import read_log
from robolearn.export import task_contract_fields
from robolearn.robots.state import RobotState

# Session length and the policy steps it must record. The Go2 stands and takes pushes for 2.5 s; a
# G1 on PD and a random policy sways and tips by itself (it cannot stand on PD alone) and passes its
# 30 degree tilt guard after about 1.1 s, so its session ends at 1 s, without pushes.
SESSION_S = {"go2": 2.5, "g1": 1.0}
MIN_POLICY_STEPS = {"go2": 80, "g1": 30}


@pytest.fixture(
    scope="module",
    params=[("go2", None, 1), ("go2", 0.5, 1), ("g1", None, 1), ("g1", 0.6, 1), ("go2", 0.5, 4)],
    ids=["go2-no_clock", "go2-gait_clock", "g1-no_clock", "g1-gait_clock", "go2-history_4"],
)
def task(request: pytest.FixtureRequest) -> Any:
    from robolearn.envs.tasks.velocity import VelocityTask

    robot, gait_period_s, history = request.param
    env = VelocityTask(robot=robot, gait_period_s=gait_period_s, observation_history=history)
    yield env
    env.close()


@pytest.fixture(scope="module")
def recorded(task: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(artifact, deploy log): a small random policy exported from the task, run with a command and pushes."""
    root = tmp_path_factory.mktemp("golden")
    reference = load_artifact(REFERENCE).contract
    # The reference is a Go2 artifact: its normalisation statistics fit only the Go2's input.
    contract = dataclasses.replace(
        reference, **task_contract_fields(task), normalization=None, source={"kind": "test"}
    )
    assert contract.robot.name == task.robot_spec.name
    export_small_policy(contract, root)
    cfg = compose_config(
        "deploy",
        [
            f"robot={contract.robot.name}",
            f"policy={root / 'policy'}",
            "backend=mujoco",
            "settings.sim_pose=default",
            "settings.ramp_s=0.2",
            "autostart=true",
            "autopolicy_s=0.1",
            f"duration_s={SESSION_S[contract.robot.name]}",
            "exit_damp_s=0.1",
            "mujoco.push_interval_s=[0.3,0.6]",
            f"mujoco.push_velocity={0.3 if contract.robot.name == 'go2' else 0.0}",
            f"record.dir={root / 'log'}",
            "keyboard=false",
            "status_every_s=0",
        ],
    )
    runtime, _, recorder = build_session(cfg)
    runtime.controller.operator.command = np.array([0.4, -0.15, 0.3])  # as if from the sticks
    summary = runtime.run()
    assert recorder is not None
    recorder.close(summary)
    assert summary["faults"] == [] and summary["policy_steps"] > MIN_POLICY_STEPS[contract.robot.name]
    return root / "policy", root / "log"


def test_training_and_deploy_observations_are_identical(task: Any, recorded: tuple[Path, Path]) -> None:
    artifact_dir, log_dir = recorded
    log = read_log(log_dir)
    steps = log.policy
    assert len(steps) > MIN_POLICY_STEPS[task.robot_spec.name]
    assert np.abs(steps["last_action"]).max() > 0.01  # a policy that moves
    contract = load_artifact(artifact_dir).contract  # read back from contract.json
    assert contract.gait_period_s == task.gait_period_s
    assert contract.history_length == task.observation_history
    frame_size = contract.frame_size
    pipeline = ObservationPipeline(contract)
    for i, rec in enumerate(steps):
        task.command = np.asarray(rec["command"], dtype=np.float64)[None]
        task.last_action = np.asarray(rec["last_action"], dtype=np.float64)[None]
        # The env's clock i control steps into an episode; the runtime's is i policy steps into POLICY.
        task.episode_step[:] = i
        training = task.observe(sim_frame(rec, len(task.robot_spec.foot_bodies)))[0]
        state = RobotState(
            joint_pos=rec["joint_pos"].astype(np.float64),
            joint_vel=rec["joint_vel"].astype(np.float64),
            base_quat=rec["base_quat"].astype(np.float64),
            gyro=rec["gyro"].astype(np.float64),
            command=rec["command"],
            last_action=rec["last_action"],
            gait_phase=contract.gait_phase(i),
        )
        # The env's input is its history, oldest first; its newest frame is what the runtime recorded.
        assert training.shape == (contract.input_size,)
        np.testing.assert_array_equal(training[-frame_size:], rec["obs"])
        np.testing.assert_array_equal(training[-frame_size:], pipeline.frame(state))  # the deploy path
        # The deploy path's network input (normalisation off) is the env's stacked history, the first
        # frame repeated at the segment's start as at an episode's.
        np.testing.assert_array_equal(training, pipeline(state)[1][0])
        if i == 0:
            np.testing.assert_array_equal(training, np.tile(rec["obs"], contract.history_length))
        elif contract.history_length > 1:
            np.testing.assert_array_equal(training[-2 * frame_size : -frame_size], steps["obs"][i - 1])
    # The command reached the observation with the commands term's scales (2, 2, 0.25).
    np.testing.assert_allclose(steps["obs"][-1][6:9], [0.8, -0.3, 0.075], rtol=1e-6)
    assert (
        steps["obs"].shape[1]
        == contract.frame_size
        == 9 + 3 * contract.robot.num_joints + (2 if task.gait_period_s is not None else 0)
    )
    if task.gait_period_s is not None:
        # The clock went round: one cycle per gait_period_s / control_dt policy steps (25 for the Go2's
        # 0.5 s, 30 for the G1's 0.6 s), sin and cos on the unit circle; the last two values of a frame.
        clock = steps["obs"][:, -2:].astype(np.float64)
        cycle = round(task.gait_period_s / contract.control_dt)
        np.testing.assert_allclose(np.hypot(clock[:, 0], clock[:, 1]), 1.0, atol=1e-6)
        np.testing.assert_allclose(clock[0], [0.0, 1.0], atol=1e-7)
        np.testing.assert_allclose(clock[cycle], [0.0, 1.0], atol=1e-6)
        phase = 2 * np.pi * np.arange(len(clock)) / cycle  # policy step k is k / cycle of the way round
        np.testing.assert_allclose(clock, np.stack([np.sin(phase), np.cos(phase)], axis=1), atol=1e-6)


class _FakeReader:
    def __init__(self) -> None:
        self.queue: list[bytes] = []

    def take(self, max_samples: int = 64) -> list[bytes]:
        out, self.queue = self.queue[:max_samples], self.queue[max_samples:]
        return out

    def matched(self) -> int:
        return 1


class _FakeWriter:
    def __init__(self, sink: list[bytes]) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.sink.append(data)

    def matched(self) -> int:
        return 1


class _FakeSession:
    """Stands in for DdsSession: what one side writes lands in the other side's reader."""

    def __init__(self) -> None:
        self.readers: dict[str, _FakeReader] = {}
        self.wire: dict[str, list[bytes]] = {}

    def reader(self, name: str, data_type: Any, depth: int = 1, reliable: bool = False) -> _FakeReader:
        return self.readers.setdefault(name, _FakeReader())

    def writer(self, name: str, data_type: Any, depth: int = 1) -> _FakeWriter:
        return _FakeWriter(self.wire.setdefault(name, []))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("robot", ["go2", "g1"])
def test_lowstate_from_the_bridge_decodes_to_the_simulated_state(robot: str) -> None:
    pytest.importorskip("unitree_sdk2py")
    from robolearn.deploy.backends.dds_backend import DdsBackend
    from robolearn.deploy.sim_bridge import MODE_MACHINE, SimBridge
    from robolearn.robots.registry import get_robot_spec

    spec = get_robot_spec(robot)
    bridge_side, deploy_side = _FakeSession(), _FakeSession()
    bridge = SimBridge(spec, bridge_side, initial_pose="default")  # type: ignore[arg-type]
    backend = DdsBackend(spec, deploy_side)  # type: ignore[arg-type]
    bridge.sim.push((0.3, -0.2))
    bridge.sim.step(7)
    bridge.publish(now=1.0)
    deploy_side.readers["rt/lowstate"].queue.extend(bridge_side.wire["rt/lowstate"])
    sample = backend.poll_state(now=1.0)
    assert sample is not None and backend.stats.crc_errors == 0
    reading = bridge.sim.read()
    for got, want in (
        (sample.joint_pos, reading.joint_pos),
        (sample.joint_vel, reading.joint_vel),
        (sample.quat, reading.quat),
        (sample.gyro, reading.gyro),
    ):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    assert sample.tick == round(reading.time * 1000)
    assert sample.mode_machine == MODE_MACHINE.get(robot, 0)
    # A command the deploy encodes is what the bridge's motors get, in the right motor slots.
    command = CommandLimiter(spec).pd(spec.default_pos_array + 0.05, sample.joint_pos, sample.joint_vel)
    backend.send(command)
    sent = backend.family.low_cmd.decode(deploy_side.wire["rt/lowcmd"][-1])
    if robot == "g1":
        assert int(sent["mode_machine"]) == MODE_MACHINE["g1"]  # echoed from LowState
    unused = np.setdiff1d(np.arange(backend.family.num_motor_slots), spec.motor_indices)
    assert np.all(sent["motor_cmd"]["mode"][unused] == 0) and np.all(sent["motor_cmd"]["kp"][unused] == 0)
    bridge_side.readers["rt/lowcmd"].queue.extend(deploy_side.wire["rt/lowcmd"])
    bridge.receive(now=2.0)
    np.testing.assert_array_equal(bridge.sim.cmd_q, command.q.astype(np.float32))
    np.testing.assert_array_equal(bridge.sim.cmd_kp, command.kp.astype(np.float32))


def test_bridge_holds_the_g1_until_the_first_powered_command() -> None:
    """bridge.hold_until_command: the unpowered G1 stays put (time and states running) until deploy's
    first command with gains; without the hold it sags within the same second."""
    pytest.importorskip("unitree_sdk2py")
    from robolearn.deploy.backends.dds_backend import DdsBackend
    from robolearn.deploy.sim_bridge import SimBridge
    from robolearn.robots.registry import get_robot_spec

    spec = get_robot_spec("g1")
    held_side, free_side, deploy_side = _FakeSession(), _FakeSession(), _FakeSession()
    held = SimBridge(spec, held_side, initial_pose="default", hold_until_command=True)  # type: ignore[arg-type]
    free = SimBridge(spec, free_side, initial_pose="default")  # type: ignore[arg-type]
    start = held.sim.data.qpos.copy()
    for k in range(250):  # 0.5 s at 500 Hz, no command
        held.tick(now=k * held.period)
        free.tick(now=k * free.period)
    assert held.sim.data.time == pytest.approx(0.5) and len(held_side.wire["rt/lowstate"]) == 250
    np.testing.assert_array_equal(held.sim.data.qpos, start)
    assert free.sim.data.qpos[2] < start[2] - 0.02  # unpowered, the free G1 is already going down
    # An unpowered command (kp 0, as a damping one) does not release it; deploy's first PD command does.
    backend = DdsBackend(spec, deploy_side)  # type: ignore[arg-type]
    q, dq = spec.default_pos_array, np.zeros(spec.num_joints)
    backend.send(CommandLimiter(spec).damp(q, dq))
    held_side.readers["rt/lowcmd"].queue.extend(deploy_side.wire["rt/lowcmd"])
    held.tick(now=0.5)
    np.testing.assert_array_equal(held.sim.data.qpos, start)
    backend.send(CommandLimiter(spec).pd(q, q, dq))
    held_side.readers["rt/lowcmd"].queue.extend(deploy_side.wire["rt/lowcmd"][-1:])
    for k in range(1, 51):
        held.tick(now=0.5 + k * held.period)
    assert not np.array_equal(held.sim.data.qpos, start)  # physics runs: the robot is on its feet


def test_bridge_holds_the_g1_through_powered_commands_until_released() -> None:
    """bridge.hold_until_release: the G1 stays on the gantry while deploy ramps and holds it, until the
    console's `release` (what the robustness benchmark sends when the runtime enters POLICY)."""
    pytest.importorskip("unitree_sdk2py")
    from robolearn.deploy.backends.dds_backend import DdsBackend
    from robolearn.deploy.sim_bridge import SimBridge
    from robolearn.robots.registry import get_robot_spec

    spec = get_robot_spec("g1")
    side, deploy_side = _FakeSession(), _FakeSession()
    held = SimBridge(spec, side, initial_pose="default", hold_until_release=True)  # type: ignore[arg-type]
    start = held.sim.data.qpos.copy()
    backend = DdsBackend(spec, deploy_side)  # type: ignore[arg-type]
    q, dq = spec.default_pos_array, np.zeros(spec.num_joints)
    for k in range(100):  # 0.2 s of PD commands at 500 Hz: still held
        backend.send(CommandLimiter(spec).pd(q, q, dq))
        side.readers["rt/lowcmd"].queue.extend(deploy_side.wire["rt/lowcmd"][-1:])
        held.tick(now=k * held.period)
    np.testing.assert_array_equal(held.sim.data.qpos, start)
    assert held.handle("release", now=0.2).startswith("released from the gantry")
    assert held.handle("release", now=0.2) == "not held"
    for k in range(100, 150):
        backend.send(CommandLimiter(spec).pd(q, q, dq))
        side.readers["rt/lowcmd"].queue.extend(deploy_side.wire["rt/lowcmd"][-1:])
        held.tick(now=k * held.period)
    assert not np.array_equal(held.sim.data.qpos, start)  # physics runs on its own feet
