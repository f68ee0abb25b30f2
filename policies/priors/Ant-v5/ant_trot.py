# robolearn-prior: 1
# env: Ant-v5
# name: ant_trot
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: 93f38a946eb9d9c9130d5d2432111cdc8a0cb6b5a551c0baf4b4fbeac7d8e150
# created: 2026-11-26
# screened_return: 1630.11
# screened_return_std: 320.79
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:06:08+00:00

"""Trotting gait: diagonal legs (1, 3) and (2, 4) alternate. The phase is the sign of hip_1's rate;
legs whose feet sweep backward (stance) press their ankles down, the others lift, and every hip is
pulled towards the mirrored angle of hip_1, so the gait sustains itself without a clock.

The structure is hand-written; the gains were tuned by a short random
local search over rollouts on seeds 100-102 (not the screening seeds)."""

import numpy as np

# +1/-1 per leg (1, 2, 3, 4): hips mirror hip_1 so the diagonal pairs swing in anti-phase, and the
# ankle limits of legs 2 and 3 are negative.
HIP_MIRROR = np.array([1.0, -1.0, -1.0, 1.0])
ANKLE_SIGN = np.array([1.0, -1.0, -1.0, 1.0])
HIP_KP = 0.82
HIP_PUSH = 0.04  # common hip torque along the phase
HIP1_DRIVE = 0.08  # hip_1 is pushed along its own velocity: the self-excited oscillator
ANKLE_KP = 0.35
ANKLE_KD = 0.05
ANKLE_STANCE = 1.13  # rad magnitude: pressing down, torso high
ANKLE_SWING = 0.75  # rad magnitude: foot lifted
# Action order is hip_4, ankle_4, hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3; observation order is legs 1-4.
OBS_TO_ACTION = [6, 7, 0, 1, 2, 3, 4, 5]


def policy(obs: np.ndarray) -> np.ndarray:
    hips = obs[5:13:2]
    ankles = obs[6:13:2]
    ankle_rates = obs[20:27:2]
    hip_rates = obs[19:27:2]
    phase = 1.0 if hip_rates[0] >= 0.0 else -1.0
    hip_torque = HIP_KP * (HIP_MIRROR * hips[0] - hips) + HIP_PUSH * HIP_MIRROR * phase
    hip_torque[0] = HIP1_DRIVE * phase + HIP_PUSH * phase
    stance = np.array([phase > 0, phase < 0, phase > 0, phase < 0])
    ankle_target = ANKLE_SIGN * np.where(stance, ANKLE_STANCE, ANKLE_SWING)
    ankle_torque = ANKLE_KP * (ankle_target - ankles) - ANKLE_KD * ankle_rates
    joint_torque = np.zeros(8)
    joint_torque[0::2] = hip_torque
    joint_torque[1::2] = ankle_torque
    return np.clip(joint_torque[OBS_TO_ACTION], -1.0, 1.0)
