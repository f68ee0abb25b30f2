"""Config schemas of the deploy verb, the sim bridge and the doctor, registered with Hydra's ConfigStore.

configs/deploy.yaml composes `robot: <name>` (configs/robot/<name>.yaml: which robot, which MJCF)
with `deploy@settings: <name>` (configs/deploy/<name>.yaml: the per-robot runtime settings, namely
network interface, domain id, remote bindings and safety thresholds). Gains, limits, default pose and
joint order are never in a config: they come from the RobotSpec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from robolearn.deploy.safety import GuardConfig
from robolearn.errors import UserError, close_matches


@dataclass
class RobotNode:
    """configs/robot/<name>.yaml."""

    name: str = "go2"
    model: str | None = None  # MJCF for the MuJoCo backend and the bridge; None = ours


@dataclass
class DdsSettings:
    """Where the robot's DDS traffic is."""

    interface: str = "lo"  # NIC on the robot's network (e.g. enp3s0); lo for the sim bridge
    domain_id: int = 1  # Unitree robots use 0
    check_state_crc: bool = True  # drop LowState samples whose CRC is wrong
    # G1s: accept LowState.mode_machine 0 (not reported). A real G1 always reports its revision;
    # unitree_mujoco's simulator leaves it 0. For such simulators only (deploy/interop.md).
    accept_unreported_mode_machine: bool = False


@dataclass
class RemoteSettings:
    """Unitree wireless remote: button bindings to safety events, stick deadband."""

    enabled: bool = True
    bindings: dict[str, str] = field(
        default_factory=dict
    )  # "start" / "L1+R1" -> start|policy|stand|damp|passive|estop
    deadband: float = 0.05


@dataclass
class RobotSettings:
    """configs/deploy/<robot>.yaml."""

    dds: DdsSettings = field(default_factory=DdsSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    safety: GuardConfig = field(default_factory=GuardConfig)  # guard thresholds
    ramp_s: float = 2.0  # RAMP duration from the pose at START to the default pose
    damp_kd_fraction: float = 1.0  # DAMP's kd as a fraction of the spec's kd
    sim_pose: str = "default"  # how simulations start the robot: default (standing) | crouch (lying)


@dataclass
class LoopSettings:
    """Rates and scheduling of the control loops."""

    command_hz: float = 500.0  # commands re-sent at this rate
    policy_hz: float | None = None  # None: 1 / the contract's control_dt (50 Hz for our policies)
    scheduler: str = "deadline"  # deadline | sleep_after_work (the baseline, for benchmarks)
    spin_s: float = 0.0002  # deadline scheduler: spin this long before each deadline instead of sleeping
    rt_priority: int = 0  # SCHED_FIFO priority for the command loop (needs root or CAP_SYS_NICE); 0 = off
    policy_thread: bool = True  # run inference in its own thread (else inline in the command loop)
    switch_interval_s: float = 0.0005  # Python's GIL switch interval while the loops run


@dataclass
class RecordSettings:
    """The deploy log (robolearn.deploy.recorder)."""

    dir: str | None = None  # folder to write; None records nothing
    chunk: int = 512  # records per write


@dataclass
class MujocoSettings:
    """The in-process MuJoCo backend (sim2sim)."""

    physics_hz: float = 1000.0
    realtime: bool = False  # pace to the wall clock (else as fast as possible)
    push_interval_s: list[float] | None = None  # [min, max] seconds between pushes
    push_velocity: float = 0.0  # largest planar velocity kick (m/s)
    seed: int = 0


@dataclass
class BridgeSettings:
    """The MuJoCo sim bridge (python -m robolearn.deploy.sim_bridge)."""

    physics_hz: float = 1000.0  # the motor PD runs at every physics step
    state_hz: float = 500.0  # rt/lowstate rate
    initial_pose: str | None = None  # default | crouch; None uses settings.sim_pose
    latency_s: float = 0.0  # added to each command and state
    jitter_s: float = 0.0  # uniform extra delay in [0, jitter_s]
    loss: float = 0.0  # probability of dropping each command and state
    check_crc: bool = True  # drop commands whose CRC is wrong
    telemetry: bool = False  # print a JSON line of telemetry every telemetry_every_s
    telemetry_every_s: float = 0.1
    status_every_s: float = 5.0  # human-readable status line (0 = never)
    duration_s: float | None = None  # stop after this long
    spin_s: float = 0.0
    rt_priority: int = 0  # SCHED_FIFO for every bridge thread (root or CAP_SYS_NICE); 0 = off
    seed: int = 0
    mode_machine: int | None = None  # unitree_hg LowState.mode_machine to advertise; None: the spec's
    hold_until_command: bool = False  # freeze the pose until the first powered command (a gantry)
    hold_until_release: bool = False  # freeze it until the console's `release` (lowered once the policy runs)
    record_truth: str | None = None  # folder for the simulator's true state (robolearn.deploy.truth)


@dataclass
class MismatchNode:
    """configs/mismatch/<name>.yaml: the simulated target's physics edits (robolearn.deploy.mismatch)."""

    name: str = "none"
    description: str = ""
    edits: list[Any] = field(default_factory=list)  # robolearn.envs.edits items: {kind: ..., ...}


@dataclass
class DeployConfig:
    """Schema of configs/deploy.yaml (the deploy verb and the sim bridge)."""

    robot: RobotNode = field(default_factory=RobotNode)
    settings: RobotSettings = field(default_factory=RobotSettings)
    policy: str | None = None  # artifact folder; None runs PASSIVE/RAMP/HOLD/DAMP only
    motion_clip: str | None = None  # a tracking policy's clip (motion.npz); None: its first
    backend: str = "mujoco"  # mujoco | dds
    dry_run: bool = False  # dds: read states, compute everything, publish nothing
    interface: str | None = None  # shortcut for settings.dds.interface
    domain_id: int | None = None  # shortcut for settings.dds.domain_id
    autostart: bool | None = None  # PASSIVE -> RAMP at the first valid state; None: on for mujoco only
    autopolicy_s: float | None = None  # HOLD -> POLICY after this long; None: 1 s for mujoco, off for dds
    duration_s: float | None = None  # stop (through DAMP) this long after start; None: 10 s for mujoco
    exit_damp_s: float = 1.0  # on stop, send DAMP this long before exiting
    keyboard: str = "auto"  # auto (on a terminal) | true | false
    status_every_s: float = 5.0  # status line period (0 = transitions only)
    loop: LoopSettings = field(default_factory=LoopSettings)
    record: RecordSettings = field(default_factory=RecordSettings)
    mujoco: MujocoSettings = field(default_factory=MujocoSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    # The simulated robot's physics mismatch (backend=mujoco and the sim bridge); none on hardware.
    mismatch: MismatchNode = field(default_factory=MismatchNode)


@dataclass
class DoctorConfig:
    """Schema of configs/doctor.yaml."""

    robot: RobotNode = field(default_factory=RobotNode)
    settings: RobotSettings = field(default_factory=RobotSettings)
    interface: str | None = None
    domain_id: int | None = None
    listen_s: float = 2.0  # how long to listen on each check
    expect_hz: float = 500.0  # the LowState rate a Unitree robot (and the bridge) publishes
    scan_domains: list[int] | None = (
        None  # domains searched when nothing is heard; None = 0-9 and ±3 around domain_id
    )


def register_deploy_schemas() -> None:
    """Register the schemas (idempotent; done on import)."""
    cs = ConfigStore.instance()
    cs.store(name="deploy_schema", node=DeployConfig)
    cs.store(name="doctor_schema", node=DoctorConfig)


register_deploy_schemas()

BACKENDS = ("mujoco", "dds")
# backend=mujoco's defaults when autostart / autopolicy_s / duration_s are left null: the sim2sim line
# `python -m robolearn.deploy robot=go2 policy=<artifact> backend=mujoco` stands the robot up, runs the
# policy and ends by itself. backend=dds never starts or hands over the motors without the operator.
MUJOCO_AUTOPOLICY_S = 1.0
MUJOCO_DURATION_S = 10.0
SCHEDULERS = ("deadline", "sleep_after_work")
KEYBOARD = ("auto", "true", "false")
POSES = ("default", "crouch")


def dds_target(cfg: Any) -> tuple[str, int]:
    """(interface, domain id) after the top-level shortcuts."""
    interface = cfg.interface if cfg.interface is not None else cfg.settings.dds.interface
    domain = cfg.domain_id if cfg.domain_id is not None else cfg.settings.dds.domain_id
    return str(interface), int(domain)


def _positive(name: str, value: Any) -> None:
    if value is not None and not value > 0:
        raise UserError(f"{name}={value} is out of range; use a positive number")


def validate_deploy_config(cfg: DictConfig) -> None:
    """One-line errors for values outside their allowed sets or ranges."""
    for key, value, choices in (
        ("backend", cfg.backend, BACKENDS),
        ("loop.scheduler", cfg.loop.scheduler, SCHEDULERS),
        ("keyboard", str(cfg.keyboard).lower(), KEYBOARD),
        ("settings.sim_pose", cfg.settings.sim_pose, POSES),
    ):
        if value not in choices:
            raise UserError(
                f"{key}={value} is not allowed{close_matches(str(value), choices)}; choose one of {', '.join(choices)}"
            )
    if cfg.bridge.initial_pose is not None and cfg.bridge.initial_pose not in POSES:
        raise UserError(
            f"bridge.initial_pose={cfg.bridge.initial_pose} is not allowed; choose one of {', '.join(POSES)}"
        )
    if cfg.autopolicy_s is not None and cfg.autopolicy_s < 0:
        raise UserError(f"autopolicy_s={cfg.autopolicy_s} is out of range; use seconds >= 0 (or null)")
    for name in (
        "loop.command_hz",
        "loop.policy_hz",
        "settings.ramp_s",
        "exit_damp_s",
        "duration_s",
        "mujoco.physics_hz",
        "bridge.physics_hz",
        "bridge.state_hz",
        "settings.safety.stale_state_s",
        "settings.safety.max_tilt_deg",
        "settings.safety.action_limit_multiple",
        "settings.safety.max_consecutive_overruns",
        "settings.safety.policy_timeout_periods",
        "settings.safety.joint_vel_factor",
    ):
        node: Any = cfg
        for part in name.split("."):
            node = node[part]
        _positive(name, node)
    for name, value in (
        ("loop.spin_s", cfg.loop.spin_s),
        ("bridge.latency_s", cfg.bridge.latency_s),
        ("bridge.jitter_s", cfg.bridge.jitter_s),
        ("settings.safety.joint_pos_margin", cfg.settings.safety.joint_pos_margin),
    ):
        if value < 0:
            raise UserError(f"{name}={value} is out of range; use a number >= 0")
    mode = cfg.bridge.mode_machine
    if mode is not None and not 0 <= mode <= 255:
        raise UserError(
            f"bridge.mode_machine={mode} is out of range; LowState.mode_machine is a byte, 0..255"
        )
    for name, prio in (
        ("loop.rt_priority", cfg.loop.rt_priority),
        ("bridge.rt_priority", cfg.bridge.rt_priority),
    ):
        if prio is not None and not 0 <= int(prio) <= 99:
            raise UserError(f"{name}={prio} is out of range; SCHED_FIFO priorities are 1..99 (0 = off)")
    if not 0.0 <= cfg.bridge.loss <= 1.0:
        raise UserError(f"bridge.loss={cfg.bridge.loss} is out of range; use a probability in [0, 1]")
    if not 0.0 <= cfg.settings.damp_kd_fraction <= 1.0:
        raise UserError(
            f"settings.damp_kd_fraction={cfg.settings.damp_kd_fraction} must be in [0, 1] (kd never exceeds the spec's)"
        )
    from robolearn.deploy.dds import check_domain_id
    from robolearn.robots.registry import get_robot_spec

    spec = get_robot_spec(str(cfg.robot.name))
    check_domain_id(dds_target(cfg)[1])
    if cfg.get("mismatch") is not None and cfg.mismatch.edits:
        from robolearn.deploy.mismatch import target_from_config

        target_from_config(cfg, spec)  # every edit checked against the robot's model before any work
    if cfg.mujoco.push_interval_s is not None and (
        len(cfg.mujoco.push_interval_s) != 2 or min(cfg.mujoco.push_interval_s) <= 0
    ):
        raise UserError("mujoco.push_interval_s must be [min, max] seconds, both positive")
