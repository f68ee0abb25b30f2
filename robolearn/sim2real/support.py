"""Where a delta-action model was trained: the recorded states, and a gate that fades the delta out
away from them (ASAP's finetune stage, the `asap_gated` arm).

train_delta starts every episode at a recorded state of the target and runs a few steps, so the delta
model only ever learns the states the target visited. During fine-tuning the policy explores and
drifts, and there the model extrapolates: a delta that is right on the recording may be anything a
few standard deviations away from it, and a policy fine-tuned against it can exploit that.
`RecordingSupport` measures how far a simulated state is from the nearest recorded one and
`support_gate` turns the distance into a factor in [0, 1] that multiplies the delta: 1 up to `near`,
falling linearly to 0 at `far`, so far from the recording the fine-tuning simulator is the nominal one.

The state features are the delta model's own state inputs without its action inputs (the body-frame
angular and linear velocity, gravity in the body frame, joint positions relative to the default pose,
joint velocities), each standardised by its spread over the recording (what the model's input
normaliser does to them). A distance is the RMS over features of the standardised difference to the
nearest recorded state, in recording standard deviations: the pretrained Go2 walker in the nominal
simulator, on the commands the target recorded it on, is 0.8 to 1.0 from the recording (median per
command; 1.1 to 1.5 at the 90th percentile) on the gains_strength recording, and 1.0 (1.35) under
fine-tuning's own commands and noise (docs/asap.md). The recording's own spacing is no unit: the target is
deterministic and a steady gait repeats itself, so a recorded state's nearest neighbour a gait cycle
later is 0.02 away. Actions are left out: fine-tuning samples them with exploration noise, so they
would push every training state away from the recording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robolearn.envs.backends.base import SimFrame
from robolearn.envs.tasks.rotations import quat_rotate_inverse_rows
from robolearn.errors import UserError
from robolearn.sim2real.recordings import DeltaSegment

GRAVITY = np.array([0.0, 0.0, -1.0])
SUPPORT_OPTIONS = ("near", "far")


def state_features(
    quat: np.ndarray,
    lin_vel_world: np.ndarray,
    ang_vel_body: np.ndarray,
    joint_pos: np.ndarray,
    joint_vel: np.ndarray,
    default_pose: np.ndarray,
) -> np.ndarray:
    """(k, 9 + 2 x joints) unstandardised features of k states (module docstring)."""
    quat = np.asarray(quat, dtype=np.float64)
    gravity = quat_rotate_inverse_rows(quat, np.broadcast_to(GRAVITY, (len(quat), 3)))
    lin_body = quat_rotate_inverse_rows(quat, np.asarray(lin_vel_world, dtype=np.float64))
    return np.concatenate(
        [ang_vel_body, gravity, lin_body, np.asarray(joint_pos) - default_pose, joint_vel], axis=1
    ).astype(np.float64)


def frame_features(frame: SimFrame, default_pose: np.ndarray) -> np.ndarray:
    """state_features of every env of a simulator frame."""
    return state_features(
        frame.root_quat,
        frame.root_lin_vel,
        frame.root_ang_vel,
        frame.joint_pos,
        frame.joint_vel,
        default_pose,
    )


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, without the (a, b, dim) intermediate."""
    d = np.square(a).sum(axis=1)[:, None] + np.square(b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


class RecordingSupport:
    """The recorded states of a delta dataset, and distances of other states to them."""

    def __init__(
        self, features: np.ndarray, segment: np.ndarray, step: np.ndarray, exclude: int = 10
    ) -> None:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise UserError(f"a recording support needs at least 2 recorded states, got {len(features)}")
        self.mean = features.mean(axis=0)
        # A feature that never moved in the recording (a joint held still) counts on the scale of the
        # others: a floor of 1e-3 x the median spread keeps it from dividing by zero.
        spread = features.std(axis=0)
        self.std = np.maximum(spread, 1e-3 * max(float(np.median(spread)), 1e-9))
        self.points = (features - self.mean) / self.std
        self.dim = features.shape[1]
        d2 = _squared_distances(self.points, self.points)
        same = (segment[:, None] == segment[None, :]) & (np.abs(step[:, None] - step[None, :]) < exclude)
        d2[same] = np.inf
        nearest = np.sqrt(d2.min(axis=1) / self.dim)
        # Each recorded state's distance to the nearest one at least `exclude` steps away in time (a
        # diagnostic: how often the recording repeats itself; none for a stretch shorter than that).
        self.recorded_spacing = nearest[np.isfinite(nearest)]

    @classmethod
    def from_segments(
        cls,
        segments: Sequence[DeltaSegment],
        layout: Mapping[str, Any],
        default_pose: np.ndarray,
        exclude: int = 10,
    ) -> RecordingSupport:
        """Every state a recorded action was sent from (the state after a stretch's last action is not
        one: nothing was learnt there)."""
        r, v = int(layout["root_qpos_adr"]), int(layout["root_qvel_adr"])
        jq = np.asarray(layout["joint_qpos_adr"], dtype=np.int64)
        jv = np.asarray(layout["joint_qvel_adr"], dtype=np.int64)
        feats, seg_ids, steps = [], [], []
        for i, seg in enumerate(segments):
            q, dq = seg.qpos[: seg.steps], seg.qvel[: seg.steps]
            feats.append(
                state_features(
                    q[:, r + 3 : r + 7],
                    dq[:, v : v + 3],
                    dq[:, v + 3 : v + 6],
                    q[:, jq],
                    dq[:, jv],
                    default_pose,
                )
            )
            seg_ids.append(np.full(seg.steps, i))
            steps.append(np.arange(seg.steps))
        return cls(np.concatenate(feats), np.concatenate(seg_ids), np.concatenate(steps), exclude)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """(k,) distance of each state to the nearest recorded one, in recording standard deviations
        (RMS over features)."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        return np.sqrt(_squared_distances(z, self.points).min(axis=1) / self.dim)


def check_support_options(
    options: Mapping[str, Any], key: str = "delta_action.support"
) -> tuple[float, float]:
    """(near, far) from {near, far}; one-line errors, naming the setting `key`, for anything else."""
    unknown = sorted(set(options) - set(SUPPORT_OPTIONS))
    if unknown:
        raise UserError(f"{key}.{unknown[0]} is not an option; options: near, far")
    try:
        near, far = float(options["near"]), float(options["far"])
    except (KeyError, TypeError, ValueError):
        raise UserError(
            f"{key}={dict(options)} needs numbers near and far (distances in recording standard"
            " deviations), e.g. {near: 1.0, far: 2.0}"
        ) from None
    if not 0 <= near < far:
        raise UserError(f"{key} near={near}, far={far}: need 0 <= near < far, e.g. near 1, far 2")
    return near, far


def support_gate(distance: np.ndarray, near: float, far: float) -> np.ndarray:
    """1 up to `near`, linear to 0 at `far`, 0 beyond: the factor on the delta (module docstring)."""
    return np.clip((far - np.asarray(distance, dtype=np.float64)) / (far - near), 0.0, 1.0)
