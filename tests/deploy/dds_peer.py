"""A DDS peer for the interop tests: a stock unitree_sdk2py tool, or one of our own sessions.

    python -m tests.deploy.dds_peer --stack sdk|ours --family unitree_go|unitree_hg --domain D
        [--publish-state-hz 200] [--mode-machine 4] [--q=q0,q1,...] [--state-crc valid|zero]
        [--listen-cmd] [--print-cmd-max N] [--publish-cmd-hz 100 --cmd-kd 1.5]

`--stack sdk` imports nothing but unitree_sdk2py and sets it up exactly as unitree_mujoco's
simulator and Unitree's examples do (`ChannelFactoryInitialize(domain, "lo")`, ChannelPublisher /
ChannelSubscriber with default QoS, the SDK's own CRC), so it stands for any stock tool.
`--stack ours` does the same job through robolearn.deploy.dds and robolearn.deploy.messages.

It publishes rt/lowstate with the content of state_fields() (a fresh `tick` each time; the CRC
computed, or left 0 with --state-crc zero as unitree_mujoco's Python simulator leaves it) and prints,
one JSON line each, every rt/lowcmd it receives as `cmd {...}` (the fields of cmd_fields, with the
CRC its own stack computes) up to --print-cmd-max of them and, every 0.2 s,
`count {"received": n, "crc_bad": m, "last": <the newest cmd's fields or null>, "phases": [...]}`
(phases: the kinds of command seen, passive / pd / damp, each run of one kind once). It prints
`ready` once its endpoints exist, and runs until --duration_s or until killed. With
--publish-cmd-hz (stock SDK only) it also publishes rt/lowcmd as Unitree's low-level examples do:
every slot enabled (mode 1) with q 0, kp 0 and kd --cmd-kd (pure damping), CRC from the SDK.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

NUM_SLOTS = {"unitree_go": 20, "unitree_hg": 35}
MOTOR_CMD_FIELDS = ("mode", "q", "dq", "tau", "kp", "kd")
HEADER_FIELDS = {"unitree_go": ("head", "level_flag"), "unitree_hg": ("mode_pr", "mode_machine")}


def state_fields(
    family: str, tick: int, mode_machine: int = 4, q: list[float] | None = None
) -> dict[str, Any]:
    """The LowState content the peer publishes (motor arrays over every slot)."""
    n = NUM_SLOTS[family]
    fields: dict[str, Any] = {
        "tick": tick,
        "mode": [1] * n,
        "q": list(q) if q is not None else [0.01 * i for i in range(n)],
        "dq": [-0.02 * i for i in range(n)],
        "tau_est": [0.03 * i for i in range(n)],
        "quaternion": [1.0, 0.0, 0.0, 0.0],
        "gyroscope": [0.1, -0.2, 0.3],
        "accelerometer": [0.0, 0.0, 9.81],
    }
    if family == "unitree_hg":
        fields["mode_machine"] = mode_machine
    return fields


def _note_phase(phases: list[str], fields: dict[str, Any]) -> None:
    """Append the command's kind (passive, pd, damp) when it differs from the previous one."""
    if any(kp != 0 for kp in fields["kp"]):
        phase = "pd"
    elif any(kd != 0 for kd in fields["kd"]):
        phase = "damp"
    else:
        phase = "passive"
    if not phases or phases[-1] != phase:
        phases.append(phase)


# --- the stock SDK --------------------------------------------------------------------------------------
def _sdk_peer(args: argparse.Namespace, emit: Any) -> None:
    from unitree_sdk2py.core.channel import ChannelFactoryInitialize, ChannelPublisher, ChannelSubscriber
    from unitree_sdk2py.utils.crc import CRC

    if args.family == "unitree_go":
        from unitree_sdk2py.idl.default import unitree_go_msg_dds__LowCmd_ as new_cmd
        from unitree_sdk2py.idl.default import unitree_go_msg_dds__LowState_ as new_state
        from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_
    else:
        from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowCmd_ as new_cmd
        from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowState_ as new_state
        from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_

    ChannelFactoryInitialize(args.domain, args.interface)
    crc = CRC()
    counts: dict[str, Any] = {"received": 0, "crc_bad": 0, "last": None, "phases": []}
    lock = threading.Lock()

    def on_cmd(msg: Any) -> None:
        fields: dict[str, Any] = {
            name: [getattr(m, name) for m in msg.motor_cmd] for name in MOTOR_CMD_FIELDS
        }
        for name in HEADER_FIELDS[args.family]:
            value = getattr(msg, name)
            fields[name] = list(value) if isinstance(value, (list, bytes, bytearray)) else value
        fields["crc"] = msg.crc
        fields["crc_ok"] = crc.Crc(msg) == msg.crc
        with lock:
            counts["received"] += 1
            counts["crc_bad"] += not fields["crc_ok"]
            counts["last"] = fields
            _note_phase(counts["phases"], fields)
            if counts["received"] <= args.print_cmd_max:
                emit("cmd", fields)

    if args.listen_cmd:
        subscriber = ChannelSubscriber("rt/lowcmd", LowCmd_)
        subscriber.Init(on_cmd, 0)
    publisher = None
    if args.publish_state_hz > 0:
        publisher = ChannelPublisher("rt/lowstate", LowState_)
        publisher.Init()
    msg = new_state()
    if args.family == "unitree_go":
        msg.head = [0xFE, 0xEF]
        msg.level_flag = 0xFF

    def publish(tick: int) -> None:
        f = state_fields(args.family, tick, args.mode_machine, args.q)
        for i, m in enumerate(msg.motor_state):
            m.mode, m.q, m.dq, m.tau_est = f["mode"][i], f["q"][i], f["dq"][i], f["tau_est"][i]
        msg.imu_state.quaternion = f["quaternion"]
        msg.imu_state.gyroscope = f["gyroscope"]
        msg.imu_state.accelerometer = f["accelerometer"]
        msg.tick = tick
        if args.family == "unitree_hg":
            msg.mode_machine = f["mode_machine"]
        msg.crc = crc.Crc(msg) if args.state_crc == "valid" else 0
        assert publisher is not None
        publisher.Write(msg)

    cmd_publisher = None
    if args.publish_cmd_hz > 0:
        cmd_publisher = ChannelPublisher("rt/lowcmd", LowCmd_)
        cmd_publisher.Init()
    cmd = new_cmd()
    if args.family == "unitree_go":
        cmd.head = [0xFE, 0xEF]
        cmd.level_flag = 0xFF
    for m in cmd.motor_cmd:
        m.mode, m.q, m.dq, m.tau, m.kp, m.kd = 1, 0.0, 0.0, 0.0, 0.0, args.cmd_kd
    cmd.crc = crc.Crc(cmd)

    def publish_cmd(_: int) -> None:
        assert cmd_publisher is not None
        cmd_publisher.Write(cmd)

    publishers: list[tuple[float, Any]] = []
    if publisher is not None:
        publishers.append((args.publish_state_hz, publish))
    if cmd_publisher is not None:
        publishers.append((args.publish_cmd_hz, publish_cmd))
    _loop(args, publishers, None, emit, lambda: dict(counts), lock)


# --- ours ------------------------------------------------------------------------------------------------
def _our_peer(args: argparse.Namespace, emit: Any) -> None:
    import numpy as np

    from robolearn.deploy.dds import LOWCMD_TOPIC, LOWSTATE_TOPIC, DdsSession
    from robolearn.deploy.messages import message_family

    family = message_family(args.family)
    cmd_type, state_type = family.sdk_types()
    session = DdsSession(args.domain, args.interface)
    reader = session.reader(LOWCMD_TOPIC, cmd_type, depth=1000, reliable=True) if args.listen_cmd else None
    writer = session.writer(LOWSTATE_TOPIC, state_type, depth=1) if args.publish_state_hz > 0 else None
    counts: dict[str, Any] = {"received": 0, "crc_bad": 0, "last": None, "phases": []}
    state = family.low_state.new()
    if args.family == "unitree_go":
        state["head"] = (0xFE, 0xEF)
        state["level_flag"] = 0xFF

    def publish(tick: int) -> None:
        f = state_fields(args.family, tick, args.mode_machine, args.q)
        motors = state["motor_state"]
        for name in ("mode", "q", "dq", "tau_est"):
            motors[name] = f[name]
        for name in ("quaternion", "gyroscope", "accelerometer"):
            state["imu_state"][name] = f[name]
        state["tick"] = tick
        if args.family == "unitree_hg":
            state["mode_machine"] = f["mode_machine"]
        if args.state_crc == "valid":
            family.low_state.seal(state)
        assert writer is not None
        writer.write(family.low_state.encode(state))

    def receive() -> None:
        assert reader is not None
        for data in reader.take(256):
            rec = family.low_cmd.decode(data)
            motors = rec["motor_cmd"]
            fields: dict[str, Any] = {name: motors[name].tolist() for name in MOTOR_CMD_FIELDS}
            for name in HEADER_FIELDS[args.family]:
                fields[name] = np.asarray(rec[name]).tolist()
            fields["crc"] = int(rec["crc"])
            fields["crc_ok"] = family.low_cmd.crc_ok(rec)
            counts["received"] += 1
            counts["crc_bad"] += not fields["crc_ok"]
            counts["last"] = fields
            _note_phase(counts["phases"], fields)
            if counts["received"] <= args.print_cmd_max:
                emit("cmd", fields)

    _loop(
        args,
        [(args.publish_state_hz, publish)] if writer is not None else [],
        receive if reader is not None else None,
        emit,
        lambda: dict(counts),
        threading.Lock(),
    )


def _loop(
    args: argparse.Namespace,
    publishers: list[tuple[float, Any]],
    receive: Any,
    emit: Any,
    counts: Any,
    lock: Any,
) -> None:
    """Call each (rate, publish) at its rate and receive() in between, until --duration-s."""
    emit("ready", {"stack": args.stack, "family": args.family, "domain": args.domain})
    start = next_count = time.monotonic()
    schedule = [[start, 1.0 / hz, publish, 0] for hz, publish in publishers]
    while time.monotonic() - start < args.duration_s:
        now = time.monotonic()
        for entry in schedule:
            due, period, publish, tick = entry
            if now >= due:
                publish(tick)
                entry[3] = tick + 1
                # Fell behind (a busy machine): skip, do not burst.
                entry[0] = due + period if due + period >= now else now + period
        if receive is not None:
            receive()
        if args.listen_cmd and now >= next_count:
            with lock:
                emit("count", counts())
            next_count += 0.2
        next_due = min((entry[0] for entry in schedule), default=now + 0.002)
        time.sleep(min(0.002, max(0.0, next_due - time.monotonic())))


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the peer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=("sdk", "ours"), required=True)
    parser.add_argument("--family", choices=tuple(NUM_SLOTS), required=True)
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--interface", default="lo")
    parser.add_argument("--publish-state-hz", type=float, default=0.0)
    parser.add_argument("--mode-machine", type=int, default=4)
    parser.add_argument("--q", type=lambda s: [float(x) for x in s.split(",")], default=None)
    parser.add_argument("--state-crc", choices=("valid", "zero"), default="valid")
    parser.add_argument("--listen-cmd", action="store_true")
    parser.add_argument("--print-cmd-max", type=int, default=10**9)
    parser.add_argument("--publish-cmd-hz", type=float, default=0.0)
    parser.add_argument("--cmd-kd", type=float, default=1.0)
    parser.add_argument("--duration-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.interface != "lo":
        raise SystemExit("dds_peer is a test tool: loopback (--interface lo) only")
    if args.publish_cmd_hz > 0 and args.stack != "sdk":
        raise SystemExit("--publish-cmd-hz stands for Unitree's examples: --stack sdk only")
    if args.q is not None and len(args.q) != NUM_SLOTS[args.family]:
        raise SystemExit(f"--q needs {NUM_SLOTS[args.family]} values for {args.family}, got {len(args.q)}")
    out_lock = threading.Lock()

    def emit(kind: str, payload: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
            sys.stdout.flush()

    (_sdk_peer if args.stack == "sdk" else _our_peer)(args, emit)


if __name__ == "__main__":
    main()
