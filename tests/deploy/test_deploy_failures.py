"""The runtime's failure path: a backend that raises, and SIGINT, both end through DAMP for exit_damp_s.

The backends here are real Backend subclasses (scripted states, or the MuJoCo backend itself) that
raise after N calls, as a transport that dies mid-session does.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from deploy_helpers import REFERENCE
from test_deploy_runtime import SPEC, controller, sample

from robolearn.config.validate import compose_config
from robolearn.deploy.app import build_session
from robolearn.deploy.backends.base import Backend, StateSample
from robolearn.deploy.backends.mujoco_backend import MujocoBackend
from robolearn.deploy.commands import CommandKind, MotorCommand
from robolearn.deploy.runtime import EXIT_CODES, Controller, Runtime

EXIT_DAMP_S = 0.2


class TransportError(OSError):
    """What a dying network interface raises."""


class FailingBackend(Backend):
    """Fresh default states; `send` or `poll_state` raises from call `after` on (once, or for good)."""

    name = "failing"

    def __init__(self, fail: str, after: int, permanent: bool) -> None:
        super().__init__()
        self.fail, self.after, self.permanent = fail, after, permanent
        self.calls = {"send": 0, "poll": 0}
        self.sent: list[tuple[float, MotorCommand]] = []
        self.failed_at: float | None = None

    def _maybe_raise(self, what: str) -> None:
        self.calls[what] += 1
        n = self.calls[what]
        if what == self.fail and (n == self.after or (self.permanent and n > self.after)):
            if self.failed_at is None:
                self.failed_at = time.monotonic()
            raise TransportError(f"{what} failed at call {n}")

    def poll_state(self, now: float) -> StateSample:
        self._maybe_raise("poll")
        self.stats.states += 1
        return sample(now)

    def send(self, command: MotorCommand) -> None:
        self._maybe_raise("send")
        self.stats.commands += 1
        self.sent.append((time.monotonic(), command))


def lenient(c: Controller) -> Controller:
    """Timing guards off: on a busy shared machine late ticks must not be the fault under test."""
    c.guards.config.max_consecutive_overruns = 10**9
    c.guards.config.policy_timeout_periods = 1e6
    c.guards.config.stale_state_s = 10.0
    return c


def _damp_after_failure(backend: FailingBackend) -> list[tuple[float, MotorCommand]]:
    assert backend.failed_at is not None
    return [(t, cmd) for t, cmd in backend.sent if t >= backend.failed_at]


@pytest.mark.parametrize(
    "fail,permanent",
    [("send", False), ("send", True), ("poll", True)],
    ids=["send_raises_once", "send_raises_for_good", "poll_raises_for_good"],
)
def test_backend_exception_damps_for_exit_damp_s_then_ends_with_the_error(fail: str, permanent: bool) -> None:
    c = lenient(
        controller(
            autostart=True, autopolicy_s=0.05, duration_s=5.0, exit_damp_s=EXIT_DAMP_S, status_every_s=0
        )
    )
    backend = FailingBackend(fail, after=150, permanent=permanent)  # ~0.3 s in: in POLICY
    start = time.monotonic()
    summary = Runtime(c, backend, c.options).run()
    elapsed = time.monotonic() - start
    assert elapsed < 2.0  # ended after exit_damp_s, not at duration_s (nor hanging)
    assert summary["outcome"] == "fault" and summary["exit_code"] == EXIT_CODES["fault"] == 3
    assert summary["error"] == f"TransportError: {fail} failed at call 150"
    assert summary["first_fault"]["reason"].startswith("runtime_error: TransportError")
    assert summary["transitions"][-1]["to"] == "DAMP" and "POLICY" in [
        t["to"] for t in summary["transitions"]
    ]
    after = _damp_after_failure(backend)
    if fail == "send" and permanent:
        assert after == []  # nothing could be sent, and the runtime still ended on time
        return
    # DAMP, and only DAMP, went out for exit_damp_s after the failure, at about the command rate.
    assert all(cmd.kind == CommandKind.DAMP for _, cmd in after)
    assert after[-1][0] - backend.failed_at >= EXIT_DAMP_S - 0.01
    assert len(after) >= 0.5 * EXIT_DAMP_S / c.options.command_dt
    assert np.all(after[-1][1].kp == 0) and np.all(after[-1][1].kd > 0)


def signal_when_running(backend: FailingBackend, seconds: float, signum: int) -> threading.Thread:
    """Send signum to this process `seconds` after the backend's first command (the loops are running)."""

    def send() -> None:
        end = time.monotonic() + 10.0
        while not backend.sent and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(seconds)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_sigint_in_the_command_loop_stops_cleanly_through_damp_every_time() -> None:
    # The old runtime printed a traceback about once in eight Ctrl-Cs: try it more often than that.
    # The handler in place before (default_int_handler, or SIG_IGN in a process started in the
    # background) must be the one in place after every run.
    before = signal.getsignal(signal.SIGINT)
    for attempt in range(10):
        c = lenient(
            controller(
                autostart=True, autopolicy_s=0.05, duration_s=5.0, exit_damp_s=EXIT_DAMP_S, status_every_s=0
            )
        )
        backend = FailingBackend("none", after=0, permanent=False)
        timer = signal_when_running(backend, 0.2 + 0.013 * attempt, signal.SIGINT)  # at different phases
        summary = Runtime(c, backend, c.options).run()
        timer.join()
        assert summary["outcome"] == "operator_stop" and summary["exit_code"] == 4, summary
        assert summary["stop_reason"] == "Ctrl-C (SIGINT)" and summary["faults"] == []
        stop = next(t for t in summary["transitions"] if t["to"] == "DAMP")["t"] + c.start_time
        damp = [(t, cmd) for t, cmd in backend.sent if t >= stop]
        assert all(cmd.kind == CommandKind.DAMP for _, cmd in damp)
        assert damp[-1][0] - stop >= EXIT_DAMP_S - 0.01
        assert signal.getsignal(signal.SIGINT) is before  # restored after each run


class FailingMujocoBackend(MujocoBackend):
    """The in-process simulation, whose send raises once at call `after`."""

    def __init__(self, after: int, **kwargs: object) -> None:
        super().__init__(SPEC, **kwargs)  # type: ignore[arg-type]
        self.after = after
        self.calls = 0
        self.kinds: list[CommandKind] = []

    def send(self, command: MotorCommand) -> None:
        self.calls += 1
        if self.calls == self.after:
            raise TransportError("send failed")
        self.kinds.append(command.kind)
        super().send(command)


def test_lockstep_backend_exception_damps_the_simulation_then_ends() -> None:
    cfg = compose_config(
        "deploy",
        [
            f"policy={REFERENCE}",
            "backend=mujoco",
            "settings.ramp_s=0.5",
            "autopolicy_s=0.2",
            "keyboard=false",
        ],
    )
    runtime, _, _ = build_session(cfg)
    backend = FailingMujocoBackend(after=500, initial_pose="default")  # 1 s in: in POLICY
    summary = Runtime(runtime.controller, backend, runtime.options).run()
    assert summary["outcome"] == "fault" and summary["error"] == "TransportError: send failed"
    damp = backend.kinds[499:]
    assert all(k == CommandKind.DAMP for k in damp) and len(damp) == round(1.0 / runtime.options.command_dt)
    assert summary["transitions"][-1]["to"] == "DAMP" and summary["policy_steps"] > 0
