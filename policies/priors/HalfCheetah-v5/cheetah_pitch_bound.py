# robolearn-prior: 1
# env: HalfCheetah-v5
# name: cheetah_pitch_bound
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: d49aa756c8073324ea512f51cf8891e348639c5c74a40b5fdeeedb03276248fe
# created: 2026-11-26
# screened_return: 1292.22
# screened_return_std: 396.93
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:06:10+00:00

"""Bounding gait clocked by the torso's pitch rate: every joint gets a fixed torque pattern whose sign
follows the pitch rate, so the body's own rocking drives the legs (no clock is observed)."""

import numpy as np

# Per joint [bthigh, bshin, bfoot, fthigh, fshin, ffoot]: torque swing with the pitch rate, and a bias.
# The structure is hand-written; the numbers were tuned by a short random local search over rollouts on
# seeds 100-101 (not the screening seeds).
SWING = np.array([-0.45, 0.55, -0.40, 1.00, 1.00, 0.05])
BIAS = np.array([-0.07, -0.05, -0.44, -0.04, 0.17, -0.16])
PITCH_RATE_GAIN = 15.0  # tanh saturates at about 0.1 rad/s, making the pattern nearly bang-bang


def policy(obs: np.ndarray) -> np.ndarray:
    phase = np.tanh(PITCH_RATE_GAIN * obs[10])
    return np.clip(SWING * phase + BIAS, -1.0, 1.0)
