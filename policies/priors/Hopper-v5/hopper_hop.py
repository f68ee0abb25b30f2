# robolearn-prior: 1
# env: Hopper-v5
# name: hopper_hop
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: e7d5dade8ebd1c427a636829b91ac729dac55f1a0cc6fa1eac54ad6a7d982046
# created: 2026-12-06
# screened_return: 1941.83
# screened_return_std: 349.95
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-12-06T21:35:33+00:00

"""Hopping prior: a forward lean, a heel-first landing and a toe push-off, switched by the torso's
height and vertical speed (foot contact is not observed).

The straight leg stands with the torso centre at 1.25 m; below STANCE_HEIGHT the foot is taken to be
on the ground and loaded. While loaded and rising faster than LIFT_SPEED, the ankle pushes the toe down
at full torque (the hop); while loaded and sinking, the ankle holds the toe slightly down; in the air the
toe is raised so the foot lands heel-first, more so the faster the body moves. The knee stays straight.
The hip holds the torso leaning forward (pitch target inside the +-0.2 rad limit), so every push-off
also drives the body forward. Structure written from the env card; the numbers were tuned by a
cross-entropy search over rollouts on seeds 100-101, and this set was picked among the search's
candidates by return on seeds 100-105 (never the screening seeds 0-9). It hops fast but not always
stably: some episodes end in a fall before the time limit."""

import numpy as np

STANCE_HEIGHT = 1.197  # m: torso centre below this means the foot is on the ground
LIFT_SPEED = 0.263  # m/s: a loaded foot rising faster than this pushes off
PITCH_TARGET = 0.090  # rad, forward lean
PITCH_KP = 3.243  # per rad of pitch error (hip reaction on the torso)
PITCH_KD = 0.107  # per rad/s of pitch rate
THIGH_TARGET = -0.119  # rad
THIGH_KP = -0.493  # per rad of thigh error (negative as the search left it: a weak push away)
KNEE_KP = 4.0  # per rad: keeps the knee straight
KNEE_KD = 0.2  # per rad/s
ANKLE_KP = 3.0  # per rad
ANKLE_KD = 0.1  # per rad/s
STANCE_ANKLE = -0.218  # rad: toe slightly down while loaded and sinking
FLIGHT_ANKLE = 0.498  # rad: toe up in the air (heel-first landing)
FLIGHT_ANKLE_PER_SPEED = 0.071  # rad per m/s of forward speed
TOE_PUSH = 1.0  # full toe-down torque during push-off


def policy(obs: np.ndarray) -> np.ndarray:
    height, pitch, thigh, knee, ankle = obs[0], obs[1], obs[2], obs[3], obs[4]
    forward_speed, vertical_speed, pitch_rate = obs[5], obs[6], obs[7]
    knee_rate, ankle_rate = obs[9], obs[10]
    hip = -PITCH_KP * (pitch - PITCH_TARGET) - PITCH_KD * pitch_rate + THIGH_KP * (THIGH_TARGET - thigh)
    knee_torque = KNEE_KP * (0.0 - knee) - KNEE_KD * knee_rate
    loaded = height < STANCE_HEIGHT
    if loaded and vertical_speed > LIFT_SPEED:
        ankle_torque = -TOE_PUSH
    elif loaded:
        ankle_torque = ANKLE_KP * (STANCE_ANKLE - ankle) - ANKLE_KD * ankle_rate
    else:
        target = FLIGHT_ANKLE + FLIGHT_ANKLE_PER_SPEED * forward_speed
        ankle_torque = ANKLE_KP * (target - ankle) - ANKLE_KD * ankle_rate
    return np.clip(np.array([hip, knee_torque, ankle_torque]), -1.0, 1.0)
