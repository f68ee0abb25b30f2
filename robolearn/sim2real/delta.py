"""The delta action's one definition, shared by ASAP's train_delta and finetune stages.

A delta-action model outputs d in [-1, 1] per joint; the robot's action becomes

    a' = a + scale x mask x d

in the policy's own action units (joint target = default pose + action_scale x a'), so `scale` is
the largest change a delta can make, in action units, and the same number means the same thing in
both stages (ASAP's users report the delta's scaling differing between stages; here it cannot).
`mask` (0 or 1 per joint, motor order) leaves the joints a config excludes untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robolearn.errors import UserError, close_matches
from robolearn.robots.spec import RobotSpec

DELTA_CLIP = 1.0  # the delta model's output range, per joint


def joint_mask(spec: RobotSpec, joints: Sequence[str] | None) -> np.ndarray:
    """(joints,) 1.0 for the joints a delta may change (all when None), 0.0 for the rest."""
    if joints is None:
        return np.ones(spec.num_joints)
    mask = np.zeros(spec.num_joints)
    for name in joints:
        if name not in spec.joint_names:
            raise UserError(
                f"delta joint '{name}' is not a joint of the {spec.name}"
                f"{close_matches(str(name), spec.joint_names)}; joints: {', '.join(spec.joint_names)}"
            )
        mask[spec.joint_names.index(name)] = 1.0
    if not mask.any():
        raise UserError("the delta's joint list is empty; list the joints it may change, or null for all")
    return mask


def apply_delta(action: np.ndarray, delta: np.ndarray, scale: float, mask: np.ndarray) -> np.ndarray:
    """a + scale x mask x clip(d, -1, 1): the robot's action after a delta (module docstring)."""
    if not scale > 0:
        raise UserError(f"delta scale={scale} must be > 0 (action units per unit of delta output), e.g. 0.5")
    return np.asarray(action) + float(scale) * np.asarray(mask) * np.clip(delta, -DELTA_CLIP, DELTA_CLIP)
