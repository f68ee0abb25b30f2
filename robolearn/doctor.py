"""`python -m robolearn.doctor robot=go2 [interface=enp3s0] [domain_id=0]`: can we talk to the robot, and if not, why.

Checks, against a live robot or the sim bridge:
- interface: exists, is up, has an address (on a robot's NIC, one on 192.168.123.0/24);
- domain id: valid for CycloneDDS;
- rt/lowstate: something publishes it, at the expected rate, with `tick` advancing, every CRC valid,
  in the robot's message family, with joint positions inside their ranges, and (G1) a mode_machine
  (hardware revision) the robot spec supports;
- when nothing is heard: a matched but silent publisher (robot not in low-level mode, bridge paused),
  the same topic on another domain id (a wrong domain_id), or the other message family (wrong robot=);
- rt/lowcmd: nobody else is commanding the robot.
Prints one line per check with a fix for each failure; exit code 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from robolearn.cli import hydra_verb, verb_help
from robolearn.deploy.config import dds_target
from robolearn.deploy.dds import (
    LOOPBACK,
    LOWCMD_TOPIC,
    LOWSTATE_TOPIC,
    MAX_DOMAIN_ID,
    DdsSession,
    check_domain_id,
    interface_names,
)
from robolearn.deploy.messages import FAMILIES, MessageFamily, message_family
from robolearn.errors import UserError, require_extra
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec, supported_mode_machines

ROBOT_SUBNET = ipaddress.ip_network("192.168.123.0/24")  # Unitree robots' wired network
SIOCGIFADDR = 0x8915
IFF_UP = 0x1


@dataclass(frozen=True)
class Check:
    """One diagnosis line."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    hint: str = ""


@dataclass
class Heard:
    """What a reader collected on rt/lowstate."""

    samples: int = 0
    crc_bad: int = 0
    decode_errors: int = 0
    ticks: list[int] | None = None
    matched: int = 0
    seconds: float = 0.0
    last: Any = None


def interface_address(name: str) -> str | None:
    """The IPv4 address of an interface, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def check_interface(interface: str) -> Check:
    """Exists, up, addressed (and on the robot subnet for a real NIC)."""
    names = interface_names()
    if interface not in names:
        return Check(
            "interface",
            "fail",
            f"'{interface}' does not exist",
            f"pass interface=<one of {', '.join(names)}>",
        )
    flags_file = Path(f"/sys/class/net/{interface}/flags")
    up = True
    if flags_file.is_file():
        up = bool(int(flags_file.read_text().strip(), 16) & IFF_UP)
    if not up:
        return Check("interface", "fail", f"{interface} is down", f"sudo ip link set {interface} up")
    address = interface_address(interface)
    if address is None:
        return Check(
            "interface",
            "fail",
            f"{interface} has no IPv4 address",
            "give it a static address, e.g. 192.168.123.222/24 (deploy/network.md)",
        )
    if interface != LOOPBACK and ipaddress.ip_address(address) not in ROBOT_SUBNET:
        return Check(
            "interface",
            "warn",
            f"{interface} is {address}, not on {ROBOT_SUBNET}",
            "Unitree robots answer on 192.168.123.0/24 (deploy/network.md)",
        )
    return Check("interface", "ok", f"{interface} is up, {address}")


def listen_lowstate(session: DdsSession, family: MessageFamily, seconds: float) -> Heard:
    """Collect rt/lowstate for a while: count, CRC failures, ticks, matched publishers."""
    _, state_type = family.sdk_types()
    reader = session.reader(LOWSTATE_TOPIC, state_type, depth=4096, reliable=True)
    heard = Heard(ticks=[])
    codec = family.low_state
    end = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        for data in reader.take(256):
            try:
                rec = codec.decode(data)
            except UserError:
                heard.decode_errors += 1
                continue
            heard.samples += 1
            if not codec.crc_ok(rec):
                heard.crc_bad += 1
            assert heard.ticks is not None
            heard.ticks.append(int(rec["tick"]))
            heard.last = rec
        heard.matched = max(heard.matched, reader.matched())
        time.sleep(0.005)
    heard.seconds = time.monotonic() - start
    return heard


def scan_domains(domains: list[int], interface: str, seconds: float) -> dict[int, dict[str, int]]:
    """Samples of rt/lowstate heard per domain and message family, all domains listened to at once."""
    readers = []
    for domain in domains:
        for family in FAMILIES.values():
            _, state_type = family.sdk_types()
            session = DdsSession(domain, interface)
            readers.append(
                (domain, family.name, session, session.reader(LOWSTATE_TOPIC, state_type, depth=64))
            )
    counts: dict[int, dict[str, int]] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for domain, name, _, reader in readers:
            n = len(reader.take(64))
            if n:
                counts.setdefault(domain, {}).setdefault(name, 0)
                counts[domain][name] += n
        time.sleep(0.01)
    for *_, session, _ in readers:
        session.close()
    return counts


def mode_machine_checks(heard: Heard, spec: RobotSpec) -> list[Check]:
    """unitree_hg: the LowState's mode_machine (hardware revision) against the spec's; [] for unitree_go."""
    supported = supported_mode_machines(spec)
    if supported is None or heard.last is None or "mode_machine" not in (heard.last.dtype.names or ()):
        return []  # the Go2's unitree_go LowState reports no hardware revision
    mode = int(heard.last["mode_machine"])
    if mode in supported:
        return [Check("hardware", "ok", f"mode_machine {mode}, the revision the {spec.name} spec describes")]
    allowed = ", ".join(str(m) for m in supported) or "none"
    return [
        Check(
            "hardware",
            "fail",
            f"mode_machine {mode}, but the {spec.name} spec is for {allowed}: its motor slots differ,"
            " so deploy stays in DAMP",
            "deploy with the robot= whose spec matches this G1 (robots/spec.py SUPPORTED_MODE_MACHINES)",
        )
    ]


def lowstate_checks(heard: Heard, spec: RobotSpec, expect_hz: float) -> list[Check]:
    """Rate, tick, CRC and joint-range checks on what was heard."""
    checks = []
    rate = heard.samples / max(heard.seconds, 1e-9)
    if rate < 0.8 * expect_hz:
        checks.append(
            Check(
                "state rate",
                "fail" if rate < 0.5 * expect_hz else "warn",
                f"{rate:.0f} Hz, expected {expect_hz:.0f} Hz",
                "packets are lost or the publisher is slow: use a direct cable, not Wi-Fi; check CPU load on the robot",
            )
        )
    else:
        checks.append(
            Check("state rate", "ok", f"{rate:.0f} Hz ({heard.samples} samples in {heard.seconds:.1f} s)")
        )
    ticks = np.asarray(heard.ticks or [], dtype=np.int64)
    if len(ticks) > 1 and np.all(np.diff(ticks) == 0):
        checks.append(
            Check(
                "tick",
                "fail",
                f"tick stuck at {ticks[0]}",
                "the robot's low-level service is not updating the state",
            )
        )
    elif len(ticks) > 1:
        checks.append(Check("tick", "ok", f"advancing ({ticks[0]} -> {ticks[-1]})"))
    if heard.crc_bad:
        share = heard.crc_bad / max(heard.samples, 1)
        checks.append(
            Check(
                "crc",
                "fail",
                f"{heard.crc_bad} of {heard.samples} LowState samples ({share:.0%}) fail the CRC check",
                "the sender uses another message layout (robot= and its family?) or the link corrupts data",
            )
        )
    else:
        checks.append(Check("crc", "ok", f"all {heard.samples} LowState CRCs valid"))
    checks.extend(mode_machine_checks(heard, spec))
    if heard.last is not None:
        slots = np.asarray(spec.motor_indices)
        q = heard.last["motor_state"]["q"][slots].astype(np.float64)
        lo, hi = np.asarray(spec.joint_pos_lower) - 0.2, np.asarray(spec.joint_pos_upper) + 0.2
        bad = [spec.joint_names[i] for i in np.flatnonzero(~np.isfinite(q) | (q < lo) | (q > hi))]
        if bad:
            checks.append(
                Check(
                    "joints",
                    "warn",
                    f"{len(bad)} joint(s) outside their range: {', '.join(bad[:4])}",
                    f"is this a {spec.name}? is the motor order {spec.message_family}'s?",
                )
            )
        else:
            checks.append(Check("joints", "ok", f"all {spec.num_joints} joint positions inside their ranges"))
    return checks


def diagnose(
    spec: RobotSpec, interface: str, domain: int, listen_s: float, expect_hz: float, scan: list[int] | None
) -> list[Check]:
    """Run every check; stops early where later ones cannot run."""
    checks = [check_interface(interface)]
    if checks[0].status == "fail":
        return checks
    try:
        check_domain_id(domain)
    except UserError as exc:
        return [
            *checks,
            Check("domain", "fail", str(exc), f"use 0 for a Unitree robot; 0..{MAX_DOMAIN_ID} are valid"),
        ]
    checks.append(Check("domain", "ok", f"{domain}"))
    family = message_family(spec.message_family)
    session = DdsSession(domain, interface)
    heard = listen_lowstate(session, family, listen_s)
    cmd_type, _ = family.sdk_types()
    cmd_reader = session.reader(LOWCMD_TOPIC, cmd_type, depth=256, reliable=True)
    if heard.samples:
        checks.append(Check("lowstate", "ok", f"{family.name} LowState on rt/lowstate, domain {domain}"))
        checks.extend(lowstate_checks(heard, spec, expect_hz))
    elif heard.matched:
        checks.append(
            Check(
                "lowstate",
                "fail",
                f"a publisher of rt/lowstate is matched on domain {domain} but silent for {heard.seconds:.1f} s",
                "the robot is not in low-level mode (deploy/low_level_mode.md) or the bridge is paused (fault silence)",
            )
        )
    else:
        candidates = (
            scan
            if scan is not None
            else sorted({*range(10), *range(max(0, domain - 3), min(MAX_DOMAIN_ID, domain + 3) + 1)})
        )
        found = scan_domains(sorted({*candidates, domain}), interface, max(1.0, listen_s))
        other_family = [n for n in found.pop(domain, {}) if n != family.name]
        if other_family:
            checks.append(
                Check(
                    "lowstate",
                    "fail",
                    f"rt/lowstate on domain {domain} carries {other_family[0]} messages, not {family.name}",
                    "check robot= (Go2: unitree_go, G1: unitree_hg)",
                )
            )
        elif found:
            where = "; ".join(
                f"domain {d}: {', '.join(f'{n} ({c})' for n, c in fams.items())}"
                for d, fams in sorted(found.items())
            )
            best = min(found, key=lambda d: abs(d - domain))
            hint = f"set domain_id={best}"
            if family.name not in found[best]:
                hint += f"; it carries {', '.join(found[best])}, not {family.name}: check robot="
            checks.append(
                Check("lowstate", "fail", f"nothing on rt/lowstate in domain {domain}; heard {where}", hint)
            )
        else:
            checks.append(
                Check(
                    "lowstate",
                    "fail",
                    f"nothing publishes rt/lowstate on {interface} (domain {domain}, scanned {len(candidates)} domains)",
                    "is the robot on and cabled to this interface, or the sim bridge running (python -m robolearn.deploy.sim_bridge)?",
                )
            )
    time.sleep(0.2)
    commanders = len(cmd_reader.take(256))
    if commanders or cmd_reader.matched():
        checks.append(
            Check(
                "lowcmd",
                "warn",
                f"another program publishes rt/lowcmd ({commanders} samples heard)",
                "stop it (sport mode, another deploy) before deploying: two commanders fight over the motors",
            )
        )
    else:
        checks.append(Check("lowcmd", "ok", "nobody else publishes rt/lowcmd"))
    session.close()
    return checks


def report(checks: list[Check]) -> str:
    """The checks as aligned text lines."""
    lines = []
    for c in checks:
        lines.append(f"  {c.status.upper():5s} {c.name:11s} {c.detail}")
        if c.hint and c.status != "ok":
            lines.append(f"  {'':5s} {'':11s} -> {c.hint}")
    return "\n".join(lines)


def run_doctor(cfg: DictConfig) -> int:
    """Diagnose from a composed config; prints the report, returns the exit code."""
    # Every check past the interface speaks DDS: say what to install before printing anything.
    require_extra("robolearn.doctor", "cyclonedds", "unitree_sdk2py")
    spec = get_robot_spec(str(cfg.robot.name))
    interface, domain = dds_target(cfg)
    if cfg.listen_s <= 0:
        raise UserError(f"listen_s={cfg.listen_s} is out of range; use a positive number of seconds")
    print(
        f"robolearn doctor: {spec.name} ({spec.message_family}), interface {interface}, domain {domain}",
        flush=True,
    )
    scan = None if cfg.scan_domains is None else [int(d) for d in cfg.scan_domains]
    checks = diagnose(spec, interface, domain, float(cfg.listen_s), float(cfg.expect_hz), scan)
    print(report(checks), flush=True)
    failed = sum(c.status == "fail" for c in checks)
    print(
        "result: "
        + ("FAIL" if failed else "OK")
        + f" ({failed} failed, {sum(c.status == 'warn' for c in checks)} warnings)",
        flush=True,
    )
    return 1 if failed else 0


HELP = verb_help(
    "doctor",
    "robot=<go2|g1|g1_29dof> [key=value ...]",
    "Can we talk to the robot, and if not, why: checks the network interface, the DDS domain id, that\n"
    "rt/lowstate arrives at the expected rate with tick advancing and valid CRCs, in the robot's message\n"
    "family, the G1's hardware revision (LowState.mode_machine), and that nobody else commands the\n"
    "robot. One line per check with a fix for each failure; exit code 0 when nothing failed, 1 otherwise.\n"
    "Works against a real robot or the sim bridge.",
    [
        (
            "robot",
            "go2 | g1 | g1_29dof (default: go2); per-robot settings come from configs/deploy/<robot>.yaml",
        ),
        ("interface", "network interface (default: settings.dds.interface; lo for the sim bridge)"),
        ("domain_id", "DDS domain id (default: settings.dds.domain_id; Unitree robots use 0)"),
        ("listen_s", "listening time per check in seconds (default: 2.0)"),
        ("expect_hz", "expected rt/lowstate rate (default: 500)"),
        ("scan_domains", "domain ids searched when nothing is heard (default: 0-9 and domain_id +-3)"),
        ("settings.*", "the per-robot deploy settings (dds, remote, safety)"),
    ],
    [
        "python -m robolearn.doctor robot=go2                           # against the sim bridge on lo",
        "python -m robolearn.doctor robot=go2 interface=enp3s0 domain_id=0   # against the robot",
    ],
)

# Console entry point (robolearn-doctor); exit code 1 when a check fails.
main = hydra_verb("doctor", run_doctor, help_text=HELP)

if __name__ == "__main__":
    main()
