"""Controller and Runtime without a network: scripted states, synthetic clocks, every guard, both drivers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from deploy_helpers import REFERENCE

from robolearn.config.validate import compose_config
from robolearn.deploy.app import build_session
from robolearn.deploy.artifact import load_artifact
from robolearn.deploy.backends.base import Backend, StateSample
from robolearn.deploy.commands import CommandKind, CommandLimiter, MotorCommand, check_command
from robolearn.deploy.messages import RemoteState
from robolearn.deploy.operator import OperatorInput
from robolearn.deploy.recorder import read_log
from robolearn.deploy.runtime import Controller, Runtime, RuntimeOptions
from robolearn.deploy.safety import Event, GuardConfig, Guards, SafetyState
from robolearn.robots import GO2_SPEC

SPEC = GO2_SPEC
DT = 0.002
BINDINGS = {
    "start": "start",
    "A": "policy",
    "B": "stand",
    "select": "damp",
    "L1+R1": "estop",
    "L1": "passive",
}


def sample(t: float, **change: object) -> StateSample:
    fields: dict[str, object] = {
        "joint_pos": SPEC.default_pos_array.copy(),
        "joint_vel": np.zeros(12),
        "quat": np.array([1.0, 0, 0, 0]),
        "gyro": np.zeros(3),
        "tick": int(t * 1000),
        "received": t,
    }
    fields.update(change)
    return StateSample(**fields)  # type: ignore[arg-type]


def controller(policy: object = "zeros", **options: object) -> Controller:
    contract = load_artifact(REFERENCE).contract
    opts = RuntimeOptions(
        **{"command_dt": DT, "policy_dt": 0.02, "ramp_s": 0.1, "exit_damp_s": 0.01, **options}
    )  # type: ignore[arg-type]
    fn = {"zeros": lambda x: np.zeros(12), None: None}.get(policy, policy)  # type: ignore[call-overload]
    c = Controller(
        SPEC,
        opts,
        Guards(SPEC, GuardConfig(stale_state_s=0.05)),
        CommandLimiter(SPEC),
        OperatorInput(BINDINGS, contract.command_ranges),
        contract,
        fn,
    )
    c.guards.set_action_limit(contract.action_clip)
    return c


def run_ticks(
    c: Controller, t0: float, seconds: float, fresh: bool = True, **change: object
) -> tuple[float, list[MotorCommand]]:
    """Tick the controller like the command loop (policy every 10 ticks); returns (time, commands)."""
    commands = []
    t = t0
    for k in range(round(seconds / DT)):
        t = t0 + k * DT
        if fresh:
            c.on_state(sample(t, **change))
        if k % 10 == 0:
            c.policy_tick(t)
        cmd = c.command_tick(t)
        assert (
            check_command(
                SPEC,
                cmd.q,
                cmd.kp,
                cmd.kd,
                joint_pos=c.sample.joint_pos if c.sample else None,
                joint_vel=c.sample.joint_vel if c.sample else None,
            )
            == []
        )
        commands.append(cmd)
    return t + DT, commands


def test_session_passive_ramp_hold_policy_then_stop() -> None:
    c = controller(autostart=True, autopolicy_s=0.05)
    c.on_state(sample(0.0, joint_pos=SPEC.default_pos_array + 0.3))
    assert c.command_tick(0.0).kind == CommandKind.PD and c.machine.state is SafetyState.RAMP
    t, cmds = run_ticks(c, DT, 0.3)
    assert [tr.target for tr in c.machine.history] == [SafetyState.RAMP, SafetyState.HOLD, SafetyState.POLICY]
    assert c.policy_stats.period_error.count > 0 and c._step > 0
    np.testing.assert_allclose(cmds[-1].q, SPEC.default_pos_array)  # zero action = default pose
    c.request_stop("test")
    t, cmds = run_ticks(c, t, 0.05)
    assert c.machine.state is SafetyState.DAMP and c.done and cmds[-1].kind == CommandKind.DAMP


def test_ramp_interpolates_from_the_pose_at_start() -> None:
    c = controller(autostart=True)
    start = np.clip(SPEC.default_pos_array + 0.4, SPEC.joint_pos_lower, SPEC.joint_pos_upper)
    c.on_state(sample(0.0, joint_pos=start))
    c.command_tick(0.0)
    c.on_state(sample(0.05, joint_pos=start))
    cmd = c.command_tick(0.05)  # halfway through the 0.1 s ramp
    np.testing.assert_allclose(cmd.q, 0.5 * (start + SPEC.default_pos_array), atol=1e-12)


def _in_policy(c: Controller) -> float:
    c.operator.push(Event.START, "test")
    t, _ = run_ticks(c, 0.0, 0.12)
    c.operator.push(Event.POLICY, "test")
    t, _ = run_ticks(c, t, 0.03)
    assert c.machine.state is SafetyState.POLICY
    return t


@pytest.mark.parametrize(
    "policy,guard",
    [
        (lambda x: np.full(12, 1000.0), "action_limit"),
        (lambda x: np.full(12, np.nan), "non_finite_action"),
        (lambda x: 1 / 0, "policy_exception: ZeroDivisionError"),
    ],
)
def test_policy_faults_damp_at_the_next_command_tick(policy: object, guard: str) -> None:
    calls = {"n": 0}

    def wrapped(x: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        return np.zeros(12) if calls["n"] < 3 else policy(x)  # type: ignore[operator]

    c = controller(wrapped)
    t = _in_policy(c)
    t, cmds = run_ticks(c, t, 0.1)
    assert c.faults[0]["reason"].startswith(guard)
    trip = c.faults[0]["t"]
    kinds = [cmd.kind for cmd in cmds]
    first_damp = kinds.index(CommandKind.DAMP)
    assert all(k == CommandKind.DAMP for k in kinds[first_damp:])
    assert (t - 0.1 + first_damp * DT) - trip <= DT + 1e-9


@pytest.mark.parametrize(
    "change,guard",
    [
        ({"gyro": np.array([0.0, np.nan, 0.0])}, "non_finite_state"),
        ({"joint_pos": np.where(np.arange(12) == 0, 2.0, SPEC.default_pos_array)}, "joint_position"),
        ({"joint_vel": np.full(12, 40.0)}, "joint_velocity"),
        ({"quat": np.array([np.cos(0.5), np.sin(0.5), 0.0, 0.0])}, "base_tilt"),
    ],
)
def test_state_faults_damp_in_the_same_tick(change: dict[str, object], guard: str) -> None:
    c = controller()
    t = _in_policy(c)
    c.on_state(sample(t, **change))
    cmd = c.command_tick(t)
    assert c.faults[0]["reason"].startswith(guard) and c.faults[0]["t"] == t and cmd.kind == CommandKind.DAMP
    _, cmds = run_ticks(c, t + DT, 0.05, **change)
    assert all(cmd.kind == CommandKind.DAMP for cmd in cmds)


def test_stale_state_overruns_and_policy_timeout() -> None:
    c = controller()
    t = _in_policy(c)
    last = t - DT
    run_ticks(c, t, 0.06, fresh=False)
    assert c.faults[0]["reason"].startswith("stale_state")
    assert c.faults[0]["t"] - (last + 0.05) <= DT + 1e-9
    c = controller()
    t = _in_policy(c)
    c.on_state(sample(t))
    assert c.command_tick(t, consecutive_overruns=5).kind == CommandKind.DAMP
    assert c.faults[0]["reason"].startswith("deadline_overruns")
    c = controller()
    t = _in_policy(c)
    for k in range(40):  # states keep coming, the policy never runs
        c.on_state(sample(t + k * DT))
        c.command_tick(t + k * DT)
    assert c.faults[0]["reason"].startswith("policy_timeout")


def test_start_and_policy_are_refused_when_unsafe() -> None:
    c = controller(policy=None)
    c.operator.push(Event.START, "test")
    c.command_tick(0.0)  # no state yet
    assert c.machine.state is SafetyState.PASSIVE and c.refused
    c.on_state(sample(0.01, quat=np.array([0.0, 1.0, 0.0, 0.0])))  # upside down
    c.operator.push(Event.START, "test")
    c.command_tick(0.01)
    assert c.machine.state is SafetyState.PASSIVE and "base_tilt" in c.refused[-1]["reason"]
    _, _ = run_ticks(c, 0.02, 0.2)
    c.operator.push(Event.START, "test")
    t, _ = run_ticks(c, 0.3, 0.15)
    c.operator.push(Event.POLICY, "test")
    run_ticks(c, t, 0.01)
    assert c.machine.state is SafetyState.HOLD  # no policy loaded


def test_remote_bindings_fire_on_press_and_combinations_win() -> None:
    c = controller()
    c.on_state(sample(0.0, remote=RemoteState(frozenset({"start"})).to_bytes()))
    c.command_tick(0.0)
    assert c.machine.state is SafetyState.RAMP
    c.on_state(sample(0.002, remote=RemoteState(frozenset({"start"})).to_bytes()))
    c.command_tick(0.002)
    assert len(c.machine.history) == 1  # held, not pressed again
    c.on_state(sample(0.004, remote=RemoteState(frozenset({"L1", "R1"})).to_bytes()))
    c.command_tick(0.004)
    assert (
        c.machine.state is SafetyState.ESTOP and len(c.machine.history) == 2
    )  # L1 alone (passive) did not fire
    c.on_state(sample(0.006, remote=RemoteState(frozenset(), ly=1.0, lx=-0.5, rx=0.02).to_bytes()))
    np.testing.assert_allclose(c.operator.command, [1.0, 0.25, 0.0])  # unitree_rl_gym's stick signs, deadband


class ScriptedBackend(Backend):
    """Fresh default states at every poll; keeps what it was sent."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[MotorCommand] = []

    def poll_state(self, now: float) -> StateSample:
        self.stats.states += 1
        return sample(now)

    def send(self, command: MotorCommand) -> None:
        self.stats.commands += 1
        self.sent.append(command)


def test_realtime_runtime_runs_both_loops_and_stops_through_damp() -> None:
    c = controller(autostart=True, autopolicy_s=0.05, duration_s=0.6, exit_damp_s=0.1, status_every_s=0)
    backend = ScriptedBackend()
    summary = Runtime(c, backend, c.options).run()
    assert [t["to"] for t in summary["transitions"]] == ["RAMP", "HOLD", "POLICY", "DAMP"]
    assert summary["faults"] == [] and summary["policy_steps"] >= 15
    loop = summary["command_loop"]
    # 350 ticks in 0.7 s; a shared 2-core machine under load (load average 10 here) skips some, the
    # scheduler never bursts, and the median period error stays under one period. The timing figures
    # themselves are benchmarks/deploy_loop.py's (deploy/README.md), on a quiet machine.
    assert 250 <= loop["period_error_count"] <= 400 and loop["period_error_p50_ms"] < 2.0
    assert backend.sent[-1].kind == CommandKind.DAMP
    assert summary["inference"]["count"] == summary["policy_steps"]


def test_lockstep_mujoco_session_stands_with_the_reference_policy(tmp_path: Path) -> None:
    cfg = compose_config(
        "deploy",
        [
            f"policy={REFERENCE}",
            "backend=mujoco",
            "autostart=true",
            "autopolicy_s=0.3",
            "settings.ramp_s=1.0",
            "duration_s=4",
            "exit_damp_s=1.0",
            f"record.dir={tmp_path / 'log'}",
            "keyboard=false",
            "status_every_s=0",
        ],
    )
    runtime, _, recorder = build_session(cfg)
    summary = runtime.run()
    assert recorder is not None
    recorder.close(summary)
    assert summary["faults"] == [] and summary["final_state"] == "DAMP"
    log = read_log(tmp_path / "log")
    policy_rows = log.control[log.control["safety"] == SafetyState.POLICY.value]
    assert len(policy_rows) > 1000 and log.meta["summary"]["policy_steps"] == len(log.policy)
    # The default pose until the first action (at most one policy period), the policy's targets after.
    assert np.count_nonzero(policy_rows["policy_step"] < 1) <= 10
    assert summary["base_height"] < 0.15  # damped down after the stop
    heights = []
    for rec in log.control[::50]:
        x, y = rec["base_quat"][1:3]
        heights.append(1.0 - 2.0 * (x * x + y * y))
    assert min(heights) > np.cos(np.deg2rad(20))  # never tilted while standing and damping


def test_keyboard_keys_and_lines_become_events_and_commands() -> None:
    op = OperatorInput(BINDINGS, ((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0)))
    for key in ("s", "p", "h", "d", "z", " ", "q"):
        op.key(key)
    op.key("policy\n")
    assert [e for e, _ in op.events] == [
        Event.START,
        Event.POLICY,
        Event.STAND,
        Event.DAMP,
        Event.PASSIVE,
        Event.ESTOP,
        "quit",
        Event.POLICY,
    ]
    for key in "iiiiiiiiiiiiu":  # vx saturates at its range
        op.key(key)
    np.testing.assert_allclose(op.command, [1.0, 0.1, 0.0])
    op.key("m")
    np.testing.assert_array_equal(op.command, np.zeros(3))
    # A scripted command (sim2sim) is clipped to the policy's ranges like the keyboard's.
    op.set_command([0.4, -2.0, 3.0])
    np.testing.assert_allclose(op.command, [0.4, -0.5, 1.0])


@pytest.mark.parametrize(
    ("advertised", "accept_unreported"),
    [(1, False), (4, False), (0, False), (0, True)],
    ids=["first_23dof_g1", "rev_1_0", "unreported_refused", "unreported_accepted_for_sims"],
)
def test_mode_machine_mismatch_keeps_the_runtime_in_damping(
    advertised: int, accept_unreported: bool, domains, procs
) -> None:
    # A G1 sim bridge over loopback DDS that says it is another hardware revision (mode_machine 1,
    # arm motors at slots 13-22) than the spec's (4): the runtime must refuse to leave damping. A
    # sender that leaves it 0 (unitree_mujoco's simulator) is refused too, unless the sim setting is on.
    import threading

    from deploy_helpers import bridge_args

    domain = domains.take()
    bridge = procs(
        bridge_args(domain, "bridge.initial_pose=default", f"bridge.mode_machine={advertised}", robot="g1"),
        "bridge",
    )
    bridge.wait_for(r"^telemetry ", 30)
    cfg = compose_config(
        "deploy",
        [
            "robot=g1",
            "backend=dds",
            f"domain_id={domain}",
            "autostart=true",
            "duration_s=1.5",
            "exit_damp_s=0.2",
            "keyboard=false",
            "status_every_s=0",
            "settings.ramp_s=0.5",
            "settings.safety.stale_state_s=0.5",  # a loaded test machine may pause the bridge
            "settings.safety.max_consecutive_overruns=1000000",
            # Unpowered and out of its gantry the bridge's G1 has fallen over by the time we connect:
            # let START through the tilt check, so mode_machine is the only thing that can refuse it.
            "settings.safety.max_tilt_deg=180",
            f"settings.dds.accept_unreported_mode_machine={str(accept_unreported).lower()}",
        ],
    )
    runtime, _, _ = build_session(cfg)
    c = runtime.controller
    timer = threading.Timer(0.8, lambda: c.operator.push(Event.START, "test"))  # the operator insists
    timer.start()
    try:
        summary = runtime.run()
    finally:
        timer.join()
        runtime.backend.close()
    moves = [(t["from"], t["to"]) for t in summary["transitions"]]
    if advertised == 4 or accept_unreported:
        assert moves[0] == ("PASSIVE", "RAMP") and not c.hardware_problem, summary
        return
    assert moves == [("PASSIVE", "DAMP")], summary  # never RAMP, HOLD or POLICY
    fault = summary["first_fault"]
    if advertised == 0:
        assert fault["reason"].startswith("mode_machine: the LowState reports mode_machine 0 (not set)")
        assert "settings.dds.accept_unreported_mode_machine=true" in fault["reason"]
    else:
        assert (
            fault["reason"].startswith("mode_machine: the robot's LowState says mode_machine 1")
            and "4" in fault["reason"]
        )
    assert any(r["reason"].startswith("mode_machine") and r["event"] == "start" for r in summary["refused"])
    assert summary["outcome"] == "fault" and summary["exit_code"] == 3
    bridge.send("stats")
    bridge.wait_for(r"^stats ", 10)
    final = bridge.json_lines("stats")[-1]
    assert final["commands"] > 100 and final["kp_mean"] == 0  # the motors only ever got damping


def test_dds_session_without_state_says_how_to_move_it_and_warns(domains, capsys) -> None:
    # No robot and no bridge on this domain: the startup lines name the operator inputs, and after a
    # second without state a warning names the interface, the domain and the sim bridge command.
    from robolearn.deploy.app import exit_code, run_deploy

    domain = domains.take()
    cfg = compose_config(
        "deploy",
        [
            f"policy={REFERENCE}",
            "backend=dds",
            f"domain_id={domain}",
            "duration_s=1.4",
            "exit_damp_s=0.1",
            "keyboard=false",
            "status_every_s=0",
        ],
    )
    summary = run_deploy(cfg)
    out = capsys.readouterr().out
    assert "session: autostart off (waiting in PASSIVE for start), autopolicy off" in out
    assert (
        "operator: remote start stands the robot up (PASSIVE -> RAMP -> HOLD); remote A hands it to the"
        " policy (HOLD -> POLICY)" in out
    )
    import re

    warning = rf"warning: no state received yet for 1\.\d s on interface lo, domain {domain}: "
    assert re.search(warning, out), out
    assert f"python -m robolearn.deploy.sim_bridge robot=go2 domain_id={domain}" in out
    assert len([w for w in summary["warnings"] if w.startswith("no state")]) == 1  # once per silence
    assert summary["final_state"] == "DAMP" and summary["policy_steps"] == 0 and exit_code(summary) == 0
