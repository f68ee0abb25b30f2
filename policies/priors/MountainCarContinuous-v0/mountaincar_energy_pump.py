# robolearn-prior: 1
# env: MountainCarContinuous-v0
# name: mountaincar_energy_pump
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: ebed6f7c5450dd3dc7f4ea2ae32dcacda476d72e7d378bc8ff060b9c664d876a
# created: 2026-11-26
# screened_return: 92.00
# screened_return_std: 0.24
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:00:25+00:00

"""Bang-bang energy pump: push in the direction of motion."""

import numpy as np


def policy(obs: np.ndarray) -> np.ndarray:
    velocity = float(obs[1])
    # Pushing along the velocity adds 0.0015 * |velocity| of energy per step; from rest, start by
    # backing up the left slope, which builds more height than a first push to the right.
    if velocity > 0.0:
        return np.array([1.0])
    return np.array([-1.0])
