"""The deploy process against the sim bridge over real DDS on loopback: standing, faults, the wire.

Every command that reaches the wire is decoded by a sniffer and checked: CRC, joint targets inside
the range, gains at most the spec's, no velocity target or feedforward torque, unused motor slots
unpowered, and (matched to the deploy log's record of the same command) the implied torque within
the limit for the state the command was computed from.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("unitree_sdk2py")
pytest.importorskip("onnxruntime")
from deploy_helpers import REFERENCE, WireSniffer, bridge_args, deploy_args

from robolearn.deploy.commands import CommandKind, check_command
from robolearn.deploy.recorder import DeployLog, read_log
from robolearn.deploy.safety import SafetyState
from robolearn.robots.registry import get_robot_spec

SPEC = get_robot_spec("go2")
COMMAND_DT = 0.002
DAMP = SafetyState.DAMP.value
# A transition or fault line, "[   0.305 s] RAMP -> HOLD (...)", not the startup lines that name them.
TRANSITION = r"^\[\s*[\d.]+ s\] "


def check_wire(sniffer: WireSniffer, log: DeployLog, sent: int) -> None:
    """Every sniffed command passes the limit checks and is one the deploy log recorded."""
    slots = np.asarray(SPEC.motor_indices)
    others = np.setdiff1d(np.arange(sniffer.family.num_motor_slots), slots)
    codec = sniffer.family.low_cmd
    assert len(sniffer.messages) >= 0.98 * sent, f"sniffed {len(sniffer.messages)} of {sent} commands"
    wire = []
    for _, rec in sniffer.messages:
        assert codec.crc_ok(rec)
        m = rec["motor_cmd"]
        problems = check_command(
            SPEC, m["q"][slots], m["kp"][slots], m["kd"][slots], dq=m["dq"][slots], tau=m["tau"][slots]
        )
        assert not problems, problems
        assert np.all(m["mode"][slots] == sniffer.family.enabled_mode)
        assert (
            np.all(m["mode"][others] == 0) and np.all(m["kp"][others] == 0) and np.all(m["kd"][others] == 0)
        )
        wire.append(np.concatenate([m["q"][slots], m["kp"][slots], m["kd"][slots]]))
    c = log.control
    recorded = np.concatenate([c["cmd_q"], c["cmd_kp"], c["cmd_kd"]], axis=1)
    # In order: each wire message is a recorded command (the log may hold a few more at the end).
    j = 0
    for w in wire:
        while j < len(recorded) and not np.array_equal(recorded[j], w):
            j += 1
        assert j < len(recorded), "a command on the wire is not in the deploy log"
        j += 1
    # The exact torque check, against the state each command was computed from.
    for rec in c[np.isfinite(c["t_state"])]:
        problems = check_command(
            SPEC,
            rec["cmd_q"],
            rec["cmd_kp"],
            rec["cmd_kd"],
            joint_pos=rec["joint_pos"],
            joint_vel=rec["joint_vel"],
        )
        assert not problems, problems


def is_damp(rec: np.ndarray) -> bool:
    """A LowCmd that only damps the spec's joints."""
    m = rec["motor_cmd"][np.asarray(SPEC.motor_indices)]
    return bool(np.all(m["kp"] == 0) and np.all(m["kd"] > 0))


def test_deploy_stands_the_go2_for_10_s_then_damps(domains, procs, tmp_path: Path) -> None:
    domain = domains.take()
    sniffer = WireSniffer(domain)
    bridge = procs(bridge_args(domain), "bridge")  # the Go2 starts lying folded on the floor
    deploy = procs(deploy_args(domain, tmp_path / "log", "settings.ramp_s=1.0", "exit_damp_s=0.5"), "deploy")
    deadline = time.monotonic() + 30
    while not any(t["commands"] > 50 for t in bridge.json_lines("telemetry")):  # PASSIVE commands flowing
        assert time.monotonic() < deadline, bridge.text() + deploy.text()
        time.sleep(0.05)
    bridge.send("press start")  # the virtual remote, through LowState.wireless_remote
    deploy.wait_for(TRANSITION + r"RAMP -> HOLD", 10)
    bridge.send("press A")
    deploy.wait_for(TRANSITION + r"HOLD -> POLICY", 5)
    time.sleep(10.2)
    bridge.send("press select")
    deploy.wait_for(TRANSITION + r"POLICY -> DAMP", 5)
    time.sleep(0.3)
    deploy.popen.terminate()
    assert deploy.wait() == 0, deploy.text()
    time.sleep(0.3)
    bridge.send("stats")
    bridge.wait_for(r"^stats ", 5)
    sniffer.stop()

    summary = deploy.json_lines("summary")[0]
    assert summary["faults"] == [] and summary["final_state"] == "DAMP"
    log = read_log(tmp_path / "log")
    moves = {(e["source"], e["target"]): e["t"] for e in log.events if e["type"] == "transition"}
    t_policy, t_damp = moves[("HOLD", "POLICY")], moves[("POLICY", "DAMP")]
    assert t_damp - t_policy >= 10.0
    heights = [(t["t"], t["base_height"]) for t in bridge.json_lines("telemetry")]
    during = [h for t, h in heights if t_policy <= t <= t_damp]
    low = [(round(t - t_policy, 2), round(h, 3)) for t, h in heights if t_policy <= t <= t_damp and h <= 0.25]
    skipped = bridge.json_lines("telemetry")[-1]["skipped_ticks"]
    assert len(during) >= 90 and not low, (
        low[:20],
        f"bridge skipped {skipped} ticks",
        summary["command_loop"],
    )
    lying = [h for t, h in heights if t < moves[("PASSIVE", "RAMP")]]
    assert max(lying) < 0.15  # it really started on the floor and the ramp stood it up
    # Shut down to damping: the last commands are DAMP and the bridge's motors are damping.
    assert is_damp(sniffer.messages[-1][1])
    final = bridge.json_lines("stats")[-1]
    assert final["kp_mean"] == 0 and final["kd_mean"] > 0 and final["bad_crc"] == 0
    check_wire(sniffer, log, summary["backend"]["commands"])


def huge_action_artifact(folder: Path) -> Path:
    """The reference contract with a network that always outputs 1000 (far past 2 x the clip of 5)."""
    import torch

    from robolearn.deploy.artifact import load_artifact
    from robolearn.export import export_policy, reference_network

    contract = load_artifact(REFERENCE).contract
    net = reference_network(SPEC, contract.input_size, seed=0)
    with torch.no_grad():
        net[2].bias.fill_(1000.0)
    torch.save(net.state_dict(), folder / "huge.pt")
    export_policy(
        net,
        contract,
        folder / "huge",
        {"policy.pt": (folder / "huge.pt", "torch state_dict")},
        check_samples=8,
    )
    return folder / "huge"


FAULTS = {
    "bridge_silent": ("fault silence", "stale_state"),
    "nan_state": ("fault nan", "non_finite_state"),
    "loss_beyond_stale": ("loss 1.0", "stale_state"),
    "bad_state_crc": ("fault bad_crc", "stale_state"),
    "huge_action": (None, "action_limit"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_ends_in_damp_within_one_command_period(name: str, domains, procs, tmp_path: Path) -> None:
    injection, guard = FAULTS[name]
    domain = domains.take()
    policy = huge_action_artifact(tmp_path) if injection is None else REFERENCE
    sniffer = WireSniffer(domain)
    bridge = procs(bridge_args(domain, "bridge.initial_pose=default"), "bridge")
    extra = ("autostart=true", "autopolicy_s=0.2", "settings.ramp_s=0.3", "exit_damp_s=0.5", "duration_s=60")
    deploy = procs(deploy_args(domain, tmp_path / "log", *extra, policy=policy), "deploy")
    deploy.wait_for(TRANSITION + r"HOLD -> POLICY", 30)
    if injection is not None:
        time.sleep(0.3)
        bridge.send(injection)
    deploy.wait_for(TRANSITION + r"FAULT", 10)
    time.sleep(0.5)  # DAMP must keep going out, not once
    deploy.popen.terminate()
    assert deploy.wait() == 3, deploy.text()  # the fault outcome's exit code, even when stopped by SIGTERM
    sniffer.stop()

    summary = deploy.json_lines("summary")[0]
    assert summary["faults"] and summary["faults"][0]["reason"].startswith(guard), summary["faults"]
    if name == "bad_state_crc":
        assert summary["backend"]["crc_errors"] > 0
    log = read_log(tmp_path / "log")
    fault = next(e for e in log.events if e["type"] == "fault")
    c = log.control
    damp_rows = np.flatnonzero(c["safety"] == DAMP)
    after = c[damp_rows[0] :]
    # DAMP went out within one command period of the trip (a guard in the command loop damps in the
    # tick that detects it; a policy-side trip is acted on by the next command tick), and every
    # command after it was DAMP too.
    assert 0.0 <= after["t"][0] - fault["t"] < COMMAND_DT + 0.001, after["t"][0] - fault["t"]
    assert np.all(c["safety"][: damp_rows[0]] != DAMP)
    assert (
        np.all(after["safety"] == DAMP)
        and np.all(after["kind"] == CommandKind.DAMP)
        and np.all(after["cmd_kp"] == 0)
    )
    assert after["t"][-1] - fault["t"] > 0.8 and len(after) > 0.8 * (after["t"][-1] - fault["t"]) / COMMAND_DT
    if guard == "stale_state":
        # Detection came within a command period (plus scheduling slack) of the threshold being crossed.
        # The slack is the test machine's, not the runtime's: here the loop runs without real-time
        # priority on 2 cores shared with the bridge and another test worker, and one CI run measured
        # 5.1 ms (3 ms of slack failed it); still a tenth of the 50 ms staleness threshold.
        before = c[(c["t"] < fault["t"]) & np.isfinite(c["t_state"])]
        crossed = before["t_state"].max() + 0.05
        assert fault["t"] - crossed < COMMAND_DT + 0.006
    # On the wire: once DAMP appears it never stops, and nothing ever broke a limit.
    damp = [is_damp(rec) for _, rec in sniffer.messages]
    first = damp.index(True, next(i for i, d in enumerate(damp) if not d))
    assert all(damp[first:])
    check_wire(sniffer, log, summary["backend"]["commands"])


def test_moderate_loss_and_latency_do_not_trip(domains, procs, tmp_path: Path) -> None:
    domain = domains.take()
    bridge = procs(
        bridge_args(
            domain,
            "bridge.initial_pose=default",
            "bridge.loss=0.2",
            "bridge.latency_s=0.002",
            "bridge.jitter_s=0.002",
        ),
        "bridge",
    )
    deploy = procs(
        deploy_args(
            domain,
            tmp_path / "log",
            "autostart=true",
            "autopolicy_s=0.2",
            "settings.ramp_s=0.3",
            "exit_damp_s=0.3",
            "duration_s=3",
        ),
        "deploy",
    )
    assert deploy.wait(40) == 0, deploy.text()
    summary = deploy.json_lines("summary")[0]
    assert summary["faults"] == [], summary["faults"]
    assert [t["to"] for t in summary["transitions"]] == ["RAMP", "HOLD", "POLICY", "DAMP"]
    assert bridge.json_lines("telemetry")[-1]["commands_lost"] > 0


def test_bridge_drops_commands_with_a_bad_crc(domains, procs) -> None:
    from robolearn.deploy.dds import LOWCMD_TOPIC, DdsSession
    from robolearn.deploy.messages import message_family

    domain = domains.take()
    bridge = procs(bridge_args(domain, "bridge.initial_pose=default"), "bridge")
    bridge.wait_for(r"^telemetry ", 20)
    family = message_family("unitree_go")
    session = DdsSession(domain, "lo")
    writer = session.writer(LOWCMD_TOPIC, family.sdk_types()[0], depth=64)
    rec = family.low_cmd.new()
    rec["motor_cmd"]["mode"][:12] = family.enabled_mode
    rec["motor_cmd"]["kd"][:12] = 1.0
    family.low_cmd.seal(rec)
    rec["crc"] = int(rec["crc"]) ^ 0xFFFF
    deadline = time.monotonic() + 10
    while writer.matched() == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for _ in range(20):
        writer.write(family.low_cmd.encode(rec))
        time.sleep(0.002)
    time.sleep(0.3)
    bridge.send("stats")
    bridge.wait_for(r"^stats ", 5)
    stats = bridge.json_lines("stats")
    assert stats[-1]["bad_crc"] == 20 and stats[-1]["commands"] == 0 and stats[-1]["kd_mean"] == 0
    family.low_cmd.seal(rec)  # now valid: applied
    for _ in range(5):
        writer.write(family.low_cmd.encode(rec))
        time.sleep(0.002)
    time.sleep(0.3)
    bridge.send("stats")
    deadline = time.monotonic() + 5
    while len(bridge.json_lines("stats")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    last = bridge.json_lines("stats")[-1]
    assert last["commands"] == 5 and last["kd_mean"] == pytest.approx(1.0)
    session.close()


def test_dry_run_publishes_nothing(domains, procs, tmp_path: Path) -> None:
    domain = domains.take()
    sniffer = WireSniffer(domain)
    bridge = procs(bridge_args(domain, "bridge.initial_pose=default"), "bridge")
    deploy = procs(
        deploy_args(
            domain,
            tmp_path / "log",
            "dry_run=true",
            "autostart=true",
            "autopolicy_s=0.1",
            "settings.ramp_s=0.2",
            "exit_damp_s=0.2",
            "duration_s=1.5",
        ),
        "deploy",
    )
    assert deploy.wait(40) == 0, deploy.text()
    sniffer.stop()
    summary = deploy.json_lines("summary")[0]
    assert [t["to"] for t in summary["transitions"]] == ["RAMP", "HOLD", "POLICY", "DAMP"]
    assert summary["backend"]["commands"] > 500 and summary["backend"]["states"] > 500  # computed, read
    assert sniffer.messages == []  # and nothing on the wire
    assert bridge.json_lines("telemetry")[-1]["commands"] == 0
