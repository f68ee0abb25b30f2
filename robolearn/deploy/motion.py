"""The reference motion a tracking policy follows, shipped in its artifact and played by the runtime.

A policy whose observation has motion_* terms (robolearn.robots.observations; the G1 tracking task)
reads, every step, the reference's joint positions and velocities and its anchor body's orientation.
Export writes the clips the policy was trained on into the artifact as `motion.npz` (MOTION_FILE),
already in the robot's motor order and with the anchor's world orientation from forward kinematics,
so the runtime needs no MuJoCo to play them:

| key | shape | what |
|---|---|---|
| `format_version` | () | MOTION_VERSION |
| `names` | (C,) | clip names |
| `fps`, `periodic`, `frames` | (C,) | frames per second, whether it loops, frames of each clip |
| `joint_pos`, `joint_vel` | (C, T, n) | reference joints (motor order, rad and rad/s), padded to the longest |
| `root_quat`, `anchor_quat` | (C, T, 4) | the root's and the anchor body's world orientation (w x y z) |

contract.json's `motion` entry names the file, the anchor body and the clips (with fps, frames and
periodic), so a reader knows what the npz must hold before loading it.

MotionPlayer plays one clip as the tracking env does: the policy's k-th step of a POLICY segment reads
frame floor(k * control_dt * fps) (looping a periodic clip, holding a finished one's last frame, where
the env would have ended the episode). The training env starts each episode in the reference's own
state, heading included; a robot starts wherever it faces, so the player turns the whole reference
about the vertical by the robot's heading minus the clip's first root heading, fixed at the segment's
first step (BeyondMimic's deploy aligns the reference's yaw the same way).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import UserError, close_matches
from robolearn.robots.rotations import quat_from_yaw, quat_multiply, yaw_of
from robolearn.robots.spec import RobotSpec
from robolearn.robots.state import MotionFrame
from robolearn.utils.io import atomic_save_with, read_npz

MOTION_FILE = "motion.npz"
MOTION_VERSION = 1
MOTION_ARRAYS = ("joint_pos", "joint_vel", "root_quat", "anchor_quat")
MOTION_KEYS = ("format_version", "names", "anchor_body", "fps", "periodic", "frames", *MOTION_ARRAYS)


@dataclass(frozen=True)
class MotionTrack:
    """One clip, ready to play: per-frame reference joints and orientations."""

    name: str
    fps: float
    periodic: bool
    joint_pos: np.ndarray  # (T, n) motor order
    joint_vel: np.ndarray  # (T, n)
    root_quat: np.ndarray  # (T, 4) world
    anchor_quat: np.ndarray  # (T, 4) world

    @property
    def frames(self) -> int:
        """Frames in the clip."""
        return int(self.joint_pos.shape[0])

    def frame_index(self, steps: int, control_dt: float) -> int:
        """The frame the policy's `steps`-th step of a segment reads (the tracking env's rule)."""
        raw = int(np.floor(steps * control_dt * self.fps + 1e-6))
        return raw % self.frames if self.periodic else min(raw, self.frames - 1)


@dataclass(frozen=True)
class MotionLibrary:
    """The clips of an artifact and the body whose orientation the policy observes."""

    tracks: tuple[MotionTrack, ...]
    anchor_body: str

    @property
    def names(self) -> tuple[str, ...]:
        """Clip names, in the file's order."""
        return tuple(t.name for t in self.tracks)

    def track(self, name: str | None) -> MotionTrack:
        """The clip called name (None: the first); a one-line error names the clips there are."""
        if name is None:
            return self.tracks[0]
        for t in self.tracks:
            if t.name == name:
                return t
        raise UserError(
            f"motion_clip={name} is not in the policy's motion file{close_matches(name, self.names)};"
            f" its clips: {', '.join(self.names)}"
        )

    def describe(self) -> dict[str, Any]:
        """contract.json's `motion` entry."""
        return {
            "file": MOTION_FILE,
            "format_version": MOTION_VERSION,
            "anchor_body": self.anchor_body,
            "clips": [
                {"name": t.name, "fps": t.fps, "frames": t.frames, "periodic": t.periodic}
                for t in self.tracks
            ],
        }


def write_motion(path: Path, library: MotionLibrary) -> None:
    """Write the library as MOTION_FILE's layout (atomically: a temporary file renamed into place)."""
    tracks = library.tracks
    longest = max(t.frames for t in tracks)

    def padded(field: str) -> np.ndarray:
        rows = []
        for t in tracks:
            value = getattr(t, field)
            pad = np.repeat(value[-1:], longest - t.frames, axis=0)
            rows.append(np.concatenate((value, pad), axis=0))
        return np.stack(rows).astype(np.float64)

    arrays = {
        "format_version": np.array(MOTION_VERSION),
        "names": np.array([t.name for t in tracks]),
        "anchor_body": np.array(library.anchor_body),
        "fps": np.array([t.fps for t in tracks], dtype=np.float64),
        "periodic": np.array([t.periodic for t in tracks]),
        "frames": np.array([t.frames for t in tracks], dtype=np.int64),
        **{f: padded(f) for f in MOTION_ARRAYS},
    }
    atomic_save_with(path, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]


def load_motion(path: Path, spec: RobotSpec, described: Mapping[str, Any] | None = None) -> MotionLibrary:
    """Read and check a motion file for this robot (and against contract.json's description)."""
    raw = read_npz(path, MOTION_KEYS, "motion file", "the policy tracks a reference motion: re-export it")
    if int(raw["format_version"]) != MOTION_VERSION:
        raise UserError(
            f"{path} is motion format {int(raw['format_version'])}; this robolearn reads {MOTION_VERSION}"
            " (re-export the policy)"
        )
    names = [str(n) for n in raw["names"]]
    count, n = len(names), spec.num_joints
    longest = int(raw["joint_pos"].shape[1]) if raw["joint_pos"].ndim == 3 else -1
    for key, tail in (("joint_pos", n), ("joint_vel", n), ("root_quat", 4), ("anchor_quat", 4)):
        value = raw[key]
        if value.shape != (count, longest, tail) or not np.isfinite(value).all():
            raise UserError(
                f"{path}: {key} has shape {value.shape}, expected ({count}, frames, {tail}) of finite values"
                f" for {spec.name}; re-export the policy"
            )
    frames = raw["frames"].astype(np.int64)
    if count == 0 or frames.shape != (count,) or (frames < 1).any() or (frames > longest).any():
        raise UserError(f"{path}: frames {frames.tolist()} do not fit the arrays; re-export the policy")
    tracks = tuple(
        MotionTrack(
            name=names[c],
            fps=float(raw["fps"][c]),
            periodic=bool(raw["periodic"][c]),
            joint_pos=raw["joint_pos"][c, : frames[c]],
            joint_vel=raw["joint_vel"][c, : frames[c]],
            root_quat=raw["root_quat"][c, : frames[c]],
            anchor_quat=raw["anchor_quat"][c, : frames[c]],
        )
        for c in range(count)
    )
    library = MotionLibrary(tracks=tracks, anchor_body=str(raw["anchor_body"]))
    if described is not None:
        mine = library.describe()
        for key in ("anchor_body", "clips"):
            if described.get(key) != mine[key]:
                raise UserError(f"{path} does not match contract.json's motion.{key}; re-export the policy")
    return library


def library_from_references(references: Sequence[Any], anchor_index: int, anchor_body: str) -> MotionLibrary:
    """A MotionLibrary from the tracking env's ReferenceMotions (spec-order joints, FK orientations)."""
    return MotionLibrary(
        tracks=tuple(
            MotionTrack(
                name=r.clip.name,
                fps=float(r.clip.fps),
                periodic=bool(r.clip.periodic),
                joint_pos=np.asarray(r.joint_pos, dtype=np.float64),
                joint_vel=np.asarray(r.joint_vel, dtype=np.float64),
                root_quat=np.asarray(r.root_quat, dtype=np.float64),
                anchor_quat=np.asarray(r.body_quat[:, anchor_index], dtype=np.float64),
            )
            for r in references
        ),
        anchor_body=anchor_body,
    )


class MotionPlayer:
    """Plays one clip for a POLICY segment, turned to the robot's heading at the segment's start."""

    def __init__(self, track: MotionTrack, control_dt: float) -> None:
        self.track = track
        self.control_dt = float(control_dt)
        self._turn: np.ndarray | None = None

    def start(self, base_quat: np.ndarray) -> None:
        """A new segment: align the clip's first root heading with the robot's current one."""
        offset = yaw_of(np.asarray(base_quat, dtype=np.float64)) - yaw_of(self.track.root_quat[0])
        self._turn = quat_from_yaw(offset)

    def joint_pos(self, steps: int) -> np.ndarray:
        """The reference's joint positions (motor order) at the policy's `steps`-th step of the segment."""
        return self.track.joint_pos[self.track.frame_index(steps, self.control_dt)]

    def frame(self, steps: int) -> MotionFrame:
        """The reference the policy's `steps`-th step of the segment observes."""
        if self._turn is None:
            raise UserError("MotionPlayer.frame before start(): a segment starts with the robot's heading")
        i = self.track.frame_index(steps, self.control_dt)
        return MotionFrame(
            joint_pos=self.track.joint_pos[i],
            joint_vel=self.track.joint_vel[i],
            anchor_quat=quat_multiply(self._turn, self.track.anchor_quat[i]),
        )
