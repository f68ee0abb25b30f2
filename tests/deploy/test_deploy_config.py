"""Deploy configs: composition per robot, one-line errors, and the safety refusals made before start."""

from __future__ import annotations

import pytest
from deploy_helpers import run_module

from robolearn.config.validate import compose_config
from robolearn.deploy.config import validate_deploy_config
from robolearn.errors import UserError


def test_per_robot_settings_compose_and_gains_are_not_in_configs() -> None:
    go2 = compose_config("deploy", [])
    assert (
        go2.robot.name == "go2" and go2.settings.dds.interface == "lo" and go2.settings.sim_pose == "crouch"
    )
    assert go2.settings.remote.bindings["L1+R1"] == "estop"
    g1 = compose_config("deploy", ["robot=g1"])
    assert g1.settings.safety.max_tilt_deg == 30 and g1.settings.ramp_s == 3.0
    for cfg in (go2, g1):
        validate_deploy_config(cfg)
        flat = str(cfg)
        assert "kp" not in flat and "torque" not in flat  # gains and limits come from the RobotSpec


@pytest.mark.parametrize(
    "override,message",
    [
        ("backend=ros", "backend=ros is not allowed"),
        ("loop.command_hz=0", r"loop.command_hz=0\.0 is out of range"),
        ("settings.damp_kd_fraction=1.5", "never exceeds the spec's"),
        ("domain_id=300", "domain_id=300 is out of range"),
        ("bridge.loss=2", r"bridge.loss=2\.0 is out of range"),
        (
            "bridge.rt_priority=120",
            r"bridge.rt_priority=120 is out of range; SCHED_FIFO priorities are 1\.\.99",
        ),
        ("loop.rt_priority=-1", r"loop.rt_priority=-1 is out of range"),
        ("loop.scheduler=sleepy", "choose one of deadline, sleep_after_work"),
    ],
)
def test_bad_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        validate_deploy_config(compose_config("deploy", [override]))


def test_cli_errors_are_one_line(tmp_path) -> None:
    result = run_module(
        "robolearn.deploy", f"policy={tmp_path}", "backend=mujoco", "duration_s=1", timeout=60
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: policy={tmp_path} has no contract.json; export a run with python -m robolearn.export run=<run dir>"
    ]


def test_sim_bridge_refuses_a_real_interface() -> None:
    from robolearn.deploy.sim_bridge import run_bridge

    with pytest.raises(UserError, match="loopback interface only"):
        run_bridge(compose_config("deploy", ["interface=eth0"]))


def test_backend_defaults_start_the_sim_and_never_the_robot() -> None:
    from robolearn.deploy.app import build_session, session_defaults

    mujoco = compose_config("deploy", ["policy=policies/reference/go2_stand", "keyboard=false"])
    assert session_defaults(mujoco) == (True, 1.0, 10.0)  # the README's sim2sim line runs the policy
    options = build_session(mujoco)[0].options
    assert (options.autostart, options.autopolicy_s, options.duration_s) == (True, 1.0, 10.0)
    assert session_defaults(compose_config("deploy", ["autostart=false"]))[:2] == (False, None)
    assert session_defaults(compose_config("deploy", ["mujoco.realtime=true"]))[2] is None
    for dds in (["backend=dds"], ["backend=dds", "policy=policies/reference/go2_stand"]):
        assert session_defaults(compose_config("deploy", dds)) == (False, None, None)  # the operator decides
    assert session_defaults(compose_config("deploy", ["backend=dds", "autostart=true", "autopolicy_s=2"]))[
        :2
    ] == (
        True,
        2.0,
    )
