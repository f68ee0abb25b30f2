"""Run a policy program in a separate, resource-limited process before it ever runs in ours.

``probe_policy`` executes a statically checked program on sampled observations in a child process
(robolearn.llm.sandbox_child) with a CPU-time budget, an address-space budget and a wall-clock timeout,
behind walls that hold even when the static check is bypassed (robolearn.llm.walls: RestrictedPython
guards, file/process rlimits, root dropped to nobody, a seccomp filter, an empty network namespace),
then checks what came back: the action shape, finite values, the bounds
(clipping is reported, or rejected with ``reject_out_of_bounds``), the per-call time and determinism
(the first observation is evaluated again at the end and must give the same action).

``run_child`` is the shared launcher; robolearn.llm.screen uses it for rollouts. Every report carries
the state of each wall as the child stated it, and a wall that is not active is logged (once per
process and state), never passed over silently.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.llm.checker import check_source
from robolearn.llm.walls import WALL_NAMES, is_active

_log = logging.getLogger(__name__)
_logged_walls: set[tuple[tuple[str, str], ...]] = set()
_logged_lock = threading.Lock()

# robolearn is a namespace package: the folder that holds it goes on the child's sys.path.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_CHILD_BOOT = "import sys; sys.path.insert(0, {root!r}); from robolearn.llm.sandbox_child import main; main()"


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one sandboxed run."""

    cpu_s: float = 10.0  # CPU seconds for the program itself (imports are not counted)
    memory_mb: float = 1024.0  # address space beyond what the interpreter and libraries already use
    wall_s: float = 60.0  # wall-clock seconds for the whole child, imports included
    call_budget_ms: float = 5.0  # mean time per policy call allowed in a probe


@dataclass(frozen=True)
class SandboxReport:
    """What a probe found: ok when ``reasons`` is empty."""

    reasons: tuple[str, ...]
    n_calls: int = 0
    mean_call_ms: float = float("nan")
    max_call_ms: float = float("nan")
    clipped_fraction: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    walls: Mapping[str, str] = field(default_factory=dict)  # wall -> state, as the child stated it

    @property
    def ok(self) -> bool:
        """True when the program passed every runtime check."""
        return not self.reasons

    def summary(self) -> str:
        """One line: the reasons, or the timing and clipping figures."""
        if self.reasons:
            return "; ".join(self.reasons)
        text = f"ok ({self.n_calls} calls, mean {self.mean_call_ms:.3f} ms, max {self.max_call_ms:.3f} ms"
        if self.clipped_fraction:
            text += f", {100 * self.clipped_fraction:.1f}% of action values clipped"
        return text + ")"


class ChildFailure(Exception):
    """The child process did not return a result (limit hit, timeout, crash); the message is one line."""

    def __init__(self, message: str, kind: str, walls: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.walls: Mapping[str, str] = walls or {}


def inactive_walls(walls: Mapping[str, str]) -> dict[str, str]:
    """The walls of a report that are not up, with their states (all of them when none was reported)."""
    if not walls:
        return dict.fromkeys(WALL_NAMES, "not reported (the child ended before its walls were up)")
    return {name: state for name, state in walls.items() if not is_active(state)}


def log_walls(walls: Mapping[str, str]) -> None:
    """Warn (once per process and combination) about walls that are not active."""
    missing = inactive_walls(walls) if walls else {}
    if not missing:
        return
    key = tuple(sorted(missing.items()))
    with _logged_lock:
        if key in _logged_walls:
            return
        _logged_walls.add(key)
    states = "; ".join(f"{name} {state}" for name, state in missing.items())
    held = ", ".join(name for name, state in walls.items() if is_active(state)) or "none"
    _log.warning("sandbox walls not active: %s (active: %s)", states, held)


def run_child(
    request: dict[str, Any], limits: SandboxLimits, disabled_walls: Collection[str] = ()
) -> dict[str, Any]:
    """Run one request in a fresh sandbox child; return its JSON result (with ``walls``, each wall's
    state) or raise ChildFailure.

    ``disabled_walls`` (names from ``WALL_NAMES``) exists only so tests can show that each remaining
    wall holds on its own; a disabled wall is reported as such.
    """
    unknown = set(disabled_walls) - set(WALL_NAMES)
    if unknown:
        raise ValueError(f"unknown sandbox walls {sorted(unknown)}; known: {', '.join(WALL_NAMES)}")
    payload = dict(request, cpu_s=limits.cpu_s, memory_mb=limits.memory_mb)
    payload["disabled_walls"] = sorted(disabled_walls)
    with tempfile.TemporaryDirectory(prefix="robolearn-sandbox-") as workdir:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": workdir,
            "TMPDIR": workdir,
            # One thread per library: thread pools reserve address space and would eat the memory budget.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MUJOCO_GL": "disable",
        }
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD_BOOT.format(root=str(_PACKAGE_ROOT))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills everything it started
        )
        try:
            stdout, stderr = proc.communicate(json.dumps(payload).encode(), timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, _ = proc.communicate()
            walls = _walls_line(stdout.decode(errors="replace").strip().splitlines())
            log_walls(walls)
            message = f"exceeded the wall-clock limit of {limits.wall_s:g} s"
            raise ChildFailure(message, "timeout", walls) from None
    lines = stdout.decode(errors="replace").strip().splitlines()
    walls = _walls_line(lines)
    log_walls(walls)
    if proc.returncode == 0 and lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
        if isinstance(result, dict) and "walls" not in result:
            return dict(result, walls=walls)
    message, kind = _describe_exit(proc.returncode, stderr.decode(errors="replace"), limits)
    raise ChildFailure(message, kind, walls)


def _walls_line(lines: list[str]) -> dict[str, str]:
    """The walls the child reported on its first line (empty when it did not get that far)."""
    if not lines:
        return {}
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError:
        return {}
    walls = first.get("walls") if isinstance(first, dict) else None
    if not isinstance(walls, dict):
        return {}
    return {str(name): str(state) for name, state in walls.items()}


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _describe_exit(returncode: int, stderr: str, limits: SandboxLimits) -> tuple[str, str]:
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        # SIGXCPU at the soft CPU limit, SIGKILL at the hard one a second later.
        return f"exceeded the CPU-time limit of {limits.cpu_s:g} s", "cpu"
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        if -returncode == signal.SIGSEGV:
            return f"crashed with {name} (often the memory limit of {limits.memory_mb:g} MB)", "memory"
        return f"killed by {name}", "signal"
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "no output")
    if "MemoryError" in stderr:
        return f"ran out of memory (limit {limits.memory_mb:g} MB)", "memory"
    return f"sandbox process failed (exit {returncode}): {last.strip()[:200]}", "internal"


def probe_policy(
    source: str,
    observations: np.ndarray,
    action_low: np.ndarray,
    action_high: np.ndarray,
    limits: SandboxLimits | None = None,
    reject_out_of_bounds: bool = False,
    static_check: bool = True,
    disabled_walls: Collection[str] = (),
) -> SandboxReport:
    """Run a program on sampled observations in a limited child process and check its actions.

    ``static_check=False`` skips the allow-list and ``disabled_walls`` switches runtime walls off; both
    exist only so tests can show that the remaining walls hold on their own.
    """
    limits = limits or SandboxLimits()
    if static_check:
        reasons = check_source(source)
        if reasons:
            return SandboxReport(reasons=tuple(reasons))
    obs = np.asarray(observations, dtype=np.float64)
    if obs.ndim != 2 or len(obs) == 0:
        raise ValueError("observations must be a non-empty 2-D array (n, obs_dim)")
    low = np.asarray(action_low, dtype=np.float64)
    high = np.asarray(action_high, dtype=np.float64)
    request = {"mode": "probe", "source": source, "observations": obs.tolist()}
    try:
        result = run_child(request, limits, disabled_walls)
    except ChildFailure as failure:
        return SandboxReport(reasons=(str(failure),), walls=failure.walls)
    if "error" in result:
        return SandboxReport(reasons=(_memory_detail(result, limits),), walls=result["walls"])
    return _judge_probe(result, low, high, limits, reject_out_of_bounds)


def _memory_detail(result: dict[str, Any], limits: SandboxLimits) -> str:
    if result.get("kind") == "memory":
        return f"{result['error']} (limit {limits.memory_mb:g} MB)"
    return str(result["error"])


def _judge_probe(
    result: dict[str, Any],
    low: np.ndarray,
    high: np.ndarray,
    limits: SandboxLimits,
    reject_out_of_bounds: bool,
) -> SandboxReport:
    reasons: list[str] = []
    actions = result["actions"]
    times_ms = 1000.0 * np.asarray(result["times"], dtype=np.float64)
    n = len(times_ms)
    values: list[np.ndarray] = []
    for i, entry in enumerate(actions):
        shape = tuple(entry["shape"])
        if shape != low.shape:
            reasons.append(f"observation #{i % n}: returned shape {shape}, expected {low.shape}")
            break
        action = np.asarray(entry["values"], dtype=np.float64).reshape(shape)
        if not np.isfinite(action).all():
            reasons.append(f"observation #{i % n}: returned a non-finite action {action.tolist()}")
            break
        values.append(action)
    clipped_fraction = 0.0
    notes: list[str] = []
    if not reasons:
        stacked = np.stack(values[:n])
        outside = (stacked < low) | (stacked > high)
        clipped_fraction = float(outside.mean())
        if outside.any():
            message = f"{100 * clipped_fraction:.1f}% of action values outside the bounds"
            if reject_out_of_bounds:
                reasons.append(message)
            else:
                notes.append(message + " (clipped)")
        if not np.array_equal(values[0], values[-1]):
            reasons.append("not deterministic: the same observation gave different actions")
    mean_ms = float(times_ms[1:].mean()) if n > 1 else float(times_ms.mean())  # the first call warms caches
    max_ms = float(times_ms.max())
    if mean_ms > limits.call_budget_ms:
        reasons.append(f"mean call time {mean_ms:.2f} ms exceeds the budget of {limits.call_budget_ms:g} ms")
    return SandboxReport(
        reasons=tuple(reasons),
        n_calls=n,
        mean_call_ms=mean_ms,
        max_call_ms=max_ms,
        clipped_fraction=clipped_fraction,
        notes=tuple(notes),
        walls=result["walls"],
    )
