"""One exit code per outcome (docs/deploy.md): clean 0, could not start 2, safety fault 3, operator stop 4.

Also the README's sim2sim line, which must run the policy with nothing but the artifact given.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from deploy_helpers import REFERENCE, run_module
from test_deploy_failures import FailingBackend, lenient, signal_when_running
from test_deploy_runtime import controller, run_ticks

from robolearn.deploy.recorder import read_log
from robolearn.deploy.runtime import EXIT_CODES, Runtime
from robolearn.deploy.safety import Event, SafetyState


def summary_of(stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("summary "))
    return json.loads(line[len("summary ") :])


def test_readme_sim2sim_line_runs_the_policy() -> None:
    # Exactly the README's line, with the shipped reference artifact.
    result = run_module(
        "robolearn.deploy", "robot=go2", "policy=policies/reference/go2_stand", "backend=mujoco", timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = summary_of(result.stdout)
    assert summary["outcome"] == "clean" and summary["policy_steps"] > 0 and summary["faults"] == []
    assert [t["to"] for t in summary["transitions"]] == ["RAMP", "HOLD", "POLICY", "DAMP"]
    assert "session: autostart on, autopolicy_s=1" in result.stdout and "duration_s=10" in result.stdout
    assert summary["base_height"] > 0.0


def test_safety_fault_exits_3_and_is_in_the_summary_and_the_recording(tmp_path: Path) -> None:
    # A joint-speed limit no ramp can respect: the guard trips while the robot stands up.
    result = run_module(
        "robolearn.deploy",
        f"policy={REFERENCE}",
        "backend=mujoco",
        "settings.safety.joint_vel_factor=0.01",
        "duration_s=1.5",
        "exit_damp_s=0.3",
        f"record.dir={tmp_path / 'log'}",
        "keyboard=false",
        timeout=120,
    )
    assert result.returncode == EXIT_CODES["fault"] == 3, result.stdout + result.stderr
    summary = summary_of(result.stdout)
    fault = summary["first_fault"]
    assert summary["outcome"] == "fault" and fault["reason"].startswith("joint_velocity") and fault["utc"]
    assert f"fault at {fault['t']:.3f} s" in result.stderr and "Traceback" not in result.stderr
    log = read_log(tmp_path / "log")
    recorded = next(e for e in log.events if e["type"] == "fault")
    assert recorded["reason"] == fault["reason"] and recorded["utc"] == fault["utc"]
    end = log.events[-1]
    assert end["type"] == "end" and end["outcome"] == "fault" and end["exit_code"] == 3
    assert end["first_fault"]["reason"] == fault["reason"] and log.meta["summary"]["exit_code"] == 3
    damp = log.control[log.control["t"] >= recorded["t"]]
    assert np.all(damp["safety"] == SafetyState.DAMP.value) and damp["t"][-1] - recorded["t"] > 1.0


def test_ctrl_c_exits_4_without_a_traceback_after_damping(procs, tmp_path: Path) -> None:
    deploy = procs(
        [
            "robolearn.deploy",
            f"policy={REFERENCE}",
            "backend=mujoco",
            "mujoco.realtime=true",
            "settings.ramp_s=0.5",
            "autopolicy_s=0.2",
            "duration_s=60",
            "exit_damp_s=0.5",
            f"record.dir={tmp_path / 'log'}",
            "keyboard=false",
        ],
        "deploy",
    )
    deploy.wait_for(r"HOLD -> POLICY", 60)
    deploy.popen.send_signal(signal.SIGINT)
    assert deploy.wait(30) == EXIT_CODES["operator_stop"] == 4, deploy.text()
    text = deploy.text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    summary = deploy.json_lines("summary")[0]
    assert summary["stop_reason"] == "Ctrl-C (SIGINT)" and summary["final_state"] == "DAMP"
    log = read_log(tmp_path / "log")
    stop = next(e for e in log.events if e["type"] == "stop")["t"]
    damp = log.control[log.control["t"] >= stop]
    assert np.all(damp["kind"] == 2) and damp["t"][-1] - stop >= 0.5 - 0.003  # DAMP for exit_damp_s


def test_estop_is_an_operator_stop_and_a_fault_outranks_it() -> None:
    c = controller(autostart=True, duration_s=0.2)
    t, _ = run_ticks(c, 0.0, 0.1)
    c.operator.push(Event.ESTOP, "test")
    run_ticks(c, t, 0.2)
    assert c.done and c.summary()["outcome"] == "operator_stop" and c.summary()["exit_code"] == 4
    c._fault("base_tilt: test", t)
    assert c.summary()["outcome"] == "fault" and c.summary()["exit_code"] == 3


def test_sigterm_ends_a_session_cleanly() -> None:
    c = lenient(controller(autostart=True, duration_s=5.0, exit_damp_s=0.1, status_every_s=0))
    backend = FailingBackend("none", 0, False)
    sender = signal_when_running(backend, 0.2, signal.SIGTERM)
    summary = Runtime(c, backend, c.options).run()
    sender.join()
    assert summary["outcome"] == "clean" and summary["exit_code"] == 0 and summary["stop_reason"] == "SIGTERM"
