"""A simulated robot's true state, logged beside its deploy log: what motion capture gives a real robot.

A LowState carries joints and IMU but not the base's position or linear velocity; ASAP's delta-action
stage resets the training simulator to recorded states and compares whole states (docs/asap.md), so a
simulated target logs them itself. A truth log is a folder (format `robolearn-sim-truth`, version
TRUTH_VERSION):

    meta.json   format, version, robot, source (bridge | mujoco), the mismatch it simulated (name and
                edits), physics_dt, the qpos/qvel layout (root and joint addresses, joints in motor
                order), the stream's dtype; at the end a summary (records, dropped)
    truth.bin   one record per state the simulator published (the sim bridge: every LowState, 500 Hz;
                the in-process backend: every state the runtime polled)

TRUTH fields: t (simulated time, s), tick (the LowState tick it published: round(t x 1000) mod 2^32,
the key that joins a deploy log's records), qpos and qvel (the whole MuJoCo state: free joint
position, quaternion w x y z, joint positions; world-frame linear and body-frame angular velocity,
joint velocities), applied_q, applied_kp, applied_kd (the command the motors acted on, after any
action delay, before the mismatch's gain scales) and torque (the last physics step's motor torques).
Records are written by robolearn.deploy.recorder's chunked writer thread, so the simulator's loop only
fills preallocated memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robolearn.deploy.recorder import RecordStream, _describe, dtype_from_description
from robolearn.errors import UserError
from robolearn.utils.io import atomic_write_json

if TYPE_CHECKING:
    from robolearn.deploy.simulation import RobotSimulation

TRUTH_FORMAT = "robolearn-sim-truth"
TRUTH_VERSION = 1
TRUTH_META = "meta.json"
TRUTH_FILE = "truth.bin"


def truth_dtype(nq: int, nv: int, num_joints: int) -> np.dtype:
    """Record layout of truth.bin."""
    n = (num_joints,)
    return np.dtype(
        [
            ("t", "<f8"),
            ("tick", "<u4"),
            ("qpos", "<f8", (nq,)),
            ("qvel", "<f8", (nv,)),
            ("applied_q", "<f4", n),
            ("applied_kp", "<f4", n),
            ("applied_kd", "<f4", n),
            ("torque", "<f4", n),
        ]
    )


class TruthRecorder:
    """Writes one truth log folder for a RobotSimulation."""

    def __init__(self, folder: str | Path, sim: RobotSimulation, source: str, chunk: int = 512) -> None:
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / TRUTH_META).exists():
            raise UserError(f"{self.folder} already holds a truth log; choose a new folder")
        self.sim = sim
        m, idx = sim.model, sim.index
        dtype = truth_dtype(m.nq, m.nv, sim.spec.num_joints)
        target = sim.mismatch
        self.meta: dict[str, Any] = {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "robot": sim.spec.name,
            "source": source,
            "mismatch": {"name": target.name, "edits": [e.to_dict() for e in target.edits]},
            "physics_dt": sim.physics_dt,
            "layout": {
                "nq": int(m.nq),
                "nv": int(m.nv),
                "root_qpos_adr": int(idx.root_qpos_adr),
                "root_qvel_adr": int(idx.root_qvel_adr),
                "joint_qpos_adr": [int(a) for a in idx.qpos_adr],
                "joint_qvel_adr": [int(a) for a in idx.qvel_adr],
                "joint_names": list(sim.spec.joint_names),
            },
            "stream": {"file": TRUTH_FILE, "dtype": _describe(dtype)},
        }
        atomic_write_json(self.folder / TRUTH_META, self.meta)
        self.stream = RecordStream(self.folder / TRUTH_FILE, dtype, chunk)

    def record(self) -> None:
        """Append the simulator's state now (the state just published)."""
        rec = self.stream.next()
        if rec is None:
            return
        d = self.sim.data
        q, kp, kd, _, _ = self.sim.applied_command
        rec["t"] = d.time
        rec["tick"] = round(d.time * 1000) & 0xFFFFFFFF
        rec["qpos"] = d.qpos
        rec["qvel"] = d.qvel
        rec["applied_q"] = q
        rec["applied_kp"] = kp
        rec["applied_kd"] = kd
        rec["torque"] = self.sim.torque

    def close(self) -> None:
        """Flush the stream and add the summary to meta.json."""
        self.stream.close()
        summary = {"records": self.stream.written, "dropped": self.stream.dropped}
        atomic_write_json(self.folder / TRUTH_META, {**self.meta, "summary": summary})


@dataclass(frozen=True)
class TruthLog:
    """A truth log read back: meta and the records."""

    meta: dict[str, Any]
    records: np.ndarray


def read_truth(folder: str | Path) -> TruthLog:
    """Read a truth log folder; one-line UserError when it is not one or has another version."""
    root = Path(folder).expanduser()
    meta_path = root / TRUTH_META
    if not meta_path.is_file():
        raise UserError(
            f"{folder} is not a truth log (no {TRUTH_META}); a simulated target writes one with"
            " bridge.record_truth=<folder> or, in process, record.dir=<folder> (its truth/ folder)"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != TRUTH_FORMAT or meta.get("version") != TRUTH_VERSION:
        raise UserError(
            f"{meta_path}: format {meta.get('format')} v{meta.get('version')} is not {TRUTH_FORMAT} v{TRUTH_VERSION}"
        )
    dtype = dtype_from_description(meta["stream"]["dtype"])
    path = root / meta["stream"]["file"]
    raw = path.read_bytes() if path.is_file() else b""
    whole = len(raw) // dtype.itemsize * dtype.itemsize  # a killed run may leave a torn record
    return TruthLog(meta, np.frombuffer(raw[:whole], dtype=dtype))
