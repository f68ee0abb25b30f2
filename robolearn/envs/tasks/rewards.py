"""Reward terms: named pure functions of a context of batched arrays, each returning (N,) values.

A task weights them by its scales dict (times the control period, the legged_gym / mjlab
convention, so a scale is "per second"). Penalties are positive here and get negative scales.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from robolearn.envs.tasks.rotations import quat_angle_between


class LocomotionContext(NamedTuple):
    """What the locomotion terms read, for N envs (body frame = the base's)."""

    command: np.ndarray  # (N, 3) vx, vy, yaw rate
    base_lin_vel: np.ndarray  # (N, 3) body frame
    base_ang_vel: np.ndarray  # (N, 3) body frame
    projected_gravity: np.ndarray  # (N, 3)
    base_height: np.ndarray  # (N,)
    base_height_target: float
    joint_pos: np.ndarray  # (N, nj)
    joint_vel: np.ndarray
    joint_acc: np.ndarray
    default_joint_pos: np.ndarray  # (nj,)
    soft_lower: np.ndarray  # (nj,)
    soft_upper: np.ndarray
    torque: np.ndarray  # (N, nj) last physics step
    action: np.ndarray
    last_action: np.ndarray
    hip_joints: np.ndarray  # indices of joints to hold near their default (humanoid hip roll/yaw)
    foot_contact: np.ndarray  # (N, nf) bool
    foot_first_contact: np.ndarray  # (N, nf) bool: touched down this step
    foot_air_time: np.ndarray  # (N, nf) seconds in the air before this touch-down
    foot_lin_vel: np.ndarray  # (N, nf, 3) world frame
    air_time_target: float
    tracking_sigma: float
    terminated: np.ndarray  # (N,) bool
    # Gait clock (a task with one, e.g. VelocityTask's gait_period_s): which feet the clock wants on
    # the ground, and foot heights above their standing height against the swing target.
    foot_stance_target: np.ndarray  # (N, nf) bool
    foot_height: np.ndarray  # (N, nf) m above the foot's standing height
    swing_height: float
    # feet_air_window: a foot in the air earns while its air time is inside this window (s).
    air_time_window: tuple[float, float] = (0.05, 0.15)
    # foot_clearance: how sharply a foot's planar speed switches its height error on (tanh gain, s/m).
    clearance_speed_gain: float = 2.0
    # joint_vel_limits: each joint's soft speed limit (rad/s), a fraction of the robot's; None: no term.
    soft_velocity_limits: np.ndarray | None = None


def tracking_lin_vel(c: LocomotionContext) -> np.ndarray:
    """Planar velocity tracking, exp(-|v*_xy - v_xy|² / σ) in the base frame."""
    err = np.square(c.command[:, :2] - c.base_lin_vel[:, :2]).sum(axis=1)
    return np.exp(-err / c.tracking_sigma)


def tracking_ang_vel(c: LocomotionContext) -> np.ndarray:
    """Yaw-rate tracking, exp(-(ω*_z - ω_z)² / σ)."""
    return np.exp(-np.square(c.command[:, 2] - c.base_ang_vel[:, 2]) / c.tracking_sigma)


def lin_vel_z(c: LocomotionContext) -> np.ndarray:
    """Vertical base velocity squared (bouncing)."""
    return np.square(c.base_lin_vel[:, 2])


def ang_vel_xy(c: LocomotionContext) -> np.ndarray:
    """Roll and pitch rates squared (wobbling)."""
    return np.square(c.base_ang_vel[:, :2]).sum(axis=1)


def orientation(c: LocomotionContext) -> np.ndarray:
    """Tilt: squared horizontal components of gravity in the base frame."""
    return np.square(c.projected_gravity[:, :2]).sum(axis=1)


def base_height(c: LocomotionContext) -> np.ndarray:
    """Squared error of the base height against its target."""
    return np.square(c.base_height - c.base_height_target)


def torques(c: LocomotionContext) -> np.ndarray:
    """Sum of squared joint torques (energy)."""
    return np.square(c.torque).sum(axis=1)


def joint_vel(c: LocomotionContext) -> np.ndarray:
    """Sum of squared joint velocities."""
    return np.square(c.joint_vel).sum(axis=1)


def joint_acc(c: LocomotionContext) -> np.ndarray:
    """Sum of squared joint accelerations over the control step (jerky motion)."""
    return np.square(c.joint_acc).sum(axis=1)


def action_rate(c: LocomotionContext) -> np.ndarray:
    """Sum of squared action changes between control steps."""
    return np.square(c.action - c.last_action).sum(axis=1)


def joint_limits(c: LocomotionContext) -> np.ndarray:
    """How far joints are past their soft limits (rad, summed)."""
    # np.maximum(x, 0) is np.clip(x, 0, None) (NaN stays NaN) without clip's dispatch cost.
    below = np.maximum(c.soft_lower - c.joint_pos, 0.0)
    above = np.maximum(c.joint_pos - c.soft_upper, 0.0)
    return (below + above).sum(axis=1)


def joint_vel_limits(c: LocomotionContext) -> np.ndarray:
    """How far joint speeds are past their soft limits (rad/s, each joint's excess capped at 1, summed):
    legged_gym's dof_vel_limits. The deploy runtime's joint_velocity guard damps the robot at the hard
    limit, so a policy trained without this term can learn swings the hardware path refuses."""
    if c.soft_velocity_limits is None:
        return np.zeros(len(c.joint_vel))
    excess = np.abs(c.joint_vel) - c.soft_velocity_limits
    return np.clip(excess, 0.0, 1.0).sum(axis=1)


def hip_deviation(c: LocomotionContext) -> np.ndarray:
    """Squared deviation of the hip roll and yaw joints from the default pose (humanoid gait shape)."""
    dev = c.joint_pos[:, c.hip_joints] - c.default_joint_pos[c.hip_joints]
    return np.square(dev).sum(axis=1)


def pose_deviation(c: LocomotionContext) -> np.ndarray:
    """Summed absolute deviation of every joint from the default pose (keeps the gait near the stance)."""
    return np.sum(np.abs(c.joint_pos - c.default_joint_pos), axis=1)


def feet_air_time(c: LocomotionContext) -> np.ndarray:
    """Steps of at least the target air time, paid at touch-down, only while commanded to move."""
    paid = ((c.foot_air_time - c.air_time_target) * c.foot_first_contact).sum(axis=1)
    # linalg.norm's own formula, without its dispatch.
    moving = np.sqrt(np.square(c.command[:, :2]).sum(axis=1)) > 0.1
    return paid * moving


def feet_air_window(c: LocomotionContext) -> np.ndarray:
    """Feet in the air whose air time is inside the window, counted every step while commanded to move."""
    lo, hi = c.air_time_window
    in_window = ~c.foot_contact & (c.foot_air_time > lo) & (c.foot_air_time <= hi)
    moving = np.sqrt(np.square(c.command[:, :2]).sum(axis=1)) > 0.1
    return in_window.sum(axis=1) * moving


def foot_clearance(c: LocomotionContext) -> np.ndarray:
    """Squared error of moving feet against the swing height, weighted by tanh(gain · planar foot speed)."""
    speed = np.sqrt(np.sum(np.square(c.foot_lin_vel[..., :2]), axis=2))
    err = np.square(c.foot_height - c.swing_height) * np.tanh(c.clearance_speed_gain * speed)
    return np.sum(err, axis=1)


def gait_contact(c: LocomotionContext) -> np.ndarray:
    """Share of feet whose contact agrees with the gait clock (stance on the ground, swing in the air)."""
    return np.mean(c.foot_contact == c.foot_stance_target, axis=1)


def swing_height(c: LocomotionContext) -> np.ndarray:
    """Squared error of the clock's swing feet against the swing height (m², summed over feet)."""
    err = np.square(c.foot_height - c.swing_height) * ~c.foot_stance_target
    return np.sum(err, axis=1)


def feet_swing_height(c: LocomotionContext) -> np.ndarray:
    """Squared error of airborne feet (by contact, not the clock) against the swing height (m², summed)."""
    err = np.square(c.foot_height - c.swing_height) * ~c.foot_contact
    return np.sum(err, axis=1)


def contact_no_vel(c: LocomotionContext) -> np.ndarray:
    """Squared 3-D speed of feet in contact (unitree_rl_gym's G1 term: a stance foot should not move)."""
    speed = np.sum(np.square(c.foot_lin_vel), axis=2)
    return np.sum(speed * c.foot_contact, axis=1)


def feet_slip(c: LocomotionContext) -> np.ndarray:
    """Squared planar speed of feet in contact."""
    speed = np.sum(np.square(c.foot_lin_vel[..., :2]), axis=2)
    return np.sum(speed * c.foot_contact, axis=1)


def alive(c: LocomotionContext) -> np.ndarray:
    """One per second of not having fallen."""
    return np.ones(len(c.terminated))


def termination(c: LocomotionContext) -> np.ndarray:
    """One on the step an env falls (not on time-outs)."""
    return c.terminated.astype(np.float64)


LOCOMOTION_REWARDS = {
    f.__name__: f
    for f in (
        tracking_lin_vel,
        tracking_ang_vel,
        lin_vel_z,
        ang_vel_xy,
        orientation,
        base_height,
        torques,
        joint_vel,
        joint_acc,
        action_rate,
        joint_vel_limits,
        joint_limits,
        hip_deviation,
        pose_deviation,
        feet_air_time,
        feet_air_window,
        foot_clearance,
        gait_contact,
        swing_height,
        feet_swing_height,
        contact_no_vel,
        feet_slip,
        alive,
        termination,
    )
}


class TrackingContext(NamedTuple):
    """What the motion-tracking terms read: robot and reference bodies, for N envs and nb bodies."""

    body_pos: np.ndarray  # (N, nb, 3) robot, world
    body_quat: np.ndarray  # (N, nb, 4)
    body_lin_vel: np.ndarray  # (N, nb, 3) world
    body_ang_vel: np.ndarray  # (N, nb, 3) world
    ref_body_pos: np.ndarray  # (N, nb, 3) reference, world
    ref_body_pos_relative: np.ndarray  # (N, nb, 3) reference moved onto the robot's anchor (xy, yaw)
    ref_body_quat: np.ndarray
    ref_body_quat_relative: np.ndarray
    ref_body_lin_vel: np.ndarray
    ref_body_ang_vel: np.ndarray
    anchor: int  # index of the anchor body in the body axis
    joint_pos: np.ndarray  # (N, nj)
    soft_lower: np.ndarray
    soft_upper: np.ndarray
    action: np.ndarray
    last_action: np.ndarray
    terminated: np.ndarray


def _exp_mean(err: np.ndarray, std: float) -> np.ndarray:
    return np.exp(-np.mean(err, axis=1) / (std * std))


def tracking_anchor_pos(c: TrackingContext) -> np.ndarray:
    """Anchor (torso) position tracking in the world, exp(-|Δp|² / 0.3²)."""
    err = np.sum(np.square(c.body_pos[:, c.anchor] - c.ref_body_pos[:, c.anchor]), axis=1)
    return np.exp(-err / 0.3**2)


def tracking_anchor_rot(c: TrackingContext) -> np.ndarray:
    """Anchor orientation tracking, exp(-angle² / 0.4²)."""
    err = np.square(quat_angle_between(c.body_quat[:, c.anchor], c.ref_body_quat[:, c.anchor]))
    return np.exp(-err / 0.4**2)


def tracking_body_pos(c: TrackingContext) -> np.ndarray:
    """Body positions relative to the anchor, exp(-mean |Δp|² / 0.3²)."""
    return _exp_mean(np.sum(np.square(c.body_pos - c.ref_body_pos_relative), axis=2), 0.3)


def tracking_body_rot(c: TrackingContext) -> np.ndarray:
    """Body orientations relative to the anchor's heading, exp(-mean angle² / 0.4²)."""
    return _exp_mean(np.square(quat_angle_between(c.body_quat, c.ref_body_quat_relative)), 0.4)


def tracking_body_lin_vel(c: TrackingContext) -> np.ndarray:
    """Body linear velocities, exp(-mean |Δv|² / 1.0²)."""
    return _exp_mean(np.sum(np.square(c.body_lin_vel - c.ref_body_lin_vel), axis=2), 1.0)


def tracking_body_ang_vel(c: TrackingContext) -> np.ndarray:
    """Body angular velocities, exp(-mean |Δω|² / 3.14²)."""
    return _exp_mean(np.sum(np.square(c.body_ang_vel - c.ref_body_ang_vel), axis=2), 3.14)


def tracking_action_rate(c: TrackingContext) -> np.ndarray:
    """Sum of squared action changes between control steps."""
    return np.sum(np.square(c.action - c.last_action), axis=1)


def tracking_joint_limits(c: TrackingContext) -> np.ndarray:
    """How far joints are past their soft limits (rad, summed)."""
    below = np.clip(c.soft_lower - c.joint_pos, 0.0, None)
    above = np.clip(c.joint_pos - c.soft_upper, 0.0, None)
    return np.sum(below + above, axis=1)


def tracking_termination(c: TrackingContext) -> np.ndarray:
    """One on the step the robot loses the motion (not on time-outs)."""
    return c.terminated.astype(np.float64)


TRACKING_REWARDS = {
    "anchor_pos": tracking_anchor_pos,
    "anchor_rot": tracking_anchor_rot,
    "body_pos": tracking_body_pos,
    "body_rot": tracking_body_rot,
    "body_lin_vel": tracking_body_lin_vel,
    "body_ang_vel": tracking_body_ang_vel,
    "action_rate": tracking_action_rate,
    "joint_limits": tracking_joint_limits,
    "termination": tracking_termination,
}
