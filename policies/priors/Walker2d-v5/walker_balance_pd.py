# robolearn-prior: 1
# env: Walker2d-v5
# name: walker_balance_pd
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: d13021e8df1c5d70893c4ae17fab940b85a58bacd50ab61a46c8746fff4c04d4
# created: 2026-11-26
# screened_return: 1018.34
# screened_return_std: 15.46
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T04:06:12+00:00

"""Balance prior: PD control of both legs to the upright pose plus an ankle strategy: when the torso
pitches forward or the body drifts forward, both ankles press the toes down to push it back. It stays
upright for the whole episode but does not walk. The gains were picked from a small grid of
rollouts on seeds 100-105."""

import numpy as np

JOINT_KP = 2.0  # per rad, in action units (1.0 = 100 N m)
JOINT_KD = 0.1  # per rad/s
ANKLE_PITCH_GAIN = 2.0  # toe-down torque per rad of forward torso pitch
ANKLE_VELOCITY_GAIN = 1.0  # toe-down torque per m/s of forward velocity
ANKLES = [2, 5]  # right and left foot in the action vector


def policy(obs: np.ndarray) -> np.ndarray:
    torque = -JOINT_KP * obs[2:8] - JOINT_KD * obs[11:17]
    torque[ANKLES] -= ANKLE_PITCH_GAIN * obs[1] + ANKLE_VELOCITY_GAIN * obs[8]
    return np.clip(torque, -1.0, 1.0)
