"""robolearn.doctor against the sim bridge over loopback DDS: healthy, wrong domain id, silent bridge."""

from __future__ import annotations

import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("unitree_sdk2py")

from deploy_helpers import bridge_args

from robolearn.doctor import diagnose
from robolearn.robots import GO2_SPEC
from robolearn.robots.registry import get_robot_spec


def _status(checks: list, name: str) -> str:
    return next(c.status for c in checks if c.name == name)


def test_doctor_passes_a_healthy_bridge_and_names_a_wrong_domain_id(domains, procs) -> None:
    domain, wrong = domains.take(), domains.take()
    bridge = procs(bridge_args(domain, "bridge.initial_pose=default"), "bridge")
    bridge.wait_for(r"^telemetry ", 20)
    checks = diagnose(GO2_SPEC, "lo", domain, listen_s=1.0, expect_hz=500, scan=[])
    # A loaded shared test machine slows the bridge's 500 Hz: the rate may warn there, never fail.
    assert all(c.status == "ok" for c in checks if c.name != "state rate"), checks
    assert next(c for c in checks if c.name == "state rate").status != "fail", checks
    assert {c.name for c in checks} >= {
        "interface",
        "domain",
        "lowstate",
        "state rate",
        "tick",
        "crc",
        "joints",
        "lowcmd",
    }
    assert "hardware" not in {c.name for c in checks}  # unitree_go LowState has no mode_machine
    doctor = procs(
        ["robolearn.doctor", "robot=go2", f"domain_id={wrong}", "listen_s=0.5", f"scan_domains=[{domain}]"],
        "doctor",
    )
    assert doctor.wait(30) == 1
    text = doctor.text()
    assert (
        f"nothing on rt/lowstate in domain {wrong}" in text
        and f"set domain_id={domain}" in text
        and "result: FAIL" in text
    )


def test_doctor_says_a_silent_bridge_is_silent(domains, procs) -> None:
    domain = domains.take()
    bridge = procs(bridge_args(domain, "bridge.initial_pose=default"), "bridge")
    bridge.wait_for(r"^telemetry ", 20)
    bridge.send("fault silence")
    bridge.wait_for(r"fault silence", 5)
    checks = diagnose(GO2_SPEC, "lo", domain, listen_s=0.5, expect_hz=500, scan=[])
    lowstate = next(c for c in checks if c.name == "lowstate")
    assert lowstate.status == "fail" and "matched" in lowstate.detail and "silent" in lowstate.detail
    assert "low-level mode" in lowstate.hint


def test_doctor_names_a_missing_interface() -> None:
    checks = diagnose(GO2_SPEC, "enp99s9", 0, listen_s=0.1, expect_hz=500, scan=[])
    assert checks[0].status == "fail" and "does not exist" in checks[0].detail and len(checks) == 1


def test_doctor_reports_a_g1_of_another_hardware_revision(domains, procs) -> None:
    domain = domains.take()
    bridge = procs(
        bridge_args(domain, "bridge.initial_pose=default", "bridge.mode_machine=1", robot="g1"), "bridge"
    )
    bridge.wait_for(r"^telemetry ", 30)
    checks = diagnose(get_robot_spec("g1"), "lo", domain, listen_s=1.0, expect_hz=500, scan=[])
    hardware = next(c for c in checks if c.name == "hardware")
    assert hardware.status == "fail" and "mode_machine 1" in hardware.detail and "is for 4" in hardware.detail
    assert "robot=" in hardware.hint
