"""The deploy log: every command tick and every policy step, in a documented, versioned format.

A log is a folder (format `robolearn-deploy-log`, version LOG_VERSION):

    meta.json      format, version, created, robot (RobotSpec), contract (or null), config, the
                   stream layouts (numpy dtype descriptions) and rates, and at the end a summary
                   (with outcome, exit_code, stop_reason, error and first_fault)
    control.bin    one fixed-size little-endian record per command tick (CONTROL fields below)
    policy.bin     one record per policy step (POLICY fields below)
    events.jsonl   one JSON object per line: transitions, faults (t, utc, reason, state), refused
                   requests, the stop, and last the end (outcome, exit_code, stop_reason, error,
                   first_fault) as the deploy verb writes it

Records are appended in chunks by a writer thread, so the control loop only fills preallocated
memory; a killed run leaves whole chunks, and read_log() ignores a torn final record. Read a stream
with numpy alone: `np.fromfile("control.bin", dtype=np.dtype(meta["streams"]["control"]["dtype"]))`
(the dtype is stored as a list of [name, type, shape]).

CONTROL: t (command send time, monotonic s), t_state (arrival of the state used), tick (the robot's),
safety (SafetyState code), kind (CommandKind), limited (joints the limiter changed), lateness and
period_error (s), joint_pos, joint_vel, base_quat (w x y z), gyro, command (vx, vy, yaw rate), cmd_q,
cmd_kp, cmd_kd (what was sent), policy_step (the action in use, -1 none).
POLICY: t (inference start), step, tick (of the state observed; version 2 on), safety, period_error, inference_s, the RobotState the observation
was built from (joint_pos, joint_vel, base_quat, gyro, command, last_action), obs (the frame),
policy_input (after history and normalisation), action_raw (network output in robot order: a
policy_joints policy's values scattered, 0 on the other joints), action (after the contract's clip).
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import UserError
from robolearn.utils.io import atomic_write_json

LOG_FORMAT = "robolearn-deploy-log"
LOG_VERSION = 2  # 2: POLICY records carry the tick of the state they observed
READABLE_VERSIONS = (1, 2)
META_FILE = "meta.json"
EVENTS_FILE = "events.jsonl"


def control_dtype(num_joints: int) -> np.dtype:
    """Record layout of control.bin."""
    n = (num_joints,)
    return np.dtype(
        [
            ("t", "<f8"),
            ("t_state", "<f8"),
            ("tick", "<u4"),
            ("safety", "u1"),
            ("kind", "u1"),
            ("limited", "<u2"),
            ("lateness", "<f4"),
            ("period_error", "<f4"),
            ("joint_pos", "<f4", n),
            ("joint_vel", "<f4", n),
            ("base_quat", "<f4", (4,)),
            ("gyro", "<f4", (3,)),
            ("command", "<f4", (3,)),
            ("cmd_q", "<f4", n),
            ("cmd_kp", "<f4", n),
            ("cmd_kd", "<f4", n),
            ("policy_step", "<i4"),
        ]
    )


def policy_dtype(num_joints: int, frame_size: int, input_size: int) -> np.dtype:
    """Record layout of policy.bin."""
    return np.dtype(
        [
            ("t", "<f8"),
            ("step", "<i4"),
            ("tick", "<u4"),
            ("safety", "u1"),
            ("period_error", "<f4"),
            ("inference_s", "<f4"),
            ("joint_pos", "<f4", (num_joints,)),
            ("joint_vel", "<f4", (num_joints,)),
            ("base_quat", "<f4", (4,)),
            ("gyro", "<f4", (3,)),
            ("command", "<f8", (3,)),
            ("last_action", "<f8", (num_joints,)),
            ("obs", "<f4", (frame_size,)),
            ("policy_input", "<f4", (input_size,)),
            ("action_raw", "<f4", (num_joints,)),
            ("action", "<f4", (num_joints,)),
        ]
    )


def _describe(dtype: np.dtype) -> list[list[Any]]:
    assert dtype.fields is not None
    out = []
    for name in dtype.names or ():
        sub = dtype.fields[name][0]
        base = sub.base if sub.shape else sub
        out.append([name, base.str, list(sub.shape)])
    return out


def dtype_from_description(desc: list[list[Any]]) -> np.dtype:
    """The numpy dtype a meta.json stream description stands for."""
    return np.dtype(
        [
            (str(name), str(kind), tuple(shape)) if shape else (str(name), str(kind))
            for name, kind, shape in desc
        ]
    )


class RecordStream:
    """Appends fixed-size records to a file from one thread, writing chunks from another."""

    def __init__(self, path: Path, dtype: np.dtype, chunk: int = 512, buffers: int = 4) -> None:
        self.path = path
        self.dtype = dtype
        self.chunk = int(chunk)
        self._buffers = [np.zeros(self.chunk, dtype=dtype) for _ in range(buffers)]
        for buffer in self._buffers:
            # Touch every page now: calloc'd memory would otherwise be faulted in (and counted as
            # growing memory) while the control loop fills the buffers for the first time.
            buffer.view(np.uint8)[:] = 0
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(1, buffers):
            self._free.put(i)
        self._full: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._current: int | None = 0
        self._pos = 0
        self.dropped = 0
        self.written = 0
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self._thread = threading.Thread(target=self._write_loop, name=f"log-{path.stem}", daemon=True)
        self._thread.start()

    def next(self) -> np.ndarray | None:
        """A zeroed record slot to fill in place, or None when every buffer is waiting for the disk."""
        if self._current is not None and self._pos == self.chunk:
            self._full.put((self._current, self._pos))
            self._current, self._pos = None, 0
        if self._current is None:
            try:
                self._current = self._free.get_nowait()
            except queue.Empty:
                self.dropped += 1
                return None
        slot = self._buffers[self._current][self._pos : self._pos + 1]
        slot[...] = 0  # a reused buffer still holds an old record; clear just this one
        self._pos += 1
        return slot

    def _write_loop(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            index, count = item
            # Straight from the buffer (no copy): a fresh multi-100-kB bytes object per chunk is an
            # mmap/munmap pair whose TLB shootdown stalls the control thread on the other core.
            self._file.write(self._buffers[index][:count].data)
            self.written += count
            self._free.put(index)

    def close(self) -> None:
        """Write what is buffered and close the file."""
        if self._current is not None and self._pos:
            self._full.put((self._current, self._pos))
            self._current = None
        self._full.put(None)
        self._thread.join()
        self._file.close()


class Recorder:
    """Writes one deploy log folder."""

    def __init__(
        self,
        folder: str | Path,
        meta: dict[str, Any],
        num_joints: int,
        frame_size: int,
        input_size: int,
        chunk: int = 512,
        buffers: int = 4,
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / META_FILE).exists():
            raise UserError(f"record.dir={folder} already holds a deploy log; choose a new folder")
        c_dtype = control_dtype(num_joints)
        p_dtype = policy_dtype(num_joints, frame_size, input_size)
        self.meta = {
            "format": LOG_FORMAT,
            "version": LOG_VERSION,
            **meta,
            "streams": {
                "control": {"file": "control.bin", "dtype": _describe(c_dtype)},
                "policy": {"file": "policy.bin", "dtype": _describe(p_dtype)},
            },
        }
        atomic_write_json(self.folder / META_FILE, self.meta)
        self.control = RecordStream(self.folder / "control.bin", c_dtype, chunk, buffers)
        self.policy = RecordStream(self.folder / "policy.bin", p_dtype, max(16, chunk // 10), buffers)
        self._events = open(self.folder / EVENTS_FILE, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._lock = threading.Lock()

    def event(self, **fields: Any) -> None:
        """Append one event line (thread-safe)."""
        with self._lock:
            self._events.write(json.dumps(fields, default=str) + "\n")

    def close(self, summary: dict[str, Any]) -> None:
        """Flush the streams and add the summary to meta.json."""
        self.control.close()
        self.policy.close()
        summary = {
            **summary,
            "dropped_records": {"control": self.control.dropped, "policy": self.policy.dropped},
        }
        with self._lock:
            self._events.close()
        atomic_write_json(self.folder / META_FILE, {**self.meta, "summary": summary})


@dataclass(frozen=True)
class DeployLog:
    """A log read back: meta, the two streams as structured arrays, and the events."""

    meta: dict[str, Any]
    control: np.ndarray
    policy: np.ndarray
    events: list[dict[str, Any]]


def read_log(folder: str | Path) -> DeployLog:
    """Read a deploy log folder; UserError when it is not one or has another version."""
    root = Path(folder).expanduser()
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise UserError(f"{folder} is not a deploy log (no {META_FILE}); record one with record.dir=<folder>")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != LOG_FORMAT or meta.get("version") not in READABLE_VERSIONS:
        raise UserError(
            f"{meta_path}: format {meta.get('format')} v{meta.get('version')} is not {LOG_FORMAT}"
            f" v{' or v'.join(str(v) for v in READABLE_VERSIONS)}"
        )
    streams = {}
    for name, info in meta["streams"].items():
        dtype = dtype_from_description(info["dtype"])
        raw = (root / info["file"]).read_bytes() if (root / info["file"]).is_file() else b""
        whole = len(raw) // dtype.itemsize * dtype.itemsize  # a killed run may leave a torn record
        streams[name] = np.frombuffer(raw[:whole], dtype=dtype)
    events = []
    events_path = root / EVENTS_FILE
    if events_path.is_file():
        for line in events_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    return DeployLog(meta, streams["control"], streams["policy"], events)
