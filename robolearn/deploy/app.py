"""Build a deploy session from a composed config: robot spec, artifact, backend, controller, recorder."""

from __future__ import annotations

import json
import platform
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import robolearn.resources
from robolearn.deploy.artifact import PolicyArtifact, PolicyContract, check_spec_matches, load_artifact
from robolearn.deploy.backends.base import Backend
from robolearn.deploy.commands import CommandLimiter
from robolearn.deploy.config import (
    MUJOCO_AUTOPOLICY_S,
    MUJOCO_DURATION_S,
    dds_target,
    validate_deploy_config,
)
from robolearn.deploy.motion import MotionPlayer
from robolearn.deploy.operator import KeyboardReader, OperatorInput
from robolearn.deploy.recorder import Recorder
from robolearn.deploy.runtime import EXIT_CODES, Controller, Runtime, RuntimeOptions, make_policy
from robolearn.deploy.safety import GuardConfig, Guards
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec

# Without a policy, the stick command still has ranges (the velocity task's).
DEFAULT_RANGES = ((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0))


def resolve_policy(path: str) -> Path:
    """An artifact path as given, or under the shipped policies/ folder (policy=reference/go2_stand)."""
    given = Path(path).expanduser()
    if given.exists():
        return given
    shipped = robolearn.resources.policies_dir() / path
    return shipped if shipped.exists() else given


def backend_class(cfg: DictConfig) -> type[Backend]:
    """The class make_backend builds for this config (nothing is opened)."""
    if cfg.backend == "mujoco":
        from robolearn.deploy.backends.mujoco_backend import MujocoBackend

        return MujocoBackend
    from robolearn.deploy.backends.dds_backend import DdsBackend

    return DdsBackend


def check_backend_supplies(contract: PolicyContract, cfg: DictConfig) -> None:
    """UserError (one line) when the policy observes what this backend cannot measure (base_lin_vel)."""
    if any(t.name == "base_lin_vel" for t in contract.terms) and not backend_class(cfg).supplies_base_lin_vel:
        raise UserError(
            f"the policy observes base_lin_vel, which backend={cfg.backend} cannot supply (a Unitree LowState"
            " carries no base velocity): run it in simulation with backend=mujoco (or python -m"
            " robolearn.evaluate), or import/train a policy without that term for the robot"
        )


def overrides_line(contract: PolicyContract) -> str | None:
    """One line naming the joints an imported policy commands and the spec fields its source tuned."""
    parts = []
    spec = contract.robot
    if contract.policy_joints is not None:
        held = spec.num_joints - contract.action_size
        parts.append(
            f"commands {contract.action_size} of {spec.num_joints} joints in its own order"
            + (f", the other {held} held at the default pose with the robot's kp/kd" if held else "")
        )
    if contract.robot_overrides:
        parts.append(
            f"robot_overrides: its {', '.join(contract.robot_overrides)} differ from robolearn's {spec.name}"
            " spec and drive the motors (declared in contract.json)"
        )
    if contract.recurrent_state:
        parts.append(
            f"recurrent ({len(contract.recurrent_state)} state tensors, zeroed on each POLICY entry)"
        )
    return "policy: " + "; ".join(parts) if parts else None


def make_backend(cfg: DictConfig, spec: RobotSpec) -> Backend:
    """The backend the config names (dds opens the participant on the configured interface and domain)."""
    if cfg.backend == "mujoco":
        from robolearn.deploy.backends.mujoco_backend import MujocoBackend
        from robolearn.deploy.mismatch import target_from_config

        interval = cfg.mujoco.push_interval_s
        return MujocoBackend(
            spec,
            cfg.robot.model,
            physics_hz=cfg.mujoco.physics_hz,
            initial_pose=cfg.settings.sim_pose,
            push_interval_s=None if interval is None else (float(interval[0]), float(interval[1])),
            push_velocity=cfg.mujoco.push_velocity,
            seed=cfg.mujoco.seed,
            mismatch=target_from_config(cfg, spec),
            # Beside the deploy log, the simulator's true state (what motion capture gives a robot).
            truth_dir=None if cfg.record.dir is None else Path(str(cfg.record.dir)).expanduser() / "truth",
        )
    from robolearn.deploy.backends.dds_backend import DdsBackend
    from robolearn.deploy.dds import DdsSession

    interface, domain = dds_target(cfg)
    return DdsBackend(
        spec,
        DdsSession(domain, interface),
        dry_run=bool(cfg.dry_run),
        check_crc=cfg.settings.dds.check_state_crc,
    )


def session_defaults(cfg: DictConfig) -> tuple[bool, float | None, float | None]:
    """(autostart, autopolicy_s, duration_s) after the backend's defaults for the null ones.

    backend=mujoco: autostart on, POLICY MUJOCO_AUTOPOLICY_S after standing (with autostart), stop
    after MUJOCO_DURATION_S (unless mujoco.realtime). backend=dds: all off, the operator decides.
    """
    mujoco = cfg.backend == "mujoco"
    autostart = bool(cfg.autostart) if cfg.autostart is not None else mujoco
    autopolicy_s = cfg.autopolicy_s
    if autopolicy_s is None and mujoco and autostart:
        autopolicy_s = MUJOCO_AUTOPOLICY_S
    duration_s = cfg.duration_s
    if duration_s is None and mujoco and not cfg.mujoco.realtime:
        duration_s = MUJOCO_DURATION_S
    return autostart, autopolicy_s, duration_s


def operator_help(cfg: DictConfig, keyboard: bool, remote: bool) -> str:
    """One line: which remote button or key moves the session from PASSIVE to standing to POLICY, and out.

    remote: the backend carries a wireless remote (dds: LowState.wireless_remote); the in-process
    simulation has none.
    """
    settings = cfg.settings.remote
    buttons: dict[str, list[str]] = {}
    if remote and settings.enabled:
        for combo, event in settings.bindings.items():
            buttons.setdefault(str(event), []).append(str(combo))
    keys = {"start": "s", "policy": "p", "stand": "h", "damp": "d", "passive": "z", "estop": "e"}

    def how(event: str) -> str:
        ways = [f"remote {b}" for b in buttons.get(event, [])]
        if keyboard:
            ways.append(f"key {keys[event]}")
        return " or ".join(ways) if ways else "no binding"

    line = (
        f"operator: {how('start')} stands the robot up (PASSIVE -> RAMP -> HOLD); {how('policy')} hands it"
        f" to the policy (HOLD -> POLICY); {how('stand')} back to standing; {how('damp')} damps;"
        f" {how('estop')} ESTOP"
    )
    if keyboard:
        line += "; key z zero torque (from DAMP), q quits; i/k u/o j/l command vx, vy, yaw rate +/-, m zero"
    else:
        line += "; keys off (keyboard=true to use them); Ctrl-C or SIGTERM stops"
    return line


def session_line(options: RuntimeOptions, has_policy: bool) -> str:
    """What the session does by itself: autostart, autopolicy_s, duration_s (and how to change them)."""
    parts = [
        "autostart on" if options.autostart else "autostart off (waiting in PASSIVE for start)",
    ]
    if has_policy:
        parts.append(
            f"autopolicy_s={options.autopolicy_s:g} (POLICY that long after standing)"
            if options.autopolicy_s is not None
            else "autopolicy off (POLICY on the operator's request)"
        )
    parts.append(
        f"duration_s={options.duration_s:g}"
        if options.duration_s is not None
        else "no duration_s (runs until stopped)"
    )
    return "session: " + ", ".join(parts) + f"; exit_damp_s={options.exit_damp_s:g}"


def runtime_options(cfg: DictConfig, artifact: PolicyArtifact | None, spec: RobotSpec) -> RuntimeOptions:
    """Rates and session behaviour from the config (policy rate from the contract unless overridden)."""
    control_dt = artifact.contract.control_dt if artifact is not None else spec.control_dt
    policy_dt = 1.0 / cfg.loop.policy_hz if cfg.loop.policy_hz is not None else control_dt
    command_dt = 1.0 / cfg.loop.command_hz
    if policy_dt < command_dt:
        raise UserError(
            f"loop.policy_hz ({1 / policy_dt:g}) cannot exceed loop.command_hz ({cfg.loop.command_hz:g})"
        )
    autostart, autopolicy_s, duration_s = session_defaults(cfg)
    return RuntimeOptions(
        command_dt=command_dt,
        policy_dt=policy_dt,
        ramp_s=cfg.settings.ramp_s,
        scheduler=cfg.loop.scheduler,
        spin_s=cfg.loop.spin_s,
        rt_priority=cfg.loop.rt_priority,
        policy_thread=cfg.loop.policy_thread,
        switch_interval_s=cfg.loop.switch_interval_s,
        autostart=autostart,
        autopolicy_s=autopolicy_s,
        duration_s=duration_s,
        exit_damp_s=cfg.exit_damp_s,
        status_every_s=cfg.status_every_s,
        realtime_lockstep=cfg.mujoco.realtime,
        accept_unreported_mode_machine=bool(cfg.settings.dds.accept_unreported_mode_machine),
    )


def guard_config(cfg: DictConfig) -> GuardConfig:
    """The guards' thresholds from settings.safety."""
    values = OmegaConf.to_container(cfg.settings.safety, resolve=True)
    assert isinstance(values, dict)
    return GuardConfig(**{str(k): v for k, v in values.items()})


def build_session(
    cfg: DictConfig, backend_factory: Callable[[DictConfig, RobotSpec], Backend] | None = None
) -> tuple[Runtime, KeyboardReader | None, Recorder | None]:
    """Everything a deploy run needs, checked before any motor is touched.

    backend_factory (default make_backend) builds the backend for the spec the session drives (the
    contract's, overrides included): sim2sim passes one that also measures the simulator.
    """
    validate_deploy_config(cfg)
    spec = get_robot_spec(str(cfg.robot.name))
    artifact = load_artifact(resolve_policy(cfg.policy)) if cfg.policy is not None else None
    contract = artifact.contract if artifact is not None else None
    if contract is not None:
        check_spec_matches(contract.robot, spec, contract.robot_overrides)
        check_backend_supplies(contract, cfg)
        # Identical in every safety field but the declared overrides (the tuned gains and pose the
        # policy was trained with, which are what the motors must get); the policy knows this one.
        spec = contract.robot
    options = runtime_options(cfg, artifact, spec)
    guards = Guards(spec, guard_config(cfg))
    guards.set_action_limit(contract.action_clip if contract is not None else None)
    limiter = CommandLimiter(spec, cfg.settings.damp_kd_fraction)
    remote = cfg.settings.remote
    operator = OperatorInput(
        dict(remote.bindings),
        contract.command_ranges if contract is not None else DEFAULT_RANGES,
        remote.deadband,
        remote_enabled=remote.enabled,
    )
    policy = (
        make_policy(contract, artifact.network_path)
        if artifact is not None and contract is not None
        else None
    )
    motion = None
    if artifact is not None and artifact.motion is not None:
        motion = MotionPlayer(artifact.motion.track(cfg.get("motion_clip")), spec.control_dt)
    elif cfg.get("motion_clip") is not None:
        raise UserError(
            f"motion_clip={cfg.motion_clip} but the policy tracks no reference motion; leave motion_clip unset"
        )
    recorder = None
    if cfg.record.dir is not None:
        recorder = Recorder(
            cfg.record.dir,
            {
                "created": datetime.now(UTC).isoformat(),
                "robot": spec.to_dict(),
                "contract": contract.to_dict() if contract is not None else None,
                "artifact": str(artifact.root) if artifact is not None else None,
                "config": OmegaConf.to_container(cfg, resolve=True),
                "command": " ".join(["python -m robolearn.deploy", *sys.argv[1:]]),
                "host": platform.node(),
                "command_dt": options.command_dt,
                "policy_dt": options.policy_dt,
            },
            spec.num_joints,
            contract.frame_size if contract is not None else 0,
            contract.input_size if contract is not None else 0,
            cfg.record.chunk,
        )
    backend = (backend_factory or make_backend)(cfg, spec)
    controller = Controller(
        spec, options, guards, limiter, operator, contract, policy, recorder, motion=motion
    )
    keyboard_mode = str(cfg.keyboard).lower()
    keyboard = None
    if keyboard_mode == "true" or (keyboard_mode == "auto" and sys.stdin.isatty()):
        keyboard = KeyboardReader(operator)
    hint = ""
    if cfg.backend == "dds":
        interface, domain = dds_target(cfg)
        hint = (
            f"on interface {interface}, domain {domain}: is the robot on, cabled and in low-level mode"
            f" (deploy/low_level_mode.md), or the sim bridge running (python -m robolearn.deploy.sim_bridge"
            f" robot={spec.name} domain_id={domain})? python -m robolearn.doctor robot={spec.name}"
            f" interface={interface} domain_id={domain} diagnoses it"
        )
    return Runtime(controller, backend, options, no_state_hint=hint), keyboard, recorder


def run_deploy(cfg: DictConfig) -> dict[str, Any]:
    """Run one deploy session from a composed config; returns its summary (with outcome and exit_code)."""
    runtime, keyboard, recorder = build_session(cfg)
    c = runtime.controller
    where = runtime.backend.name
    if where == "dds":
        interface, domain = dds_target(cfg)
        where += f" on {interface}, domain {domain}" + (
            " (dry run: publishing nothing)" if cfg.dry_run else ""
        )
    print(
        f"robolearn deploy: {c.spec.name}, policy {cfg.policy or 'none'}, backend {where};"
        f" commands {1 / runtime.options.command_dt:g} Hz, policy {1 / runtime.options.policy_dt:g} Hz",
        flush=True,
    )
    print(session_line(runtime.options, c.policy is not None), flush=True)
    imported = overrides_line(c.contract) if c.contract is not None else None
    if imported is not None:
        print(imported, flush=True)
    if where.startswith("dds") and runtime.options.rt_priority <= 0 and not cfg.dry_run:
        print(
            "note: loop.rt_priority=0, so the command loop competes with every other process for the CPU;"
            " on a robot run as root with loop.rt_priority=80 (deploy/README.md has the figures)",
            flush=True,
        )
    if runtime.backend.name == "dds" or keyboard is not None:
        print(operator_help(cfg, keyboard is not None, remote=runtime.backend.name == "dds"), flush=True)
    if keyboard is not None:
        keyboard.start()
    summary: dict[str, Any] = {}
    # Shutting down (terminal, DDS, log, the last lines) takes a moment: once the session has ended,
    # a second Ctrl-C must not cut it short with a traceback.
    main = threading.current_thread() is threading.main_thread()
    previous: Any = None
    try:
        try:
            summary = runtime.run()
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            if keyboard is not None:
                keyboard.stop()
            runtime.backend.close()
            if recorder is not None:
                if summary:
                    recorder.event(
                        type="end",
                        outcome=summary["outcome"],
                        exit_code=summary["exit_code"],
                        stop_reason=summary["stop_reason"],
                        error=summary["error"],
                        first_fault=summary["first_fault"],
                    )
                recorder.close(summary)
        report_session(cfg, c, summary)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    return summary


def report_session(cfg: DictConfig, c: Controller, summary: dict[str, Any]) -> None:
    """The closing lines: outcome and exit code, timing, the summary as JSON, and the error or first fault."""
    loop = summary.get("command_loop", {})
    inference = summary.get("inference", {})
    timing = (
        f"; command period error p50 {loop.get('period_error_p50_ms', float('nan')):.3f} /"
        f" p99 {loop.get('period_error_p99_ms', float('nan')):.3f} ms"
        if loop.get("period_error_count")  # none in lockstep: simulated time has no period error
        else ""
    )
    print(
        f"done: {summary['outcome']} (exit code {summary['exit_code']}), final state {summary.get('final_state')},"
        f" {len(summary.get('faults', []))} fault(s), {summary.get('policy_steps', 0)} policy steps{timing}"
        + (f"; inference p99 {inference['p99_ms']:.3f} ms" if inference.get("count") else ""),
        flush=True,
    )
    if c.policy is not None and summary.get("policy_steps", 0) == 0 and summary["outcome"] == "clean":
        print(
            "note: the policy never ran; it runs in POLICY only (autostart=true autopolicy_s=1, or the"
            " operator's start then policy)",
            flush=True,
        )
    if cfg.record.dir is not None:
        print(f"log: {Path(cfg.record.dir)}", flush=True)
    print("summary " + json.dumps(summary, default=str), flush=True)
    first = summary.get("first_fault")
    if summary.get("error"):
        print(f"error: the session failed ({summary['error']}); it damped for exit_damp_s", file=sys.stderr)
    elif first is not None:
        print(f"fault at {first['t']:.3f} s ({first['utc']}): {first['reason']}", file=sys.stderr)


def exit_code(summary: dict[str, Any]) -> int:
    """The deploy verb's exit code for a session summary (runtime.EXIT_CODES)."""
    return EXIT_CODES[str(summary["outcome"])]
