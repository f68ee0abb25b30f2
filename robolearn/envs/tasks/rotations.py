"""Batched quaternion helpers (w x y z, body to world) for task logic; numpy, any leading shape."""

from __future__ import annotations

import numpy as np

from robolearn.robots.observations import quat_rotate_inverse

__all__ = [
    "gravity_in_body",
    "quat_angle_between",
    "quat_conjugate",
    "quat_from_yaw",
    "quat_multiply",
    "quat_rotate",
    "quat_rotate_inverse",
    "quat_rotate_inverse_rows",
    "quat_to_matrix",
    "yaw_of",
]


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse rotation of unit quaternions."""
    out = np.array(q, dtype=np.float64)
    out[..., 1:] *= -1.0
    return out


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b, then a)."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        axis=-1,
    )


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate body-frame vectors v into the world frame."""
    return quat_rotate_inverse(quat_conjugate(q), v)


def yaw_of(q: np.ndarray) -> np.ndarray:
    """Heading angle (rad) of the body's x axis in the world's horizontal plane."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_from_yaw(yaw: np.ndarray) -> np.ndarray:
    """Rotations about world z by yaw (rad)."""
    half = 0.5 * np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(half)
    return np.stack((np.cos(half), zeros, zeros, np.sin(half)), axis=-1)


def quat_angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in [0, pi]) taking orientation b to orientation a."""
    dot = np.abs(np.sum(np.asarray(a) * np.asarray(b), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack(
        (
            np.stack((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)), axis=-1),
            np.stack((2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)), axis=-1),
            np.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), axis=-1),
        ),
        axis=-2,
    )


def gravity_in_body(q: np.ndarray) -> np.ndarray:
    """The unit gravity direction (0, 0, -1) in the body frame: minus the last row of R(q)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return -np.stack((2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)), axis=-1)


# Index permutations for a row-wise cross product: (a x b)_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1}.
_NEXT = np.array([1, 2, 0])
_NEXT2 = np.array([2, 0, 1])


def _cross_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Two gathers per operand instead of three column views each and a stack: a third of the numpy
    # calls, and per element the same products and difference as robolearn.robots.observations._cross.
    return a[:, _NEXT] * b[:, _NEXT2] - a[:, _NEXT2] * b[:, _NEXT]


def quat_rotate_inverse_rows(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """quat_rotate_inverse for (N, 4) quaternions and (N, 3) vectors, bit for bit, in fewer numpy calls.

    The task's hot path rotates a few vectors per env every control step; at 64 envs the generic
    version's broadcasting and stacking cost more than its arithmetic.
    """
    q = np.asarray(quat, dtype=np.float64)
    # linalg.norm's own reduction (sqrt of the sum of squares), kept so the result matches exactly.
    norm = np.sqrt(np.add.reduce(q * q, axis=1, keepdims=True))
    q = q / np.maximum(norm, 1e-12)
    w, u = q[:, :1], q[:, 1:]
    v = np.asarray(vec, dtype=np.float64)
    uv = _cross_rows(u, v)
    return v - 2.0 * w * uv + 2.0 * _cross_rows(u, uv)
