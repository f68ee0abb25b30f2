"""Deploy test helpers: unique DDS domains, bridge and deploy subprocesses, a wire sniffer.

DDS traffic in these tests stays on the loopback interface (robolearn.deploy.dds pins CycloneDDS to
`lo`: discovery by multicast on `lo` and unicast to 127.0.0.1), and each test takes domain ids nobody else on the machine
holds (a lock file per id), so concurrent test runs never hear each other.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.deploy.dds import claim_local_domain

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "policies" / "reference" / "go2_stand"


class DomainPool:
    """Hands out loopback DDS domain ids (robolearn.deploy.dds.claim_local_domain: 2-98, each held by
    an exclusive lock file), released when the test's ExitStack closes."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack

    def take(self) -> int:
        """A domain id no other holder has."""
        domain, fh = claim_local_domain()
        self._stack.callback(fh.close)
        return domain


class Proc:
    """A `python -m ...` subprocess whose stdout lines are collected (with arrival times) by a thread."""

    def __init__(self, args: list[str], name: str) -> None:
        self.name = name
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    def send(self, line: str) -> None:
        """Write one console line."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def wait_for(self, pattern: str, timeout: float = 20.0) -> tuple[float, str]:
        """The first line matching the regex (waiting for it), with its arrival time."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for t, line in self.lines[seen:]:
                    if rx.search(line):
                        return t, line
                seen = len(self.lines)
                left = end - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._thread.is_alive()):
                    raise AssertionError(
                        f"{self.name}: no line matching {pattern!r}; output:\n{self.text()[-4000:]}"
                    )
                self._cond.wait(min(left, 0.1))

    def text(self) -> str:
        """Everything printed so far."""
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def json_lines(self, prefix: str) -> list[dict[str, Any]]:
        """Parsed `<prefix> {json}` lines."""
        with self._cond:
            return [
                json.loads(line[len(prefix) + 1 :]) for _, line in self.lines if line.startswith(prefix + " ")
            ]

    def wait(self, timeout: float = 30.0) -> int:
        """Exit code (killing the process if it overstays)."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.name} did not exit; output:\n{self.text()[-4000:]}") from None
        self._thread.join(5)
        return code

    def stop(self) -> None:
        """Kill if still running (test teardown)."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def bridge_args(domain: int, *extra: str, robot: str = "go2") -> list[str]:
    """Command line of a sim bridge (a Go2 unless robot= says otherwise) on a test domain, with JSON telemetry."""
    return [
        "robolearn.deploy.sim_bridge",
        f"robot={robot}",
        f"domain_id={domain}",
        "bridge.telemetry=true",
        "bridge.status_every_s=0",
        # The robot's firmware is never paused by a busy host; SCHED_FIFO where permitted (root, CI)
        # keeps the simulated one publishing on time while the other test worker loads both cores.
        "bridge.rt_priority=45",
        *extra,
    ]


def deploy_args(domain: int, record: Path, *extra: str, policy: Path = REFERENCE) -> list[str]:
    """Command line of a deploy process against the bridge, recording to `record`."""
    return [
        "robolearn.deploy",
        "robot=go2",
        f"policy={policy}",
        "backend=dds",
        f"domain_id={domain}",
        f"record.dir={record}",
        "keyboard=false",
        "status_every_s=0",
        # As on a robot: SCHED_FIFO where permitted (root, CI), so the timing assertions measure the
        # runtime and not the other processes of a busy 2-core machine; a warning and normal
        # scheduling elsewhere.
        "loop.rt_priority=50",
        *extra,
    ]


class WireSniffer:
    """Every rt/lowcmd sample on a domain (reliable, deep history), decoded, with arrival times."""

    def __init__(self, domain: int, robot: str = "go2") -> None:
        from robolearn.deploy.dds import LOWCMD_TOPIC, DdsSession
        from robolearn.deploy.messages import message_family
        from robolearn.robots.registry import get_robot_spec

        self.spec = get_robot_spec(robot)
        self.family = message_family(self.spec.message_family)
        cmd_type, _ = self.family.sdk_types()
        self.session = DdsSession(domain, "lo")
        self.reader = self.session.reader(LOWCMD_TOPIC, cmd_type, depth=100000, reliable=True)
        self.messages: list[tuple[float, np.ndarray]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        codec = self.family.low_cmd
        while not self._stop.is_set():
            for data in self.reader.take(1024):
                self.messages.append((time.monotonic(), codec.decode(data)))
            time.sleep(0.001)

    def stop(self) -> None:
        """Stop collecting (after a last drain)."""
        time.sleep(0.2)
        self._stop.set()
        self._thread.join(2)
        self.session.close()


def run_module(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m <args>` to completion, capturing its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def record_in_process(
    log_dir: Path, *overrides: str, policy: Path = REFERENCE, robot: str = "go2", duration_s: float = 1.0
) -> Path:
    """A short session on the in-process backend (standing from the default pose, then POLICY),
    recorded to log_dir with the simulator's truth in log_dir/truth; returns log_dir."""
    from robolearn.config.validate import compose_config
    from robolearn.deploy.app import build_session

    cfg = compose_config(
        "deploy",
        [
            f"robot={robot}",
            f"policy={policy}",
            "backend=mujoco",
            "settings.sim_pose=default",
            "settings.ramp_s=0.2",
            "autopolicy_s=0.1",
            f"duration_s={duration_s}",
            "exit_damp_s=0.1",
            f"record.dir={log_dir}",
            "keyboard=false",
            "status_every_s=0",
            *overrides,
        ],
    )
    runtime, _, recorder = build_session(cfg)
    summary = runtime.run()
    runtime.backend.close()
    assert recorder is not None
    recorder.close(summary)
    return log_dir


def sim_frame(rec: Any, bodies: int) -> Any:
    """A one-env SimFrame of a recorded policy step's state (base at the origin, no body poses)."""
    from robolearn.envs.backends.base import SimFrame

    one = lambda x: np.asarray(x, dtype=np.float64)[None]  # noqa: E731
    return SimFrame(
        root_pos=np.zeros((1, 3)),
        root_quat=one(rec["base_quat"]),
        root_lin_vel=np.zeros((1, 3)),
        root_ang_vel=one(rec["gyro"]),
        joint_pos=one(rec["joint_pos"]),
        joint_vel=one(rec["joint_vel"]),
        body_pos=np.zeros((1, bodies, 3)),
        body_quat=np.zeros((1, bodies, 4)),
        body_lin_vel=np.zeros((1, bodies, 3)),
        body_ang_vel=np.zeros((1, bodies, 3)),
    )


def export_small_policy(contract: Any, root: Path, motion: Any = None) -> Path:
    """A small policy that moves (the reference network with N(0, 0.05) output weights) exported with
    `contract` (and a tracking policy's clips) into root/policy; returns that folder."""
    import torch

    from robolearn.export import export_policy, reference_network

    net = reference_network(contract.robot, contract.input_size, seed=3)
    with torch.no_grad():
        net[2].weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(4))
    torch.save(net.state_dict(), root / "net.pt")
    export_policy(
        net,
        contract,
        root / "policy",
        {"policy.pt": (root / "net.pt", "torch state_dict")},
        check_samples=16,
        motion=motion,
    )
    return root / "policy"
