"""Quaternion helpers (w x y z, body to world; numpy, any leading shape) shared by the robots package
(observation terms the deploy runtime builds) and the envs' task logic (robolearn.envs.tasks.rotations
re-exports them)."""

from __future__ import annotations

import numpy as np

__all__ = ["quat_conjugate", "quat_from_yaw", "quat_multiply", "quat_to_matrix", "yaw_of"]


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


def yaw_of(q: np.ndarray) -> np.ndarray:
    """Heading angle (rad) of the body's x axis in the world's horizontal plane."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_from_yaw(yaw: np.ndarray) -> np.ndarray:
    """Rotations about world z by yaw (rad)."""
    half = 0.5 * np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(half)
    return np.stack((np.cos(half), zeros, zeros, np.sin(half)), axis=-1)


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
