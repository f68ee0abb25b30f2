# robolearn-prior: 1
# env: InvertedDoublePendulum-v5
# name: idp_lqr
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: 69a4f49482a402aa023aa36acafd1b11bd0f20dac587c1c9df50708fc6c31021
# created: 2026-11-26
# screened_return: 9359.89
# screened_return_std: 0.11
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:00:24+00:00

"""Linear state feedback (LQR gains on the linearised upright dynamics) that balances both poles."""

import math

import numpy as np

# Gains on [cart_x, theta1, theta2, cart_v, theta1_rate, theta2_rate], in action units (1.0 = 500 N),
# from a discrete LQR (Q = diag(1, 10, 10, 0.1, 1, 1), R = 1) on the 0.05 s upright linearisation.
GAINS = np.array([0.093, 0.787, 4.126, 0.151, 0.535, 0.615])


def policy(obs: np.ndarray) -> np.ndarray:
    theta1 = math.atan2(obs[1], obs[3])
    theta2 = math.atan2(obs[2], obs[4])
    state = np.array([obs[0], theta1, theta2, obs[5], obs[6], obs[7]])
    force = -float(GAINS @ state)
    return np.array([min(max(force, -1.0), 1.0)])
