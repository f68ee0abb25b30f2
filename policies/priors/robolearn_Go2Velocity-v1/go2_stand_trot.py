# robolearn-prior: 1
# env: robolearn/Go2Velocity-v1
# name: go2_stand_trot
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: 19bb74badc14db83bfe21e5cb218431410f21071ed57c0cd1b461bb6d71e1208
# created: 2026-11-26
# screened_return: 15.18
# screened_return_std: 4.95
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T05:00:31+00:00

"""Stand, or trot when commanded to move. With a (near) zero command the prior outputs zero offsets
(the default pose) plus a small calf correction against body tilt. Otherwise the diagonal pairs FR+RL
and FL+RR alternate in a 0.3 s trot (15 control steps per cycle): each swing foot rises 5 cm along a
half sine, and the feet sweep fore-aft and sideways with amplitudes proportional to the commanded
velocity (differential strides for the yaw rate). Foot targets go through the sagittal inverse
kinematics of the 0.213 m thigh and calf links, then a proportional-derivative correction on the
observed joint angles and rates stiffens the card's soft PD loop; hip targets get yaw-rate feedback.

The policy is stateless: the gait phase rides on the mean of the four hip actions (a sawtooth of
+-0.05 action units, 5 mm of foot motion), which obs[33:45] returns on the next step; everything else
in the hip actions is built with zero mean so the phase reads back exactly.

The structure is hand-written from the card; the gains were tuned by a short random and local search
over rollouts on seeds 100-107 and checked on seeds 108-115 (not the screening seeds 0-9)."""

import numpy as np

STEPS_PER_CYCLE = 15  # control steps per gait cycle (0.3 s)
LIFT_M = 0.052  # swing foot height
STRIDE_GAIN = 1.08  # foot sweep per commanded forward speed
SIDE_GAIN = 0.58  # foot sweep per commanded sideways speed
TURN_GAIN = 0.94  # differential stride per commanded yaw rate
TURN_FEEDBACK = 0.26  # extra turn per rad/s of yaw-rate error
JOINT_P = 2.25  # outer loop on thigh and calf: extra target per rad of tracking error
JOINT_D = 0.038  # rad of target per rad/s of joint rate
HIP_P = 1.24
HIP_D = 0.009
HIP_YAW_FEEDBACK = 0.68  # rad of hip target per (rad/s yaw-rate error x m of foot x position)
HIP_INWARD = 2.0  # trot with hips at minus their default splay (0.1 rad inward)
ROLL_GAIN = -0.35  # calf target per unit of roll (projected gravity)
PITCH_GAIN = -0.22  # calf target per unit of pitch
PHASE_CARRIER = 0.05  # action units: amplitude of the phase sawtooth on the mean hip action
MIN_SPEED = 0.1  # m/s: below this (and a small yaw command) the robot stands
MIN_YAW_RATE = 0.3  # rad/s
DT = 0.02
HALF_CYCLE_S = 0.5 * STEPS_PER_CYCLE * DT
STEP_ANGLE = 2.0 * np.pi / STEPS_PER_CYCLE
LINK = 0.213  # thigh and calf length (m)
LEG_LENGTH = 0.30  # hip to foot, for sideways foot motion per rad of hip
DEFAULT = np.array([-0.1, 0.8, -1.5, 0.1, 0.8, -1.5, -0.1, 1.0, -1.5, 0.1, 1.0, -1.5])
SCALE = np.array([0.3349, 0.3349, 0.1747] * 4)  # rad per action unit: hip, thigh, calf
LEG_SHIFT = np.array([0.0, np.pi, np.pi, 0.0])  # FR, FL, RR, RL: diagonal pairs in anti-phase
FOOT_X = np.array([0.18, 0.18, -0.27, -0.27])  # foot positions from the base centre (m)
FOOT_Y = np.array([-0.17, 0.17, -0.17, 0.17])
RIGHT_DOWN = np.array([-1.0, 1.0, -1.0, 1.0])  # calf correction sign per leg for roll
NOSE_DOWN = np.array([1.0, 1.0, -1.0, -1.0])  # and for pitch


def foot_fk(thigh, calf):
    """Foot (x forward, z up) relative to the thigh joint, from thigh and calf angles."""
    x = -LINK * np.sin(thigh) - LINK * np.sin(thigh + calf)
    z = -LINK * np.cos(thigh) - LINK * np.cos(thigh + calf)
    return x, z


def foot_ik(x, z):
    """Thigh and calf angles (knee bent backward) that put the foot at (x, z)."""
    cos_knee = np.clip((x * x + z * z - 2.0 * LINK * LINK) / (2.0 * LINK * LINK), -1.0, 1.0)
    calf = -np.arccos(cos_knee)
    thigh = np.arctan2(-x, -z) + np.arctan2(LINK * np.sin(-calf), LINK + LINK * np.cos(calf))
    return thigh, calf


NEUTRAL_X, NEUTRAL_Z = foot_fk(DEFAULT[1::3], DEFAULT[2::3])


def policy(obs: np.ndarray) -> np.ndarray:
    vx = obs[6] / 2.0
    vy = obs[7] / 2.0
    wz = obs[8] / 0.25
    yaw_rate = obs[2] / 0.25
    q_rel = obs[9:21]
    dq = obs[21:33] / 0.05
    target = np.zeros(12)
    hip_feedback = np.zeros(4)
    gain = 0.0
    damping = 0.0
    ramp = 0.0
    if np.hypot(vx, vy) > MIN_SPEED or abs(wz) > MIN_YAW_RATE:
        # Read the previous phase step back from the mean hip action, then advance one step.
        previous = np.mean(obs[33:45:3]) / PHASE_CARRIER
        k = (int(np.rint((previous + 1.0) * 0.5 * STEPS_PER_CYCLE)) + 1) % STEPS_PER_CYCLE
        ramp = 2.0 * k / STEPS_PER_CYCLE - 1.0
        phase = k * STEP_ANGLE + LEG_SHIFT
        swing = np.maximum(0.0, np.sin(phase))
        turn = wz + TURN_FEEDBACK * (wz - yaw_rate)
        foot_vx = STRIDE_GAIN * (vx - TURN_GAIN * turn * FOOT_Y)
        foot_vy = SIDE_GAIN * (vy + TURN_GAIN * turn * FOOT_X)
        # The foot moves back (x falls) in stance and forward in swing, so the body moves forward.
        x = NEUTRAL_X - 0.5 * foot_vx * HALF_CYCLE_S * np.cos(phase)
        z = NEUTRAL_Z + LIFT_M * swing
        thigh, calf = foot_ik(x, z)
        target[1::3] = thigh - DEFAULT[1::3]
        target[2::3] = calf - DEFAULT[2::3]
        sideways = -0.5 * foot_vy * HALF_CYCLE_S * np.cos(phase) / LEG_LENGTH
        target[0::3] = sideways - HIP_INWARD * DEFAULT[0::3]
        hip_feedback = HIP_P * (target[0::3] - q_rel[0::3]) - HIP_D * dq[0::3]
        hip_feedback = hip_feedback + HIP_YAW_FEEDBACK * (yaw_rate - wz) * FOOT_X
        gain = JOINT_P
        damping = JOINT_D
    target[2::3] = target[2::3] + ROLL_GAIN * -obs[4] * RIGHT_DOWN + PITCH_GAIN * obs[3] * NOSE_DOWN
    joint = target + gain * (target - q_rel) - damping * dq
    hips = target[0::3] + hip_feedback
    joint[0::3] = hips - np.mean(hips)
    action = joint / SCALE
    action[0::3] = action[0::3] + PHASE_CARRIER * ramp
    return np.clip(action, -5.0, 5.0)
