# robolearn-prior: 1
# env: Pendulum-v1
# name: pendulum_negated
# origin: hand-written
# label: deliberately bad (known-bad prior for benchmarks): pendulum_energy_swingup with the action negated; written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: 14281905b4956667b02b9c48947049d0caea24fc10c359289f8a8a18554145f1
# created: 2026-11-26
# screened_return: -1811.63
# screened_return_std: 98.30
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:00:27+00:00

"""Known-bad prior: the energy-shaping swing-up of pendulum_energy_swingup with its torque negated.

It drains energy where the good prior pumps it and pushes away from upright where the good prior
catches, so it keeps the pendulum hanging. Benchmarks use it to test robustness to a wrong prior."""

import math

import numpy as np

MAX_TORQUE = 2.0
UPRIGHT_ENERGY = 15.0  # 0.5 * theta_dot**2 + 15 * cos(theta) at rest upright (3 g / 2 l = 15)


def policy(obs: np.ndarray) -> np.ndarray:
    theta = math.atan2(obs[1], obs[0])
    theta_dot = float(obs[2])
    if abs(theta) < 0.6:
        # Near upright: PD on the angle; 3 * torque must beat 15 * sin(theta), so the gain is above 5.
        torque = -10.0 * theta - 2.0 * theta_dot
    else:
        # Far from upright: dE/dt = 3 * torque * theta_dot, so push with the velocity until E reaches upright's.
        energy = 0.5 * theta_dot**2 + UPRIGHT_ENERGY * math.cos(theta)
        direction = theta_dot if abs(theta_dot) > 1e-3 else 1.0
        torque = 0.5 * (UPRIGHT_ENERGY - energy) * direction
    return -np.array([min(max(torque, -MAX_TORQUE), MAX_TORQUE)])
