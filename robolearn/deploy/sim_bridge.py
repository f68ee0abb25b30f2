"""`python -m robolearn.deploy.sim_bridge robot=go2`: a MuJoCo robot that behaves like the real one on DDS.

It subscribes to rt/lowcmd and publishes rt/lowstate with the robot's message family, on the
loopback interface only (a simulated robot must never appear on a real robot's network):

- motor-side PD at every physics step (bridge.physics_hz, default 1 kHz) from the latest valid
  command, with each command's own q, dq, kp, kd and tau (robolearn.robots.actuators.pd_torque's law,
  run by MuJoCo's actuators as in training: robolearn.deploy.simulation);
- commands whose CRC is wrong are dropped and counted, as the robot's firmware does;
- LowState at bridge.state_hz (500 Hz) with `tick` (ms of simulated time), the IMU from the model's
  sensors, and a valid CRC;
- optional latency, jitter and packet loss in both directions;
- a virtual remote controller: its buttons and sticks travel in LowState.wireless_remote;
- fault injection for tests and drills;
- `bridge.hold_until_command=true`: the robot hangs as on a gantry (pose frozen, time and states
  running) until the first powered command, so a G1 is still upright when deploy connects;
  `bridge.hold_until_release=true`: until the console's `release` instead, as an operator lowers a
  humanoid from its gantry once its policy runs (a G1 cannot stand on its PD hold alone).

The console (stdin, one command a line) drives the remote and the faults:

    press <button>[+<button>...] [seconds]   hold buttons (default 0.2 s), e.g. press start, press L1+R1
    stick <lx|ly|rx|ry> <value>               set a stick in [-1, 1]
    fault <silence|nan|bad_crc|none>          stop publishing / NaN joint positions / corrupt the CRC / clear
    loss <p> | latency <s> [jitter_s]         network impairments
    push <vx> <vy>                            kick the base (m/s)
    release                                   lower a held robot off its gantry (hold_until_release)
    stats | quit
"""

from __future__ import annotations

import heapq
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig

from robolearn.cli import hydra_verb, verb_help
from robolearn.deploy.config import dds_target, validate_deploy_config
from robolearn.deploy.dds import LOOPBACK, LOWCMD_TOPIC, LOWSTATE_TOPIC, DdsSession
from robolearn.deploy.messages import BUTTONS, RemoteState, message_family
from robolearn.deploy.mismatch import TargetPhysics, target_from_config
from robolearn.deploy.simulation import RobotSimulation
from robolearn.deploy.timing import DeadlineScheduler, set_process_realtime_priority
from robolearn.deploy.truth import TruthRecorder
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import SUPPORTED_MODE_MACHINES, RobotSpec

# unitree_hg LowState.mode_machine each robot's bridge advertises by default: the revision its spec
# describes (robolearn.robots.spec.SUPPORTED_MODE_MACHINES); bridge.mode_machine advertises another.
MODE_MACHINE = {name: modes[0] for name, modes in SUPPORTED_MODE_MACHINES.items() if modes}
FAULTS = ("silence", "nan", "bad_crc", "none")


@dataclass
class Impairments:
    """Network and sensor faults the bridge applies (changeable from the console)."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    silence: bool = False
    nan: bool = False
    bad_crc: bool = False


@dataclass
class BridgeCounters:
    """What the bridge saw and did."""

    commands: int = 0
    bad_crc: int = 0
    decode_errors: int = 0
    commands_lost: int = 0
    states: int = 0
    states_lost: int = 0
    ticks: int = 0
    skipped_ticks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class SimBridge:
    """The bridge's state and its one tick; run() paces ticks at state_hz."""

    def __init__(
        self,
        spec: RobotSpec,
        session: DdsSession,
        physics_hz: float = 1000.0,
        state_hz: float = 500.0,
        initial_pose: str = "default",
        model_path: str | None = None,
        impairments: Impairments | None = None,
        check_crc: bool = True,
        seed: int = 0,
        mode_machine: int | None = None,
        hold_until_command: bool = False,
        hold_until_release: bool = False,
        mismatch: TargetPhysics | None = None,
        truth_dir: str | None = None,
    ) -> None:
        substeps = physics_hz / state_hz
        if abs(substeps - round(substeps)) > 1e-9 or substeps < 1:
            raise UserError(
                f"bridge.physics_hz={physics_hz:g} must be a whole multiple of bridge.state_hz={state_hz:g}"
            )
        self.spec = spec
        self.substeps = round(substeps)
        self.period = 1.0 / state_hz
        self.family = message_family(spec.message_family)
        cmd_type, state_type = self.family.sdk_types()
        self.reader = session.reader(LOWCMD_TOPIC, cmd_type, depth=64, reliable=True)
        self.writer = session.writer(LOWSTATE_TOPIC, state_type, depth=1)
        self.sim = RobotSimulation(
            spec, model_path, physics_dt=1.0 / physics_hz, seed=seed, mismatch=mismatch
        )
        self.sim.reset(initial_pose)
        if initial_pose == "crouch":
            self.sim.settle(1.0)  # come to rest on the floor, unpowered, before anyone connects
        self.slots = np.asarray(spec.motor_indices, dtype=np.intp)
        # The simulator's true state at every LowState it publishes (robolearn.deploy.truth).
        self.truth = None if truth_dir is None else TruthRecorder(truth_dir, self.sim, "bridge")
        self.impair = impairments or Impairments()
        self.check_crc = check_crc
        self.rng = np.random.default_rng(seed)
        self.counters = BridgeCounters()
        self._cmd_queue: list[tuple[float, int, np.ndarray]] = []
        self._state_queue: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self.remote = RemoteState()
        self._release_at: float | None = None
        self.console: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.replies: list[str] = []
        self.last_command_time: float | None = None
        self._state = self.family.low_state.new()
        if self.family.name == "unitree_go":
            self._state["head"] = (0xFE, 0xEF)
            self._state["level_flag"] = 0xFF
        else:
            self._state["mode_machine"] = (
                MODE_MACHINE.get(spec.name, 0) if mode_machine is None else mode_machine
            )
        self._state["motor_state"]["mode"][self.slots] = self.family.enabled_mode
        # A robot on a gantry: its pose is frozen (time runs, states flow) until the first powered
        # command, so a G1, which cannot stand unpowered, is still upright when deploy connects.
        self._held_qpos = self.sim.data.qpos.copy() if hold_until_command or hold_until_release else None
        self._release_on_command = hold_until_command and not hold_until_release
        self.done = False

    # -- console ----------------------------------------------------------------------------------------
    def handle(self, line: str, now: float) -> str:
        """Apply one console command; returns the reply (also used by tests in-process)."""
        parts = line.split()
        if not parts:
            return ""
        cmd, args = parts[0].lower(), parts[1:]
        try:
            if cmd == "press":
                buttons = frozenset(args[0].split("+"))
                unknown = buttons - set(BUTTONS)
                if unknown:
                    return f"unknown button(s) {', '.join(sorted(unknown))}; buttons: {', '.join(BUTTONS)}"
                self.remote = RemoteState(
                    buttons, self.remote.lx, self.remote.ly, self.remote.rx, self.remote.ry
                )
                self._release_at = now + (float(args[1]) if len(args) > 1 else 0.2)
                return f"pressing {'+'.join(sorted(buttons))}"
            if cmd == "stick":
                name, value = args[0], float(np.clip(float(args[1]), -1.0, 1.0))
                if name not in ("lx", "ly", "rx", "ry"):
                    return "sticks: lx ly rx ry"
                sticks = {k: getattr(self.remote, k) for k in ("lx", "ly", "rx", "ry")}
                sticks[name] = value
                self.remote = RemoteState(self.remote.buttons, **sticks)
                return f"{name} = {value}"
            if cmd == "fault":
                kind = args[0]
                if kind not in FAULTS:
                    return f"faults: {', '.join(FAULTS)}"
                if kind == "none":
                    self.impair.silence = self.impair.nan = self.impair.bad_crc = False
                else:
                    setattr(self.impair, kind, True)
                return f"fault {kind} at t={now:.6f}"
            if cmd == "loss":
                self.impair.loss = float(np.clip(float(args[0]), 0.0, 1.0))
                return f"loss {self.impair.loss}"
            if cmd == "latency":
                self.impair.latency_s = max(0.0, float(args[0]))
                self.impair.jitter_s = max(0.0, float(args[1])) if len(args) > 1 else self.impair.jitter_s
                return f"latency {self.impair.latency_s} jitter {self.impair.jitter_s}"
            if cmd == "push":
                self.sim.push((float(args[0]), float(args[1])))
                return "pushed"
            if cmd == "stats":
                return "stats " + json.dumps(self.telemetry(now))
            if cmd == "release":
                held, self._held_qpos = self._held_qpos is not None, None
                return f"released from the gantry at t={now:.6f}" if held else "not held"
            if cmd == "quit":
                self.done = True
                return "quitting"
        except (IndexError, ValueError) as exc:
            return f"bad command '{line}': {exc}"
        return f"unknown command '{cmd}' (press, stick, fault, loss, latency, push, release, stats, quit)"

    def telemetry(self, now: float) -> dict[str, Any]:
        """Simulation and traffic figures (JSON-ready)."""
        r = self.sim.read()
        c = self.counters
        return {
            "t": now,
            "sim_time": r.time,
            "base_height": float(r.base_pos[2]),
            "tilt_deg": self.sim.tilt_deg(),
            "commands": c.commands,
            "bad_crc": c.bad_crc,
            "commands_lost": c.commands_lost,
            "states": c.states,
            "states_lost": c.states_lost,
            "skipped_ticks": c.skipped_ticks,
            "kp_mean": float(np.mean(self.sim.cmd_kp)),
            "kd_mean": float(np.mean(self.sim.cmd_kd)),
            "silence": self.impair.silence,
        }

    # -- one tick ---------------------------------------------------------------------------------------
    def _delay(self) -> float:
        jitter = self.rng.uniform(0.0, self.impair.jitter_s) if self.impair.jitter_s > 0 else 0.0
        return self.impair.latency_s + jitter

    def _lost(self) -> bool:
        return self.impair.loss > 0 and self.rng.random() < self.impair.loss

    def receive(self, now: float) -> None:
        """Take every command waiting; queue the valid ones behind the configured latency."""
        codec = self.family.low_cmd
        for data in self.reader.take(64):
            try:
                rec = codec.decode(data)
            except UserError:
                self.counters.decode_errors += 1
                continue
            if self.check_crc and not codec.crc_ok(rec):
                self.counters.bad_crc += 1  # the firmware ignores such a command, and so do we
                continue
            if self._lost():
                self.counters.commands_lost += 1
                continue
            self.counters.commands += 1
            self._seq += 1
            heapq.heappush(
                self._cmd_queue, (now + self._delay(), self._seq, rec["motor_cmd"][self.slots].copy())
            )
        latest = None
        while self._cmd_queue and self._cmd_queue[0][0] <= now:
            latest = heapq.heappop(self._cmd_queue)[2]
        if latest is not None:
            on = latest["mode"] == self.family.enabled_mode  # a motor in mode 0 is unpowered
            self.sim.set_command(
                latest["q"].astype(np.float64),
                np.where(on, latest["kp"], 0.0),
                np.where(on, latest["kd"], 0.0),
                dq=np.where(on, latest["dq"], 0.0),
                tau=np.where(on, latest["tau"], 0.0),
            )
            self.last_command_time = now
            if self._held_qpos is not None and self._release_on_command and np.any(on & (latest["kp"] > 0)):
                self._held_qpos = None  # the first powered command lowers the robot off the gantry

    def publish(self, now: float) -> None:
        """Build this tick's LowState, apply faults and impairments, and send what is due."""
        r = self.sim.read()
        if self.truth is not None:
            self.truth.record()
        s = self._state
        motors = s["motor_state"]
        motors["q"][self.slots] = r.joint_pos
        motors["dq"][self.slots] = r.joint_vel
        motors["tau_est"][self.slots] = r.joint_torque
        if self.impair.nan:
            motors["q"][self.slots[0]] = np.nan
        imu = s["imu_state"]
        imu["quaternion"] = r.quat
        imu["gyroscope"] = r.gyro
        imu["accelerometer"] = r.accel
        w, x, y, z = r.quat
        imu["rpy"] = (
            np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
            np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0)),
            np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)),
        )
        s["tick"] = round(r.time * 1000) & 0xFFFFFFFF
        s["wireless_remote"] = np.frombuffer(self.remote.to_bytes(), dtype=np.uint8)
        codec = self.family.low_state
        codec.seal(s)
        if self.impair.bad_crc:
            s["crc"] = int(s["crc"]) ^ 0x1
        if not self.impair.silence:
            if self._lost():
                self.counters.states_lost += 1
            else:
                self._seq += 1
                heapq.heappush(self._state_queue, (now + self._delay(), self._seq, codec.encode(s)))
        while self._state_queue and self._state_queue[0][0] <= now:
            self.writer.write(heapq.heappop(self._state_queue)[2])
            self.counters.states += 1

    def tick(self, now: float) -> None:
        """One period: console, commands in, physics, state out."""
        while True:
            try:
                line = self.console.get_nowait()
            except queue.Empty:
                break
            reply = self.handle(line, now)
            if reply:
                self.replies.append(reply)
        if self._release_at is not None and now >= self._release_at:
            self.remote = RemoteState(
                frozenset(), self.remote.lx, self.remote.ly, self.remote.rx, self.remote.ry
            )
            self._release_at = None
        self.receive(now)
        self.sim.step(self.substeps)
        if self._held_qpos is not None:
            self.sim.hold(self._held_qpos)
        self.publish(now)
        self.counters.ticks += 1


def _stdin_reader(target: queue.SimpleQueue[str]) -> None:
    # End of input (a bridge started in the background) just leaves the console idle.
    for line in sys.stdin:
        target.put(line.strip())


def run_bridge(cfg: DictConfig) -> dict[str, Any]:
    """Run the bridge until quit, duration or Ctrl-C; returns the final telemetry."""
    validate_deploy_config(cfg)
    interface, domain = dds_target(cfg)
    if interface != LOOPBACK:
        raise UserError(
            f"the sim bridge runs on the loopback interface only (got interface={interface}): a simulated robot must not appear on a real robot's network"
        )
    spec = get_robot_spec(str(cfg.robot.name))
    b = cfg.bridge
    if b.mode_machine is not None and spec.message_family != "unitree_hg":
        raise UserError(
            f"bridge.mode_machine={b.mode_machine} applies to unitree_hg robots (the G1s); the {spec.name}'s"
            f" {spec.message_family} LowState has no mode_machine: leave it null"
        )
    pose = b.initial_pose or cfg.settings.sim_pose
    bridge = SimBridge(
        spec,
        DdsSession(domain, interface),
        physics_hz=b.physics_hz,
        state_hz=b.state_hz,
        initial_pose=pose,
        model_path=cfg.robot.model,
        impairments=Impairments(latency_s=b.latency_s, jitter_s=b.jitter_s, loss=b.loss),
        check_crc=b.check_crc,
        seed=b.seed,
        mode_machine=b.mode_machine,
        hold_until_command=b.hold_until_command,
        hold_until_release=b.hold_until_release,
        mismatch=target_from_config(cfg, spec),
        truth_dir=b.record_truth,
    )
    threading.Thread(target=_stdin_reader, args=(bridge.console,), name="console", daemon=True).start()
    print(
        f"sim bridge: {spec.name} ({spec.message_family}) on {interface}, domain {domain}; state {b.state_hz:g} Hz,"
        f" physics {b.physics_hz:g} Hz, pose {pose}; {bridge.sim.mismatch.describe()}; console:"
        " press/stick/fault/loss/latency/push/release/stats/quit",
        flush=True,
    )
    # The bridge stands in for the robot's firmware, which never stalls because a host is busy: with
    # bridge.rt_priority every thread (DDS's included, see set_process_realtime_priority) runs SCHED_FIFO.
    problem = set_process_realtime_priority(int(b.rt_priority))
    if problem:
        print("warning: bridge " + problem, flush=True)
    clock = time.monotonic
    sched = DeadlineScheduler(bridge.period, b.spin_s, clock=clock)
    start = clock()
    sched.start(start)
    next_telemetry = start
    next_status = start + b.status_every_s if b.status_every_s > 0 else np.inf
    try:
        while not bridge.done:
            sched.wait()
            now = clock()
            bridge.tick(now)
            bridge.counters.skipped_ticks = sched.skipped
            for reply in bridge.replies:
                print(reply, flush=True)
            bridge.replies.clear()
            if b.telemetry and now >= next_telemetry:
                print("telemetry " + json.dumps(bridge.telemetry(now)), flush=True)
                next_telemetry += b.telemetry_every_s
            if now >= next_status:
                t = bridge.telemetry(now)
                print(
                    f"[{now - start:8.1f} s] base {t['base_height']:.3f} m, tilt {t['tilt_deg']:.1f} deg; commands {t['commands']}"
                    f" (bad CRC {t['bad_crc']}), states {t['states']}",
                    flush=True,
                )
                next_status += b.status_every_s
            if b.duration_s is not None and now - start >= b.duration_s:
                break
    except KeyboardInterrupt:
        pass
    final = bridge.telemetry(clock())
    if bridge.truth is not None:
        bridge.truth.close()
    print("bridge-summary " + json.dumps(final), flush=True)
    return final


HELP = verb_help(
    "deploy.sim_bridge",
    "robot=<go2|g1|g1_29dof> [key=value ...]",
    "A MuJoCo robot that behaves like the real one on DDS (loopback only): motor-side PD from rt/lowcmd,\n"
    "rt/lowstate with tick, IMU and CRC, optional latency/jitter/loss, a virtual remote and fault\n"
    "injection. Console (stdin): press <button>, stick <axis> <v>, fault <silence|nan|bad_crc|none>,\n"
    "loss <p>, latency <s> [jitter_s], push <vx> <vy>, release, stats, quit. Reads configs/deploy.yaml.",
    [
        ("robot", "go2 | g1 | g1_29dof (default: go2)"),
        ("domain_id", "DDS domain id (default: settings.dds.domain_id)"),
        ("bridge.physics_hz", "physics and motor PD rate (default: 1000)"),
        ("bridge.state_hz", "rt/lowstate rate (default: 500)"),
        ("bridge.initial_pose", "default | crouch (default: settings.sim_pose)"),
        ("bridge.latency_s", "added delay each way; bridge.jitter_s adds uniform extra delay"),
        ("bridge.loss", "probability of dropping each command and state"),
        ("bridge.check_crc", "drop commands whose CRC is wrong (default: true)"),
        ("bridge.mode_machine", "G1s: LowState.mode_machine to advertise (default: the spec's revision)"),
        ("bridge.telemetry", "print JSON telemetry lines every bridge.telemetry_every_s"),
        ("bridge.duration_s", "stop after this long (default: until quit or Ctrl-C)"),
        ("bridge.record_truth", "log the simulator's true state at every LowState to this folder"),
        (
            "bridge.rt_priority",
            "SCHED_FIFO priority for the bridge's threads (root or CAP_SYS_NICE; default 0: off)",
        ),
    ],
    [
        "python -m robolearn.deploy.sim_bridge robot=go2 &",
        "python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=dds",
    ],
    script="robolearn-sim-bridge",
)

# Console entry points (python -m robolearn.deploy.sim_bridge, robolearn-sim-bridge).
main = hydra_verb("deploy", run_bridge, validate_deploy_config, help_text=HELP)

if __name__ == "__main__":
    main()
