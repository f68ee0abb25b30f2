"""Our loopback DDS beside Unitree's own tools, with the stock SDK left at its defaults.

A stock unitree_sdk2py process (tests/deploy/dds_peer.py --stack sdk: `ChannelFactoryInitialize(d,
"lo")`, ChannelPublisher/ChannelSubscriber with default QoS, the SDK's CRC, as unitree_mujoco's
simulator does) and our runtime's DDS backend find each other on `lo` and exchange Go2 (unitree_go)
and G1 (unitree_hg) messages in both directions, field for field; a stock-SDK simulator stand-in
drives the deploy process itself. deploy/interop.md explains why this works and what it needs.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("unitree_sdk2py")
pytest.importorskip("onnxruntime")
from deploy_helpers import DomainPool, Proc, bridge_args, deploy_args
from interop_helpers import (
    check_cmd_fields,
    check_state_sample,
    peer_args,
    poll_states,
    random_low_cmd,
    runtime_backend,
    send_until_echoed,
)

from robolearn.deploy.backends.dds_backend import DdsBackend
from robolearn.deploy.commands import CommandKind, MotorCommand
from robolearn.deploy.dds import DdsSession, cyclone_config, loopback_multicast_works
from robolearn.robots.registry import get_robot_spec

FAMILIES = ("unitree_go", "unitree_hg")
Procs = Callable[[list[str], str], Proc]
STOCK_TOOLS_CAN_RUN = loopback_multicast_works()
needs_lo_multicast = pytest.mark.skipif(
    not STOCK_TOOLS_CAN_RUN,
    reason="IPv4 multicast does not come back on lo here, so a stock SDK tool on lo finds no peer at all"
    " (not even another SDK tool); deploy/interop.md says what to do",
)


def test_loopback_config_discovers_the_way_the_sdk_does() -> None:
    root = ET.fromstring(cyclone_config("lo"))
    nic = root.find("./Domain/General/Interfaces/NetworkInterface")
    assert nic is not None and nic.get("name") == "lo" and nic.get("multicast") == "default"  # as the SDK
    assert root.findtext("./Domain/General/AllowMulticast") == "spdp"  # discovery only; samples unicast
    peers = [p.get("address") for p in root.findall("./Domain/Discovery/Peers/Peer")]
    assert peers == ["127.0.0.1"]  # and unicast discovery where lo multicast is missing
    # A robot's NIC keeps CycloneDDS's defaults, as the SDK does.
    eth = ET.fromstring(cyclone_config("eth0"))
    assert eth.find("./Domain/Discovery") is None and eth.find("./Domain/General/AllowMulticast") is None


@needs_lo_multicast
@pytest.mark.parametrize("family_name", FAMILIES)
def test_our_lowcmd_reaches_a_stock_sdk_subscriber(
    family_name: str, domains: DomainPool, procs: Procs
) -> None:
    domain = domains.take()
    peer = procs(peer_args("sdk", family_name, domain, "--listen-cmd"), "sdk-subscriber")
    peer.wait_for(r"^ready", 20)
    backend = runtime_backend(family_name, domain)
    family = backend.family
    assert backend.writer is not None
    writer = backend.writer
    rng = np.random.default_rng(13)
    # Whole records through the runtime's writer: every field the SDK decodes is ours, and its CRC agrees.
    for _ in range(3):
        rec = random_low_cmd(family, rng)
        data = family.low_cmd.encode(rec)
        fields = send_until_echoed(partial(writer.write, data), peer, rec["motor_cmd"]["q"])
        check_cmd_fields(fields, rec, family)
    # And a command as the runtime sends one: the spec's joints enabled, every other slot unpowered.
    spec = backend.spec
    command = MotorCommand(CommandKind.PD, spec.default_pos_array, spec.kp_array, spec.kd_array)
    expected_q = np.zeros(family.num_motor_slots, np.float32)
    expected_q[backend.slots] = spec.default_pos_array
    fields = send_until_echoed(lambda: backend.send(command), peer, expected_q)
    check_cmd_fields(fields, backend.record.copy(), family)
    modes = np.asarray(fields["mode"])
    assert np.all(modes[backend.slots] == family.enabled_mode) and modes.sum() == len(backend.slots)
    np.testing.assert_array_equal(
        np.asarray(fields["kp"], np.float32)[backend.slots], spec.kp_array.astype(np.float32)
    )
    assert peer.json_lines("count")[-1]["crc_bad"] == 0
    backend.close()


@needs_lo_multicast
@pytest.mark.parametrize("family_name", FAMILIES)
def test_a_stock_sdk_lowstate_publisher_drives_our_backend(
    family_name: str, domains: DomainPool, procs: Procs
) -> None:
    domain = domains.take()
    # As unitree_mujoco's simulator: LowState out at a fixed rate, LowCmd in, the SDK's defaults.
    peer = procs(
        peer_args(
            "sdk", family_name, domain, "--publish-state-hz", "200", "--mode-machine", "4", "--listen-cmd"
        ),
        "sdk-simulator",
    )
    peer.wait_for(r"^ready", 20)
    backend = runtime_backend(family_name, domain)
    samples = poll_states(backend, 1.0)
    assert len(samples) >= 20, len(samples)  # 200 Hz for a second, on a shared 2-core machine
    assert backend.stats.crc_errors == 0 and backend.stats.decode_errors == 0  # the SDK's CRC is ours
    ticks = [s.tick for s in samples]
    assert ticks == sorted(set(ticks))  # fresh states, in order
    for sample in samples:
        check_state_sample(sample, backend, mode_machine=4)
    # The loop closes: the next command echoes the G1's mode_machine and reaches the SDK side.
    spec = backend.spec
    command = MotorCommand(
        CommandKind.DAMP, samples[-1].joint_pos, np.zeros(len(spec.joint_names)), spec.kd_array
    )
    expected_q = np.zeros(backend.family.num_motor_slots, np.float32)
    expected_q[backend.slots] = samples[-1].joint_pos
    fields = send_until_echoed(lambda: backend.send(command), peer, expected_q)
    if family_name == "unitree_hg":
        assert fields["mode_machine"] == 4
    assert fields["crc_ok"] is True
    backend.close()


@needs_lo_multicast
def test_states_without_a_crc_are_dropped_unless_check_state_crc_is_off(
    domains: DomainPool, procs: Procs
) -> None:
    """unitree_mujoco's Python simulator never fills LowState.crc: the default drops such states."""
    domain = domains.take()
    peer = procs(
        peer_args("sdk", "unitree_go", domain, "--publish-state-hz", "200", "--state-crc", "zero"),
        "sdk-simulator",
    )
    peer.wait_for(r"^ready", 20)
    checking = runtime_backend("unitree_go", domain)
    deadline = time.monotonic() + 20
    while checking.stats.crc_errors < 20:
        assert time.monotonic() < deadline, checking.stats
        assert checking.poll_state(time.monotonic()) is None  # never a state with a wrong CRC
        time.sleep(0.005)
    assert checking.stats.states == 0
    trusting = DdsBackend(checking.spec, DdsSession(domain, "lo"), check_crc=False)
    samples = poll_states(trusting, 0.3)
    for sample in samples:
        check_state_sample(sample, trusting, mode_machine=0)
    assert trusting.stats.crc_errors == 0
    checking.close()
    trusting.close()


@needs_lo_multicast
@pytest.mark.parametrize(
    "state_crc,settings",
    [("valid", ()), ("zero", ("settings.dds.check_state_crc=false",))],
    ids=["sdk_crc", "unitree_mujoco_python_no_crc"],
)
def test_a_stock_sdk_simulator_drives_the_deploy_runtime(
    state_crc: str, settings: tuple[str, ...], domains: DomainPool, procs: Procs, tmp_path: Path
) -> None:
    """The deploy process against a stock-SDK Go2 stand-in: it leaves 'waiting for state', stands, damps."""
    spec = get_robot_spec("go2")
    q = np.zeros(20)
    q[np.asarray(spec.motor_indices)] = spec.default_pos_array  # standing still at the default pose
    domain = domains.take()
    peer = procs(
        peer_args(
            "sdk",
            "unitree_go",
            domain,
            "--publish-state-hz",
            "100",
            "--state-crc",
            state_crc,
            "--listen-cmd",
            "--print-cmd-max",
            "0",
            "--q=" + ",".join(f"{v:.6f}" for v in q),  # one token: the values may start with '-'
        ),
        "sdk-simulator",
    )
    peer.wait_for(r"^ready", 20)
    # The SDK's Python serialises a LowState in ~1-2 ms and decodes a LowCmd in ~1 ms (+0.35 ms for
    # its CRC): on a shared 2-core machine it falls seconds behind a 500 Hz command stream (the
    # socket buffer holds the backlog) and can stall for tens of ms. This test is about the two
    # stacks talking, so commands go at 100 Hz and the stale-state guard (tested elsewhere) gets room.
    extra = (
        "autostart=true",
        "loop.command_hz=100",
        "settings.ramp_s=0.3",
        "settings.safety.stale_state_s=0.3",
        "exit_damp_s=0.5",
        "duration_s=2",
        *settings,
    )
    deploy = procs(deploy_args(domain, tmp_path / "log", *extra), "deploy")
    assert deploy.wait(60) == 0, deploy.text()
    # On a loaded machine the SDK's Python listener can lag: wait until its count stops moving.
    deadline, seen = time.monotonic() + 10, -1
    while time.monotonic() < deadline:
        time.sleep(0.5)
        received = peer.json_lines("count")[-1]["received"]
        if received == seen:
            break
        seen = received
    summary = deploy.json_lines("summary")[0]
    assert summary["faults"] == [], summary["faults"]
    # autostart needs a state: PASSIVE -> RAMP proves the stock publisher's LowState got in.
    assert [t["to"] for t in summary["transitions"]] == ["RAMP", "HOLD", "DAMP"], summary["transitions"]
    backend = summary["backend"]
    assert backend["states"] > 50 and backend["crc_errors"] == 0 and backend["decode_errors"] == 0, backend
    counts = peer.json_lines("count")
    final = counts[-1]
    assert final["received"] >= 0.5 * backend["commands"], (final["received"], backend["commands"])
    assert final["crc_bad"] == 0
    slots = np.asarray(spec.motor_indices)
    held = [c["last"] for c in counts if c["last"] is not None and np.any(np.asarray(c["last"]["kp"]) > 0)]
    assert held, "the SDK side never saw a standing (kp > 0) command"
    np.testing.assert_allclose(np.asarray(held[-1]["kp"])[slots], spec.kp_array, rtol=1e-6)
    # It stood the robot (pd), then damped, and the last command the SDK side saw was damping.
    phases = final["phases"]
    assert "pd" in phases and "damp" in phases[phases.index("pd") :], phases
    last = final["last"]
    assert np.all(np.asarray(last["kp"]) == 0) and np.all(np.asarray(last["kd"])[slots] > 0)


@needs_lo_multicast
def test_a_stock_sdk_controller_drives_our_sim_bridge(domains: DomainPool, procs: Procs) -> None:
    """Unitree's low-level examples (damping on every motor, the SDK's CRC) against robolearn's bridge."""
    domain = domains.take()
    bridge = procs(bridge_args(domain, "bridge.initial_pose=default"), "bridge")
    bridge.wait_for(r"^telemetry ", 30)
    peer = procs(
        peer_args("sdk", "unitree_go", domain, "--publish-cmd-hz", "100", "--cmd-kd", "1.5"), "sdk-controller"
    )
    peer.wait_for(r"^ready", 20)
    deadline = time.monotonic() + 20
    while True:
        latest = bridge.json_lines("telemetry")[-1]
        if latest["commands"] >= 20:
            break
        assert time.monotonic() < deadline, bridge.text()[-3000:] + peer.text()[-2000:]
        time.sleep(0.1)
    # The bridge checked each command's CRC (none bad) and applied it: pure damping at kd 1.5.
    assert latest["bad_crc"] == 0 and latest["kp_mean"] == 0
    assert latest["kd_mean"] == pytest.approx(1.5)
