"""The deploy runtime: a command loop that owns safety, a policy loop that only proposes targets.

Command loop (command_hz, default 500 Hz, deadline-scheduled): take the newest state, apply operator
events, evaluate the guards, step the safety state machine, build the command for the current state,
pass it through the CommandLimiter and send it. It is the only place a command is made, so a guard
trip turns into DAMP in the very tick that detects it, and DAMP is re-sent every tick after that.

Policy loop (policy_hz, default 1 / the contract's control_dt = 50 Hz, in its own thread or inline):
in POLICY only, build the observation from the newest state with the contract's terms (the robots
package's functions), run the network, check the action, and publish the joint targets, which the
command loop re-sends at its own rate until the next ones. A policy exception, a NaN or a huge
action becomes a fault that the next command tick (at most one command period later) acts on.
A policy that commands a subset of the joints (policy_joints) has its output scattered into robot
order first, 0 (the default pose) for the rest, so every guard and limit sees all the joints. Each
entry into POLICY starts a fresh segment: observation history, gait clock and a recurrent
network's state all restart.

With the in-process MuJoCo backend the same controller runs in lockstep with the simulation (sim time
is the clock and the policy runs inline), which makes sim2sim fast and deterministic.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from robolearn.deploy.artifact import PolicyContract
from robolearn.deploy.backends.base import Backend, StateSample
from robolearn.deploy.backends.mujoco_backend import MujocoBackend
from robolearn.deploy.commands import CommandKind, CommandLimiter, MotorCommand
from robolearn.deploy.motion import MotionPlayer
from robolearn.deploy.operator import QUIT, OperatorInput
from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.deploy.recorder import Recorder
from robolearn.deploy.safety import Event, Guards, SafetyMachine, SafetyState
from robolearn.deploy.timing import (
    DurationHistogram,
    LoopStats,
    make_scheduler,
    set_process_realtime_priority,
    set_realtime_priority,
)
from robolearn.robots.observations import action_to_joint_targets
from robolearn.robots.spec import RobotSpec, supported_mode_machines
from robolearn.robots.state import RobotState

# How a session ended, and the deploy verb's exit code for it (docs/deploy.md, "Exit codes").
# 2 is every refusal before the session starts (a UserError: config, contract, graph, spec).
EXIT_CODES = {
    "clean": 0,  # ran to duration_s, or ended by quit or SIGTERM, with no fault
    "fault": 3,  # a guard tripped, the hardware revision was refused, or the loop itself failed
    "operator_stop": 4,  # Ctrl-C (SIGINT) or ESTOP, with no fault
}
EXIT_COULD_NOT_START = 2


@dataclass
class RuntimeOptions:
    """Resolved rates, timings and session behaviour."""

    command_dt: float = 0.002
    policy_dt: float = 0.02
    ramp_s: float = 2.0
    scheduler: str = "deadline"
    spin_s: float = 0.0002
    rt_priority: int = 0
    policy_thread: bool = True
    switch_interval_s: float = 0.0005
    autostart: bool = False
    autopolicy_s: float | None = None
    duration_s: float | None = None
    exit_damp_s: float = 1.0
    status_every_s: float = 5.0
    realtime_lockstep: bool = False  # lockstep backends: pace to the wall clock
    accept_unreported_mode_machine: bool = False  # G1 sims that leave LowState.mode_machine at 0


@dataclass(frozen=True)
class PolicyOutput:
    """The newest action of one POLICY segment (epoch), as the command loop reads it."""

    epoch: int
    step: int
    time: float
    action: np.ndarray  # after the contract's clip
    target: np.ndarray  # joint position targets, motor order


class Controller:
    """Safety state, guards, operator events and command building; the policy step as a separate call."""

    def __init__(
        self,
        spec: RobotSpec,
        options: RuntimeOptions,
        guards: Guards,
        limiter: CommandLimiter,
        operator: OperatorInput,
        contract: PolicyContract | None = None,
        policy: Callable[[np.ndarray], np.ndarray] | None = None,
        recorder: Recorder | None = None,
        log: Callable[[str], None] | None = None,
        motion: MotionPlayer | None = None,
    ) -> None:
        self.spec = spec
        self.options = options
        self.guards = guards
        self.limiter = limiter
        self.operator = operator
        self.contract = contract
        self.policy = policy
        self.pipeline = ObservationPipeline(contract) if contract is not None else None
        # A tracking policy's reference (the artifact's clip), restarted with each POLICY segment.
        self.motion = motion
        # A recurrent network's state is zeroed where the observation history is (policy.OnnxPolicy.reset).
        self._reset_policy: Callable[[], None] | None = getattr(policy, "reset", None)
        self.recorder = recorder
        self.messages: deque[str] = deque()
        self._log = log or self.messages.append
        n = spec.num_joints
        self._nan = np.full(n, np.nan)
        self.machine = SafetyMachine()
        self.start_time = 0.0
        self.sample: StateSample | None = None
        self.last_state_time: float | None = None
        self._ramp_from = spec.default_pos_array.copy()
        self._epoch = 0
        self._output: PolicyOutput | None = None
        self._policy_faults: deque[tuple[str, float]] = deque()
        self._policy_seen_epoch = -1
        self._last_action = np.zeros(n)
        self._step = 0
        self._segment_steps = 0  # policy ticks since POLICY began: the gait clock's count
        self.policy_stats = LoopStats("policy", options.policy_dt, options.policy_dt)
        self.inference = DurationHistogram()
        self.faults: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self._stop_reason: str | None = None
        self._stop_time: float | None = None
        self.operator_stopped = False  # the stop came from the operator interrupting (Ctrl-C)
        self.error: str | None = None  # the loop itself failed (a backend exception): the session faulted
        self.hardware_problem: str | None = None  # the robot is another hardware revision: never leave DAMP
        self._supported_modes = supported_mode_machines(spec)
        self._mode_checked = False
        self.done = False

    # -- inputs -----------------------------------------------------------------------------------------
    def on_state(self, sample: StateSample) -> None:
        """A new state arrived (command loop)."""
        self.sample = sample
        self.last_state_time = sample.received
        if not self._mode_checked:
            self._mode_checked = True
            self._check_mode_machine(sample.mode_machine, sample.received)
        if sample.remote:
            self.operator.update_remote(sample.remote)

    def _check_mode_machine(self, mode: int, now: float) -> None:
        """The first LowState's mode_machine against the spec's: on a mismatch, DAMP for good."""
        supported = self._supported_modes
        if supported is None or mode in supported:
            return
        if mode == 0 and self.options.accept_unreported_mode_machine:
            self._say(now, "note: LowState.mode_machine is 0 (not reported): accepted for a simulator")
            return
        name = self.spec.name
        allowed = ", ".join(str(m) for m in supported) or "none"
        if mode == 0:
            self.hardware_problem = (
                f"mode_machine: the LowState reports mode_machine 0 (not set), robolearn's {name} spec is for"
                f" {allowed}; a real G1 always reports its revision, so the runtime stays in DAMP. A simulator"
                " that leaves it 0 (unitree_mujoco) needs settings.dds.accept_unreported_mode_machine=true"
            )
        else:
            self.hardware_problem = (
                f"mode_machine: the robot's LowState says mode_machine {mode}, robolearn's {name} spec is for"
                f" {allowed} (robots/spec.py SUPPORTED_MODE_MACHINES); another hardware revision maps its"
                f" motors to other slots, so the runtime stays in DAMP: deploy with the robot= whose spec"
                f" matches this robot (python -m robolearn.doctor robot={name} reports the value)"
            )
        self._say(now, "error: " + self.hardware_problem)
        self._fault(self.hardware_problem, now)
        if self.machine.state is not SafetyState.ESTOP:
            self._transition(Event.DAMP, now, "mode_machine mismatch")

    def request_stop(self, reason: str, operator: bool = False) -> None:
        """End the session: DAMP now, keep sending it for exit_damp_s, then finish (any thread).

        operator=True marks an interruption (Ctrl-C): the session then ends as an operator stop.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
            self.operator_stopped = operator
        elif operator:
            self.messages.append(f"{reason}: already stopping ({self._stop_reason}), damping for exit_damp_s")

    def fail(self, exc: BaseException, now: float) -> None:
        """The loop itself failed (a backend raised): record it as a fault and stop through DAMP."""
        if self.error is None:
            self.error = f"{type(exc).__name__}: {exc}"
            self._fault(f"runtime_error: {self.error}", now)
        self.request_stop(f"runtime error ({self.error})")

    @property
    def stop_reason(self) -> str | None:
        """Why the session is ending (None while it runs)."""
        return self._stop_reason

    def outcome(self) -> str:
        """clean, fault or operator_stop (see EXIT_CODES); a fault outranks an operator stop."""
        if self.faults or self.error is not None:
            return "fault"
        estop = any(tr.target is SafetyState.ESTOP for tr in self.machine.history)
        return "operator_stop" if self.operator_stopped or estop else "clean"

    # -- events -----------------------------------------------------------------------------------------
    def _say(self, now: float, text: str) -> None:
        self._log(f"[{now - self.start_time:8.3f} s] {text}")

    def _transition(self, event: Event, now: float, reason: str) -> bool:
        source = self.machine.state
        if not self.machine.handle(event, now, reason):
            self.refused.append({"t": now, "event": event.value, "state": source.name, "reason": reason})
            self._say(now, f"{event.value} refused in {source.name} ({reason})")
            if self.recorder is not None:
                self.recorder.event(
                    type="refused", t=now, event=event.value, state=source.name, reason=reason
                )
            return False
        target = self.machine.state
        if target is source:
            return True
        if target is SafetyState.RAMP:
            q = self.sample.joint_pos if self.sample is not None else self.spec.default_pos_array
            self._ramp_from = np.clip(
                np.where(np.isfinite(q), q, self.spec.default_pos_array),
                self.limiter.lower,
                self.limiter.upper,
            )
        if target is SafetyState.POLICY:
            self._epoch += 1
        self._say(now, f"{source.name} -> {target.name} ({event.value}: {reason})")
        if self.recorder is not None:
            self.recorder.event(
                type="transition",
                t=now,
                event=event.value,
                source=source.name,
                target=target.name,
                reason=reason,
            )
        return True

    def _fault(self, reason: str, now: float) -> None:
        armed = self.machine.armed
        utc = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.faults.append({"t": now, "utc": utc, "reason": reason, "state": self.machine.state.name})
        if self.recorder is not None:
            self.recorder.event(type="fault", t=now, utc=utc, reason=reason, state=self.machine.state.name)
        if armed:
            self._say(now, f"FAULT {reason}")
        self._transition(Event.FAULT, now, reason)

    def state_problem(self, now: float) -> str | None:
        """Why the current state is not safe to drive the motors from, or None."""
        if self.hardware_problem is not None:
            return self.hardware_problem
        problem = self.guards.stale(now, self.last_state_time)
        if problem is None and self.sample is not None:
            s = self.sample
            problem = self.guards.state(s.joint_pos, s.joint_vel, s.quat, s.gyro)
        return problem

    def _operator_events(self, now: float) -> None:
        events = self.operator.events
        while events:
            event, source = events.popleft()
            if event == QUIT:
                self.request_stop(f"quit from {source}")
                continue
            assert isinstance(event, Event)
            if self._stop_reason is not None and event is not Event.ESTOP:
                self._say(now, f"{event.value} refused: stopping ({self._stop_reason})")
                continue
            if event is Event.START and self.machine.state in (SafetyState.PASSIVE, SafetyState.DAMP):
                problem = self.state_problem(now)
                if problem is not None:
                    self._say(now, f"start refused: {problem}")
                    self.refused.append(
                        {"t": now, "event": event.value, "state": self.machine.state.name, "reason": problem}
                    )
                    continue
            if event is Event.POLICY and self.policy is None:
                self._say(now, "policy refused: no policy loaded (pass policy=<artifact>)")
                continue
            self._transition(event, now, source)

    # -- the command tick -------------------------------------------------------------------------------
    def command_tick(self, now: float, consecutive_overruns: int = 0) -> MotorCommand:
        """Decide this tick's command: events, guards, transitions, then a limit-checked command."""
        opts, machine = self.options, self.machine
        self._operator_events(now)
        if (
            self._stop_reason is None
            and opts.duration_s is not None
            and now - self.start_time >= opts.duration_s
        ):
            self.request_stop(f"duration_s={opts.duration_s} reached")
        if (
            opts.autostart
            and machine.state is SafetyState.PASSIVE
            and self._stop_reason is None
            and self.sample is not None
            and self.state_problem(now) is None
        ):
            self._transition(Event.START, now, "autostart")

        # Guards: policy-side faults first (they carry their own detection time), then the state.
        while self._policy_faults:
            reason, t_detect = self._policy_faults.popleft()
            self._fault(reason, min(t_detect, now))
        if machine.armed:
            problem = self.state_problem(now)
            if problem is None and consecutive_overruns >= self.guards.config.max_consecutive_overruns:
                problem = f"deadline_overruns: {consecutive_overruns} command ticks in a row started late"
            if problem is None and machine.state is SafetyState.POLICY:
                last = (
                    self._output.time
                    if self._output is not None and self._output.epoch == self._epoch
                    else machine.entered_at
                )
                timeout = self.guards.config.policy_timeout_periods * opts.policy_dt
                if now - last > timeout:
                    problem = f"policy_timeout: no action for {(now - last) * 1e3:.0f} ms (limit {timeout * 1e3:.0f} ms)"
            if problem is not None:
                self._fault(problem, now)

        if machine.state is SafetyState.RAMP and now - machine.entered_at >= opts.ramp_s:
            self._transition(Event.RAMP_DONE, now, f"{opts.ramp_s:g} s ramp")
        if (
            opts.autopolicy_s is not None
            and machine.state is SafetyState.HOLD
            and self.policy is not None
            and self._stop_reason is None
            and now - machine.entered_at >= opts.autopolicy_s
        ):
            self._transition(Event.POLICY, now, "autopolicy")
        if self._stop_reason is not None:
            if self._stop_time is None:
                self._stop_time = now
                self._say(now, f"stopping: {self._stop_reason}")
                if self.recorder is not None:
                    self.recorder.event(type="stop", t=now, reason=self._stop_reason)
            if machine.state not in (SafetyState.DAMP, SafetyState.ESTOP):
                self._transition(Event.DAMP, now, "stop: " + self._stop_reason)
            if now - self._stop_time >= opts.exit_damp_s:
                self.done = True
        return self._command(now)

    def damp_command(self) -> MotorCommand:
        """DAMP for the newest state (the failure path's command: no state machine involved)."""
        s = self.sample
        return self.limiter.damp(
            s.joint_pos if s is not None else self._nan, s.joint_vel if s is not None else self._nan
        )

    def _command(self, now: float) -> MotorCommand:
        sample = self.sample
        q = sample.joint_pos if sample is not None else self._nan
        dq = sample.joint_vel if sample is not None else self._nan
        state = self.machine.state
        limiter = self.limiter
        if state is SafetyState.PASSIVE:
            return limiter.passive(q)
        if state in (SafetyState.DAMP, SafetyState.ESTOP):
            return limiter.damp(q, dq)
        if state is SafetyState.RAMP:
            alpha = min(1.0, (now - self.machine.entered_at) / self.options.ramp_s)
            target = self._ramp_from + alpha * (self.spec.default_pos_array - self._ramp_from)
            return limiter.pd(target, q, dq)
        if state is SafetyState.HOLD:
            return limiter.pd(self.spec.default_pos_array, q, dq)
        output = self._output
        target = (
            output.target
            if output is not None and output.epoch == self._epoch
            else self.spec.default_pos_array
        )
        return limiter.pd(target, q, dq)

    def record_tick(self, t_sent: float, lateness: float, period_error: float, command: MotorCommand) -> None:
        """Log one command tick."""
        if self.recorder is None:
            return
        rec = self.recorder.control.next()
        if rec is None:
            return
        s = self.sample
        rec["t"] = t_sent
        rec["safety"] = self.machine.state.value
        rec["kind"] = int(command.kind)
        rec["limited"] = command.limited
        rec["lateness"] = lateness
        rec["period_error"] = period_error
        if s is not None:
            rec["t_state"] = s.received
            rec["tick"] = s.tick & 0xFFFFFFFF
            rec["joint_pos"] = s.joint_pos
            rec["joint_vel"] = s.joint_vel
            rec["base_quat"] = s.quat
            rec["gyro"] = s.gyro
        else:
            rec["t_state"] = np.nan
        rec["command"] = self.operator.command
        rec["cmd_q"] = command.q
        rec["cmd_kp"] = command.kp
        rec["cmd_kd"] = command.kd
        output = self._output
        rec["policy_step"] = (
            output.step
            if output is not None
            and command.kind == CommandKind.PD
            and self.machine.state is SafetyState.POLICY
            else -1
        )

    @property
    def segment_steps(self) -> int:
        """Policy steps taken in the current POLICY segment (the gait clock's and the reference's count)."""
        return self._segment_steps

    # -- the policy step --------------------------------------------------------------------------------
    def policy_tick(
        self, now: float, lateness: float = 0.0, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        """In POLICY: observation -> network -> checked action -> joint targets for the command loop."""
        if self.machine.state is not SafetyState.POLICY or self.policy is None or self.pipeline is None:
            return
        epoch = self._epoch
        if epoch != self._policy_seen_epoch:
            self.pipeline.reset()
            if self._reset_policy is not None:
                self._reset_policy()
            self._last_action = np.zeros(self.spec.num_joints)
            self._policy_seen_epoch = epoch
            self._segment_steps = 0
        sample = self.sample
        if sample is None:
            return
        assert self.contract is not None
        if self.motion is not None and self._segment_steps == 0:
            self.motion.start(sample.quat)  # the reference turned to face where the robot faces
        state = RobotState(
            joint_pos=sample.joint_pos,
            joint_vel=sample.joint_vel,
            base_quat=sample.quat,
            gyro=sample.gyro,
            command=self.operator.command.copy(),
            last_action=self._last_action,
            # The training env's clock: phase 0 on the first step of a segment, one control_dt per tick.
            gait_phase=self.contract.gait_phase(self._segment_steps),
            base_lin_vel=sample.base_lin_vel,
            motion=None if self.motion is None else self.motion.frame(self._segment_steps),
        )
        self._segment_steps += 1
        t0 = clock()
        t1 = t0
        try:
            frame, x = self.pipeline(state)
            problem = self.guards.observation(x)
            t1 = clock()
            # The network's output covers its policy joints in its order; in robot order, with 0 for
            # the joints it does not command, it passes the same guard, clip and limits as any other.
            raw = self.contract.full_action(self.policy(x)) if problem is None else None
        except Exception as exc:  # the network or its input failed: damp, never crash the loop
            problem, raw = f"policy_exception: {type(exc).__name__}: {exc}", None
        t2 = clock()
        inference = t2 - t1
        self.inference.add(inference)
        period_error = self.policy_stats.mark(now, lateness, t2 - t0)
        if problem is None and raw is not None:
            problem = self.guards.action(raw)
        if (
            problem is None
            and self.policy_stats.consecutive_overruns >= self.guards.config.max_consecutive_overruns
        ):
            problem = f"deadline_overruns: {self.policy_stats.consecutive_overruns} policy steps in a row started late"
        if problem is not None or raw is None:
            # Stamped at detection (wake time plus the work so far), on the clock `now` runs on.
            self._policy_faults.append((problem or "policy_exception: no output", now + (clock() - t0)))
            return
        clip = self.contract.action_clip
        action = np.clip(raw, -clip, clip) if clip is not None else raw
        target = action_to_joint_targets(action, self.spec)
        self._step += 1
        if epoch == self._epoch:
            self._output = PolicyOutput(epoch, self._step, now, action, target)
        self._last_action = action
        if self.recorder is not None:
            rec = self.recorder.policy.next()
            if rec is not None:
                rec["t"] = now
                rec["step"] = self._step
                rec["tick"] = sample.tick & 0xFFFFFFFF
                rec["safety"] = self.machine.state.value
                rec["period_error"] = period_error
                rec["inference_s"] = inference
                rec["joint_pos"] = state.joint_pos
                rec["joint_vel"] = state.joint_vel
                rec["base_quat"] = state.base_quat
                rec["gyro"] = state.gyro
                rec["command"] = state.command
                rec["last_action"] = state.last_action
                rec["obs"] = frame
                rec["policy_input"] = x.reshape(-1)
                rec["action_raw"] = raw
                rec["action"] = action

    def summary(self) -> dict[str, Any]:
        """What happened: outcome and exit code, final state, transitions, faults, refusals, policy timing."""
        outcome = self.outcome()
        return {
            "outcome": outcome,
            "exit_code": EXIT_CODES[outcome],
            "stop_reason": self._stop_reason,
            "error": self.error,
            "first_fault": {**self.faults[0], "t": self.faults[0]["t"] - self.start_time}
            if self.faults
            else None,
            "final_state": self.machine.state.name,
            "transitions": [
                {
                    "t": tr.time - self.start_time,
                    "event": tr.event.value,
                    "from": tr.source.name,
                    "to": tr.target.name,
                    "reason": tr.reason,
                }
                for tr in self.machine.history
            ],
            "faults": [{**f, "t": f["t"] - self.start_time} for f in self.faults],
            "refused": [{**r, "t": r["t"] - self.start_time} for r in self.refused],
            "policy_steps": self._step,
            "policy_loop": self.policy_stats.summary(),
            "inference": self.inference.summary(),
        }


class Runtime:
    """Drives a Controller against a Backend: real-time threads, or lockstep for in-process sims.

    Ending: SIGINT (Ctrl-C) and SIGTERM only request a stop (they never raise into the loops), so
    every session ends through DAMP for exit_damp_s. An exception from the backend (poll or send)
    becomes a runtime_error fault: DAMP is sent for exit_damp_s (retrying a send that fails), and
    the session ends with the error in its summary instead of a traceback.
    """

    NO_STATE_WARNING_S = 1.0  # warn when no state has arrived for this long

    def __init__(
        self,
        controller: Controller,
        backend: Backend,
        options: RuntimeOptions,
        clock: Callable[[], float] = time.monotonic,
        no_state_hint: str = "",
    ) -> None:
        self.controller = controller
        self.backend = backend
        self.options = options
        self.clock = clock
        self.no_state_hint = no_state_hint  # where states should come from, for the no-state warning
        overrun = controller.guards.config.overrun_s or options.command_dt
        self.command_stats = LoopStats("command", options.command_dt, overrun)
        self.warnings: list[str] = []
        self._stop_threads = threading.Event()
        self._policy_go = threading.Event()  # set by the command loop when a policy step is due
        self._policy_due = 0.0
        self._no_state_warned = False

    def run(self) -> dict[str, Any]:
        """Run the session to its end; returns the summary."""
        lockstep = isinstance(self.backend, MujocoBackend)
        restore = self._install_signal_handlers()  # first: from here on a signal only requests a stop
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.options.switch_interval_s)
        # Objects made during setup never need collecting: keep them out of the collector's way.
        gc.collect()
        gc.freeze()
        try:
            if lockstep:
                self._run_lockstep()
            else:
                self._run_realtime()
        finally:
            restore()
            sys.setswitchinterval(old_interval)
            gc.unfreeze()
            self._flush_messages()
        return self.summary()

    def _install_signal_handlers(self) -> Callable[[], None]:
        """SIGINT and SIGTERM request a stop instead of raising; returns the function that restores them."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # only the main thread may set handlers (and only it receives signals)
        c = self.controller
        previous = {
            signal.SIGINT: signal.signal(
                signal.SIGINT, lambda *_: c.request_stop("Ctrl-C (SIGINT)", operator=True)
            ),
            signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: c.request_stop("SIGTERM")),
        }

        def restore() -> None:
            for signum, handler in previous.items():
                # None: the old handler was not set from Python; the default is the closest we can do.
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

        return restore

    def _flush_messages(self) -> None:
        messages = self.controller.messages
        while messages:
            print(messages.popleft(), flush=True)

    def _status(self, now: float) -> None:
        c = self.controller
        s = self.command_stats.period_error
        line = f"[{now - c.start_time:8.3f} s] {c.machine.state.name:7s} period error p99 {s.percentile(99) * 1e3:.3f} ms"
        if c.inference.count:
            line += f", inference p99 {c.inference.percentile(99) * 1e3:.3f} ms"
        line += f", states {self.backend.stats.states}, commands {self.backend.stats.commands}"
        if self.backend.stats.crc_errors:
            line += f", CRC errors {self.backend.stats.crc_errors}"
        print(line, flush=True)

    def _check_states_arrive(self, now: float) -> None:
        """Warn once per silence when no state has arrived for NO_STATE_WARNING_S."""
        c = self.controller
        last = c.last_state_time if c.last_state_time is not None else c.start_time
        if now - last < self.NO_STATE_WARNING_S:
            self._no_state_warned = False
            return
        if self._no_state_warned or c.done:
            return
        self._no_state_warned = True
        what = "no state received yet" if c.last_state_time is None else "no new state"
        text = f"{what} for {now - last:.1f} s" + (f" {self.no_state_hint}" if self.no_state_hint else "")
        crc_errors = self.backend.stats.crc_errors
        if crc_errors:
            text += (
                f"; {crc_errors} state(s) dropped for a bad CRC: a simulator that leaves LowState.crc at 0"
                " (unitree_mujoco's Python one) needs settings.dds.check_state_crc=false"
            )
        self.warnings.append(text)
        print(f"[{now - c.start_time:8.3f} s] warning: {text}", flush=True)

    # -- real time --------------------------------------------------------------------------------------
    def _run_realtime(self) -> None:
        c, opts = self.controller, self.options
        c.start_time = self.clock()
        threads = [threading.Thread(target=self._command_loop, name="command", daemon=True)]
        if c.policy is not None and opts.policy_thread:
            threads.append(threading.Thread(target=self._policy_loop, name="policy", daemon=True))
        # Every thread one level under the command loop (see set_process_realtime_priority).
        problem = set_process_realtime_priority(opts.rt_priority - 1)
        if problem:
            self.warnings.append(problem)
            c.messages.append("warning: " + problem)
        for t in threads:
            t.start()
        next_status = c.start_time + opts.status_every_s if opts.status_every_s > 0 else np.inf
        try:
            while threads[0].is_alive():
                try:
                    threads[0].join(0.05)
                    self._flush_messages()
                    now = self.clock()
                    self._check_states_arrive(now)
                    if now >= next_status:
                        self._status(now)
                        next_status += opts.status_every_s
                except KeyboardInterrupt:  # no handler installed (not the main thread's run)
                    c.request_stop("Ctrl-C (SIGINT)", operator=True)
        finally:
            if threads[0].is_alive():  # this thread failed (stdout gone, ...): still end through DAMP
                c.request_stop("error in the main thread")
                threads[0].join(opts.exit_damp_s + 1.0)
            self._stop_threads.set()
            for t in threads[1:]:
                t.join(1.0)

    def _command_loop(self) -> None:
        c, opts, backend, clock = self.controller, self.options, self.backend, self.clock
        problem = set_realtime_priority(opts.rt_priority)
        if problem:
            self.warnings.append(problem)
            c.messages.append("warning: " + problem)
        sched = make_scheduler(opts.scheduler, opts.command_dt, opts.spin_s)
        threaded = c.policy is not None and opts.policy_thread
        stats = self.command_stats
        sched.start(clock())
        # Policy steps fall due on their own grid but start right after a command has gone out, so the
        # policy's Python work (observation, post-processing) runs in the command loop's idle time
        # instead of holding the GIL across a command deadline.
        next_policy = sched.deadline  # on the command grid: due exactly every policy_dt / command_dt ticks
        half_tick = 0.5 * opts.command_dt
        try:
            while not c.done:
                lateness = sched.wait()
                t_wake = clock()
                sample = backend.poll_state(t_wake)
                if sample is not None:
                    c.on_state(sample)
                due = t_wake >= next_policy - half_tick
                if due and not threaded:
                    c.policy_tick(t_wake, max(0.0, t_wake - next_policy), clock)
                command = c.command_tick(t_wake, stats.consecutive_overruns)
                backend.send(command)
                t_sent = clock()
                if due:
                    if threaded:
                        self._policy_due = t_sent
                        self._policy_go.set()
                    next_policy += opts.policy_dt
                    while next_policy <= t_wake:  # far behind: skip steps, do not burst
                        next_policy += opts.policy_dt
                error = stats.mark(t_sent, lateness, t_sent - t_wake)
                c.record_tick(t_sent, lateness, error, command)
        except Exception as exc:
            # Never leave the motors on the last PD command: damp for exit_damp_s, then end with the error.
            c.fail(exc, clock())
            c.messages.append(
                f"error in the command loop ({c.error}); damping for {opts.exit_damp_s:g} s before exit"
            )
            self._stop_threads.set()
            self._emergency_damp()
            c.done = True

    def _emergency_damp(self) -> None:
        """DAMP for exit_damp_s after the loop failed: keep trying, since one failed send may be transient."""
        c, backend, opts = self.controller, self.backend, self.options
        end = self.clock() + opts.exit_damp_s
        failures = 0
        while True:
            now = self.clock()
            try:
                sample = backend.poll_state(now)
                if sample is not None:
                    c.on_state(sample)
            except Exception:  # the state source failed: damp with the last state known
                pass
            command = c.damp_command()
            try:
                backend.send(command)
                c.record_tick(self.clock(), 0.0, 0.0, command)
            except Exception:
                failures += 1
            if now >= end:
                break
            time.sleep(opts.command_dt)
        if failures:
            c.messages.append(f"{failures} damping command(s) could not be sent")

    def _policy_loop(self) -> None:
        c, clock = self.controller, self.clock
        while not self._stop_threads.is_set() and not c.done:
            if not self._policy_go.wait(0.1):
                continue
            self._policy_go.clear()
            now = clock()
            c.policy_tick(now, now - self._policy_due, clock)

    # -- lockstep ---------------------------------------------------------------------------------------
    def _run_lockstep(self) -> None:
        c, opts, backend = self.controller, self.options, self.backend
        assert isinstance(backend, MujocoBackend)
        decimation = max(1, round(opts.policy_dt / opts.command_dt))
        c.start_time = 0.0
        wall0 = time.monotonic()
        next_status = opts.status_every_s if opts.status_every_s > 0 else np.inf
        k = 0
        try:
            while not c.done:
                now = k * opts.command_dt
                c.on_state(backend.poll_state(now))
                if k % decimation == 0:
                    c.policy_tick(now)
                command = c.command_tick(now)
                backend.send(command)
                c.record_tick(now, 0.0, 0.0, command)
                backend.advance(opts.command_dt)
                k += 1
                if opts.realtime_lockstep:
                    ahead = wall0 + k * opts.command_dt - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                if c.messages:
                    self._flush_messages()
                if now >= next_status:
                    print(
                        f"[{now:8.3f} s] {c.machine.state.name:7s} base height {backend.base_height():.3f} m",
                        flush=True,
                    )
                    next_status += opts.status_every_s
        except Exception as exc:
            # As in real time: damp for exit_damp_s (of simulated time), then end with the error.
            now = k * opts.command_dt
            c.fail(exc, now)
            c.messages.append(f"error in the command loop ({c.error}); damping for {opts.exit_damp_s:g} s")
            end = now + opts.exit_damp_s
            while now < end:
                command = c.damp_command()
                try:
                    backend.send(command)
                    backend.advance(opts.command_dt)
                    c.on_state(backend.poll_state(now + opts.command_dt))
                except Exception:  # the simulation itself is gone: nothing left to damp
                    break
                c.record_tick(now, 0.0, 0.0, command)
                k += 1
                now = k * opts.command_dt
            c.done = True

    def summary(self) -> dict[str, Any]:
        """Controller summary plus loop timing and backend counters."""
        out = self.controller.summary()
        stats = self.backend.stats
        out["command_loop"] = self.command_stats.summary()
        out["backend"] = {
            "name": self.backend.name,
            "states": stats.states,
            "commands": stats.commands,
            "crc_errors": stats.crc_errors,
            "decode_errors": stats.decode_errors,
            **stats.extra,
        }
        out["warnings"] = list(self.warnings)
        if isinstance(self.backend, MujocoBackend):
            out["base_height"] = self.backend.base_height()
        return out


def make_policy(contract: PolicyContract, network_path: Any) -> OnnxPolicy:
    """The ONNX policy of an artifact."""
    return OnnxPolicy(network_path, contract)
