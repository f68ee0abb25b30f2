"""The G1's unitree_hg LowCmd/LowState across real loopback DDS, between separate processes.

Field for field between the runtime's DDS backend and another process of ours (tests/deploy/
dds_peer.py --stack ours), and end to end between the deploy process and the G1 sim bridge, with a
sniffer checking every command on the wire: CRC, motor modes per slot, and mode_machine echoed from
the G1's LowState.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("unitree_sdk2py")
pytest.importorskip("onnxruntime")
from deploy_helpers import DomainPool, Proc, WireSniffer, bridge_args
from interop_helpers import (
    check_cmd_fields,
    check_state_sample,
    peer_args,
    poll_states,
    random_low_cmd,
    runtime_backend,
    send_until_echoed,
)

from robolearn.deploy.commands import CommandKind, MotorCommand
from robolearn.robots.registry import get_robot_spec

Procs = Callable[[list[str], str], Proc]
SPEC = get_robot_spec("g1")
SLOTS = np.asarray(SPEC.motor_indices)
UNUSED = np.setdiff1d(np.arange(35), SLOTS)  # the 23-DoF G1 leaves 13, 14, 20, 21, 27, 28 and 29-34
G1_MODE_MACHINE = 4  # the 23-DoF G1, rev 1.0 (the sim bridge publishes the same)


def test_g1_messages_cross_loopback_dds_field_for_field(domains: DomainPool, procs: Procs) -> None:
    domain = domains.take()
    peer = procs(
        peer_args(
            "ours",
            "unitree_hg",
            domain,
            "--publish-state-hz",
            "200",
            "--mode-machine",
            str(G1_MODE_MACHINE),
            "--listen-cmd",
        ),
        "g1-peer",
    )
    peer.wait_for(r"^ready", 20)
    backend = runtime_backend("unitree_hg", domain)
    assert backend.spec.name == "g1" and list(backend.slots) == list(SLOTS)

    # LowState in: every motor field through the G1's slots, the IMU, tick, mode_machine, CRC checked.
    samples = poll_states(backend, 0.5)
    assert backend.stats.crc_errors == 0 and backend.stats.decode_errors == 0
    for sample in samples:
        check_state_sample(sample, backend, mode_machine=G1_MODE_MACHINE)
    assert backend.mode_machine == G1_MODE_MACHINE

    # LowCmd out: whole random records (mode, q, dq, tau, kp, kd on all 35 slots, mode_pr,
    # mode_machine), bit for bit, with the CRC the receiving process computes.
    family = backend.family
    assert backend.writer is not None
    writer = backend.writer
    rng = np.random.default_rng(1)
    for _ in range(3):
        rec = random_low_cmd(family, rng)
        fields = send_until_echoed(
            partial(writer.write, family.low_cmd.encode(rec)), peer, rec["motor_cmd"]["q"]
        )
        check_cmd_fields(fields, rec, family)

    # And the runtime's own command: targets on the G1's slots, the hardware variant echoed.
    q = SPEC.default_pos_array + 0.05
    command = MotorCommand(CommandKind.PD, q, SPEC.kp_array, SPEC.kd_array)
    expected_q = np.zeros(35, np.float32)
    expected_q[SLOTS] = q
    fields = send_until_echoed(partial(backend.send, command), peer, expected_q)
    check_cmd_fields(fields, backend.record.copy(), family)
    assert fields["mode_machine"] == G1_MODE_MACHINE
    mode, kp, kd = (np.asarray(fields[k]) for k in ("mode", "kp", "kd"))
    assert np.all(mode[SLOTS] == 1) and np.all(mode[UNUSED] == 0)
    np.testing.assert_array_equal(kp[SLOTS], SPEC.kp_array.astype(np.float32))
    np.testing.assert_array_equal(kd[SLOTS], SPEC.kd_array.astype(np.float32))
    assert np.all(kp[UNUSED] == 0) and np.all(kd[UNUSED] == 0)
    assert np.all(np.asarray(fields["dq"]) == 0) and np.all(np.asarray(fields["tau"]) == 0)
    backend.close()


def test_g1_deploy_runtime_and_sim_bridge_over_loopback_dds(
    domains: DomainPool, procs: Procs, tmp_path: Path
) -> None:
    domain = domains.take()
    sniffer = WireSniffer(domain, robot="g1")
    bridge = procs(bridge_args(domain, robot="g1"), "g1-bridge")
    bridge.wait_for(r"^telemetry ", 30)
    deploy = procs(
        [
            "robolearn.deploy",
            "robot=g1",
            "backend=dds",
            f"domain_id={domain}",
            f"record.dir={tmp_path / 'log'}",
            "keyboard=false",
            "status_every_s=0",
            "loop.rt_priority=50",
            "duration_s=2",
            "exit_damp_s=0.5",
        ],
        "g1-deploy",
    )
    assert deploy.wait(60) == 0, deploy.text()
    time.sleep(0.3)
    bridge.send("stats")
    bridge.wait_for(r"^stats ", 5)
    sniffer.stop()

    summary = deploy.json_lines("summary")[0]
    backend = summary["backend"]
    # The bridge's LowState reached the runtime (500 Hz for 2.5 s), every CRC good ...
    assert backend["states"] > 300 and backend["crc_errors"] == 0 and backend["decode_errors"] == 0, backend
    # ... and the runtime's LowCmd reached the bridge, which applied the final damping.
    stats = bridge.json_lines("stats")[-1]
    assert stats["bad_crc"] == 0 and stats["commands"] >= 0.98 * backend["commands"], (stats, backend)
    assert stats["kp_mean"] == 0 and stats["kd_mean"] > 0

    # Every command on the wire: valid CRC, the G1's slots enabled and the rest unpowered, and
    # mode_machine 4 from the first LowState on (0 only before any state arrived).
    codec = sniffer.family.low_cmd
    assert len(sniffer.messages) >= 0.98 * backend["commands"], (len(sniffer.messages), backend)
    machines = []
    for _, rec in sniffer.messages:
        assert codec.crc_ok(rec)
        m = rec["motor_cmd"]
        assert np.all(m["mode"][SLOTS] == 1) and np.all(m["mode"][UNUSED] == 0)
        assert np.all(m["kp"][UNUSED] == 0) and np.all(m["kd"][UNUSED] == 0)
        machines.append(int(rec["mode_machine"]))
    first = machines.index(G1_MODE_MACHINE)
    assert set(machines[:first]) <= {0} and set(machines[first:]) == {G1_MODE_MACHINE}
    assert first < 0.1 * len(machines)  # the bridge was already publishing
    last = sniffer.messages[-1][1]["motor_cmd"][SLOTS]
    assert np.all(last["kp"] == 0) and np.all(last["kd"] > 0)  # it ended damping
