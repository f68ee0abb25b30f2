# robolearn-prior: 1
# env: Hopper-v5
# name: hopper_balance_pd
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: e7d5dade8ebd1c427a636829b91ac729dac55f1a0cc6fa1eac54ad6a7d982046
# created: 2026-11-26
# screened_return: 1016.25
# screened_return_std: 0.78
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:06:19+00:00

"""Balance prior: PD control of every joint to the upright pose, with the ankles held slightly
toe-up so the hopper leans onto its toes and creeps forward. It keeps the torso inside the +-0.2 rad
pitch limit for the whole episode but does not hop."""

import numpy as np

JOINT_KP = 5.0  # per rad, in action units (1.0 = 200 N m)
JOINT_KD = 0.2  # per rad/s
# Targets for [thigh, leg, foot]: straight leg, ankle 0.1 rad toe-up. A thrust-and-placement hopping
# controller (gains from a short search on seeds 100-102) never beat simply staying upright, so this
# prior balances and collects the survival reward.
TARGET = np.array([0.0, 0.0, 0.1])


def policy(obs: np.ndarray) -> np.ndarray:
    angles = obs[2:5]
    rates = obs[8:11]
    torque = JOINT_KP * (TARGET - angles) - JOINT_KD * rates
    return np.clip(torque, -1.0, 1.0)
