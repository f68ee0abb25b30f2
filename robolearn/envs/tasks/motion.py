"""Reference motion clips: the npz format, its loader, forward kinematics, and generated G1 clips.

Clip format (one `.npz` per clip, format_version 1):

| key | shape / type | meaning |
|---|---|---|
| `format_version` | int | 1 |
| `robot` | str | robot registry name (`g1`) |
| `fps` | float | frames per second |
| `joint_names` | (nj,) str | joint order of `joint_pos` (any order; the loader maps it to the spec's) |
| `joint_pos` | (T, nj) float | joint angles, rad |
| `root_pos` | (T, 3) float | base (pelvis) position in the world, m |
| `root_quat` | (T, 4) float | base orientation, w x y z |
| `periodic` | bool | frame T would equal frame 0, so the clip loops seamlessly |

Body poses and all velocities are not stored: `reference_kinematics` derives them from the model
by forward kinematics and finite differences, so a clip stays a few kilobytes.

Motion-capture data cannot be downloaded here, so the shipped clips (envs/g1/motions/) are made
by `generate_g1_clips`: `python -m robolearn.envs.tasks.motion [out_dir]` rewrites them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robolearn.envs.tasks.rotations import quat_conjugate, quat_multiply
from robolearn.errors import UserError
from robolearn.resources import envs_dir
from robolearn.robots.model import joint_index_map
from robolearn.robots.spec import RobotSpec
from robolearn.utils.io import read_npz

CLIP_FORMAT_VERSION = 1
_KEYS = ("format_version", "robot", "fps", "joint_names", "joint_pos", "root_pos", "root_quat", "periodic")


@dataclass(frozen=True)
class MotionClip:
    """One reference motion: joint angles and root pose per frame."""

    name: str
    robot: str
    fps: float
    joint_names: tuple[str, ...]
    joint_pos: np.ndarray  # (T, nj)
    root_pos: np.ndarray  # (T, 3)
    root_quat: np.ndarray  # (T, 4) w x y z
    periodic: bool

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.joint_pos.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered (T / fps)."""
        return self.num_frames / self.fps

    def in_spec_order(self, spec: RobotSpec) -> MotionClip:
        """The same clip with joint_pos columns in the spec's motor order; UserError on missing joints."""
        missing = [j for j in spec.joint_names if j not in self.joint_names]
        if missing:
            raise UserError(
                f"motion clip '{self.name}' has no joint(s) {', '.join(missing)} of the {spec.name} spec"
            )
        cols = [self.joint_names.index(j) for j in spec.joint_names]
        return MotionClip(
            self.name,
            self.robot,
            self.fps,
            spec.joint_names,
            self.joint_pos[:, cols],
            self.root_pos,
            self.root_quat,
            self.periodic,
        )


def save_clip(path: str | Path, clip: MotionClip) -> None:
    """Write a clip as compressed npz (float32 arrays: a 4 s, 50 fps G1 clip is about 20 kB)."""
    np.savez_compressed(
        Path(path),
        format_version=np.int64(CLIP_FORMAT_VERSION),
        robot=np.str_(clip.robot),
        fps=np.float64(clip.fps),
        joint_names=np.array(clip.joint_names),
        joint_pos=clip.joint_pos.astype(np.float32),
        root_pos=clip.root_pos.astype(np.float32),
        root_quat=clip.root_quat.astype(np.float32),
        periodic=np.bool_(clip.periodic),
    )


def load_clip(path: str | Path) -> MotionClip:
    """Read and check a clip file; UserError naming the file and the problem."""
    path = Path(path)
    data = read_npz(path, _KEYS, "motion clip")
    if int(data["format_version"]) != CLIP_FORMAT_VERSION:
        raise UserError(
            f"motion clip {path} has format_version {int(data['format_version'])}, expected {CLIP_FORMAT_VERSION}"
        )
    joint_pos = np.asarray(data["joint_pos"], dtype=np.float64)
    root_pos = np.asarray(data["root_pos"], dtype=np.float64)
    root_quat = np.asarray(data["root_quat"], dtype=np.float64)
    names = tuple(str(n) for n in data["joint_names"])
    frames = joint_pos.shape[0] if joint_pos.ndim == 2 else -1
    if frames < 2 or joint_pos.shape[1] != len(names):
        raise UserError(
            f"motion clip {path}: joint_pos must be (T >= 2, {len(names)}), got {joint_pos.shape}"
        )
    if root_pos.shape != (frames, 3) or root_quat.shape != (frames, 4):
        raise UserError(f"motion clip {path}: root_pos/root_quat must be ({frames}, 3)/({frames}, 4)")
    fps = float(data["fps"])
    if not (np.isfinite(fps) and fps > 0):
        raise UserError(f"motion clip {path}: fps must be positive, got {fps}")
    if not all(np.isfinite(a).all() for a in (joint_pos, root_pos, root_quat)):
        raise UserError(f"motion clip {path} contains non-finite values")
    norms = np.linalg.norm(root_quat, axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-3):
        raise UserError(f"motion clip {path}: root_quat rows must be unit quaternions")
    return MotionClip(
        name=path.stem,
        robot=str(data["robot"]),
        fps=fps,
        joint_names=names,
        joint_pos=joint_pos,
        root_pos=root_pos,
        root_quat=root_quat / norms[:, None],
        periodic=bool(data["periodic"]),
    )


def default_clip_paths(robot: str = "g1") -> list[Path]:
    """The clips shipped in envs/<robot>/motions/, sorted by name."""
    return sorted((envs_dir() / robot / "motions").glob("*.npz"))


@dataclass(frozen=True)
class ReferenceMotion:
    """A clip with everything a tracking task compares against, per frame (T, ...)."""

    clip: MotionClip
    joint_pos: np.ndarray  # (T, nj) spec order
    joint_vel: np.ndarray  # (T, nj)
    root_pos: np.ndarray  # (T, 3)
    root_quat: np.ndarray  # (T, 4)
    root_lin_vel: np.ndarray  # (T, 3) world
    root_ang_vel: np.ndarray  # (T, 3) body frame
    body_pos: np.ndarray  # (T, nb, 3) world
    body_quat: np.ndarray  # (T, nb, 4)
    body_lin_vel: np.ndarray  # (T, nb, 3) world
    body_ang_vel: np.ndarray  # (T, nb, 3) world


def _diff(x: np.ndarray, dt: float, periodic: bool) -> np.ndarray:
    """Time derivative by central differences (wrapping for periodic clips)."""
    if periodic:
        return (np.roll(x, -1, axis=0) - np.roll(x, 1, axis=0)) / (2.0 * dt)
    return np.gradient(x, dt, axis=0)


def _angular_velocity(quat: np.ndarray, dt: float, periodic: bool) -> np.ndarray:
    """World-frame angular velocity of a (T, ..., 4) quaternion track, by central differences."""
    nxt = np.roll(quat, -1, axis=0) if periodic else np.concatenate((quat[1:], quat[-1:]), axis=0)
    prv = np.roll(quat, 1, axis=0) if periodic else np.concatenate((quat[:1], quat[:-1]), axis=0)
    span = np.full(quat.shape[0], 2.0 * dt)
    if not periodic:
        span[0] = span[-1] = dt
    delta = quat_multiply(nxt, quat_conjugate(prv))
    delta *= np.where(delta[..., :1] < 0.0, -1.0, 1.0)  # shortest way round
    sin_half = np.linalg.norm(delta[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, delta[..., :1])
    axis = delta[..., 1:] / np.maximum(sin_half, 1e-12)
    return axis * angle / span.reshape((-1,) + (1,) * (quat.ndim - 1))


def reference_kinematics(
    model: mujoco.MjModel, spec: RobotSpec, clip: MotionClip, bodies: Sequence[str]
) -> ReferenceMotion:
    """Forward kinematics of every frame, and velocities by finite differences."""
    clip = clip.in_spec_order(spec)
    index = joint_index_map(model, spec)
    body_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in bodies]
    if min(body_ids, default=0) < 0:
        raise UserError(f"the {spec.name} model lacks a body of {list(bodies)}")
    data = mujoco.MjData(model)
    frames = clip.num_frames
    body_pos = np.zeros((frames, len(body_ids), 3))
    body_quat = np.zeros((frames, len(body_ids), 4))
    r = index.root_qpos_adr
    for t in range(frames):
        data.qpos[:] = model.qpos0
        data.qpos[r : r + 3] = clip.root_pos[t]
        data.qpos[r + 3 : r + 7] = clip.root_quat[t]
        data.qpos[index.qpos_adr] = clip.joint_pos[t]
        mujoco.mj_kinematics(model, data)
        body_pos[t] = data.xpos[body_ids]
        body_quat[t] = data.xquat[body_ids]
    dt = 1.0 / clip.fps
    root_ang_world = _angular_velocity(clip.root_quat, dt, clip.periodic)
    from robolearn.robots.observations import quat_rotate_inverse

    return ReferenceMotion(
        clip=clip,
        joint_pos=clip.joint_pos,
        joint_vel=_diff(clip.joint_pos, dt, clip.periodic),
        root_pos=clip.root_pos,
        root_quat=clip.root_quat,
        root_lin_vel=_diff(clip.root_pos, dt, clip.periodic),
        root_ang_vel=quat_rotate_inverse(clip.root_quat, root_ang_world),
        body_pos=body_pos,
        body_quat=body_quat,
        body_lin_vel=_diff(body_pos, dt, clip.periodic),
        body_ang_vel=_angular_velocity(body_quat, dt, clip.periodic),
    )


# -- generated G1 clips ----------------------------------------------------------------------------
CLIP_FPS = 50.0


def _offsets(spec: RobotSpec, t: np.ndarray, moves: Mapping[str, np.ndarray]) -> np.ndarray:
    """Joint angles: the default pose plus per-joint offset tracks, clipped to the joint ranges."""
    q = np.repeat(spec.default_pos_array[None], len(t), axis=0)
    for name, track in moves.items():
        q[:, spec.joint_names.index(name)] += track
    return np.clip(q, spec.joint_pos_lower, spec.joint_pos_upper)


def _pin_feet(
    model: mujoco.MjModel, spec: RobotSpec, joint_pos: np.ndarray, stance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Root positions (level root) that keep the stance foot where it stood at frame 0, sole on the floor.

    stance[t] is 0 or 1 (that foot carries the robot) or -1 (both: their midpoint is pinned).
    """
    index = joint_index_map(model, spec)
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in spec.foot_bodies]
    data = mujoco.MjData(model)
    r = index.root_qpos_adr

    def feet_at(q: np.ndarray) -> np.ndarray:
        data.qpos[:] = model.qpos0
        data.qpos[r : r + 7] = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
        data.qpos[index.qpos_adr] = q
        mujoco.mj_kinematics(model, data)
        return data.xpos[feet].copy()

    standing = feet_at(spec.default_pos_array)
    # Feet in the world standing at the default pose, base at base_height: what each stance keeps.
    anchor_world = standing + np.array([0.0, 0.0, spec.base_height])
    root = np.zeros((len(joint_pos), 3))
    for t, q in enumerate(joint_pos):
        rel = feet_at(q)
        if stance[t] < 0:
            root[t] = anchor_world.mean(axis=0) - rel.mean(axis=0)
        else:
            root[t] = anchor_world[stance[t]] - rel[stance[t]]
    return root, np.tile([1.0, 0.0, 0.0, 0.0], (len(joint_pos), 1))


def _squat(spec: RobotSpec, t: np.ndarray, period: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    s = 0.5 * (1.0 - np.cos(2 * np.pi * t / period))  # 0 standing .. 1 deepest
    moves = {}
    for side in ("left", "right"):
        moves[f"{side}_hip_pitch_joint"] = -0.55 * s
        moves[f"{side}_knee_joint"] = 1.1 * s
        moves[f"{side}_ankle_pitch_joint"] = -0.55 * s
        moves[f"{side}_shoulder_pitch_joint"] = -0.6 * s  # arms forward, for balance
    return moves, np.full(len(t), -1)


def _arm_swing(spec: RobotSpec, t: np.ndarray, period: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    w = np.sin(2 * np.pi * t / period)
    moves = {
        "left_shoulder_pitch_joint": 0.6 * w,
        "right_shoulder_pitch_joint": -0.6 * w,
        "left_elbow_joint": 0.3 * w,
        "right_elbow_joint": -0.3 * w,
        "waist_yaw_joint": 0.2 * w,
    }
    return moves, np.full(len(t), -1)


def _weight_shift(spec: RobotSpec, t: np.ndarray, period: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    r = 0.1 * np.sin(2 * np.pi * t / period)
    moves = {}
    for side in ("left", "right"):
        # Same hip roll on both legs and the opposite ankle roll: a parallelogram, soles stay flat.
        moves[f"{side}_hip_roll_joint"] = r
        moves[f"{side}_ankle_roll_joint"] = -r
    return moves, np.full(len(t), -1)


def _stepping(spec: RobotSpec, t: np.ndarray, period: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    phase = np.sin(2 * np.pi * t / period)
    lift = {"left": np.clip(phase, 0.0, None), "right": np.clip(-phase, 0.0, None)}
    sway = 0.06 * phase  # lean over the stance foot
    moves = {}
    for side in ("left", "right"):
        moves[f"{side}_hip_pitch_joint"] = -0.35 * lift[side]
        moves[f"{side}_knee_joint"] = 0.7 * lift[side]
        moves[f"{side}_ankle_pitch_joint"] = -0.35 * lift[side]
        moves[f"{side}_hip_roll_joint"] = sway
        moves[f"{side}_ankle_roll_joint"] = -sway
    # Foot 0 is the left (spec.foot_bodies); the right foot carries the robot while the left lifts.
    stance = np.where(phase > 1e-6, 1, np.where(phase < -1e-6, 0, -1))
    return moves, stance


# name -> (generator, period s, number of periods)
_G1_CLIPS: dict[str, tuple[Callable[..., tuple[dict[str, np.ndarray], np.ndarray]], float, int]] = {
    "squat": (_squat, 4.0, 1),
    "arm_swing": (_arm_swing, 2.0, 2),
    "weight_shift": (_weight_shift, 4.0, 1),
    "stepping": (_stepping, 1.2, 3),
}


def generate_g1_clips(model: mujoco.MjModel, spec: RobotSpec) -> dict[str, MotionClip]:
    """The four procedural G1 clips (squat, arm swing, weight shift, stepping in place), periodic, 50 fps."""
    clips = {}
    for name, (make, period, cycles) in _G1_CLIPS.items():
        frames = round(period * cycles * CLIP_FPS)
        t = np.arange(frames) / CLIP_FPS
        moves, stance = make(spec, t, period)
        joint_pos = _offsets(spec, t, moves)
        root_pos, root_quat = _pin_feet(model, spec, joint_pos, stance)
        clips[name] = MotionClip(
            name, spec.name, CLIP_FPS, spec.joint_names, joint_pos, root_pos, root_quat, True
        )
    return clips


def write_g1_clips(out_dir: str | Path | None = None) -> list[Path]:
    """Generate the G1 clips and write them (default envs/g1/motions/); returns the paths."""
    from robolearn.robots.g1 import G1_SPEC
    from robolearn.robots.model import load_model

    out = Path(out_dir) if out_dir is not None else envs_dir() / "g1" / "motions"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, clip in generate_g1_clips(load_model(G1_SPEC), G1_SPEC).items():
        path = out / f"{name}.npz"
        save_clip(path, clip)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_g1_clips(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"wrote {written} ({written.stat().st_size} bytes)")
