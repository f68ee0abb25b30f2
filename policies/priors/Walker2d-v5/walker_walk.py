# robolearn-prior: 1
# env: Walker2d-v5
# name: walker_walk
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: d13021e8df1c5d70893c4ae17fab940b85a58bacd50ab61a46c8746fff4c04d4
# created: 2026-12-06
# screened_return: 1135.46
# screened_return_std: 223.03
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-12-06T21:58:56+00:00

"""Two-footed hopping prior: both legs push off together, switched by the torso's height and
vertical speed (foot contact is not observed). It does not step with alternating legs: it moves
forward in small two-footed hops.

Each leg runs the same rule as the Hopper hopping prior, scaled to this robot's weaker motors: below
STANCE_HEIGHT the feet are taken to be on the ground; loaded, with a vertical speed above LIFT_SPEED
(negative: anything but a fast sink), the ankles push the toes down; loaded and sinking fast, they
hold the toes near STANCE_ANKLE and press them down when the torso pitches forward; in the air the
toes are raised for a heel-first landing. The hips hold a forward torso lean and the thighs behind
the torso. Knees stay straight. Structure written from the env card; the numbers were tuned by a
cross-entropy search over rollouts on seeds 100-101, and this set was picked among the search's
candidates by return on seeds 100-119 (never the screening seeds 0-9)."""

import numpy as np

STANCE_HEIGHT = 1.186  # m: torso centre below this means the feet are on the ground
LIFT_SPEED = -0.199  # m/s: loaded feet rising faster than this push off
PITCH_TARGET = 0.059  # rad, forward lean
PITCH_KP = 2.061  # per rad of pitch error (hip reaction on the torso)
PITCH_KD = 0.184  # per rad/s of pitch rate
THIGH_TARGET = -0.248  # rad, mean of the two thighs
STAGGER = 0.003  # rad: right thigh target minus THIGH_TARGET (the left gets the opposite)
THIGH_KP = 0.885  # per rad of thigh error
KNEE_KP = 6.518  # per rad: keeps the knees straight
KNEE_KD = 0.2  # per rad/s
ANKLE_KP = 3.0  # per rad
ANKLE_KD = 0.1  # per rad/s
ANKLE_PITCH = 0.470  # toe-down command per rad of forward pitch while loaded and sinking
STANCE_ANKLE = -0.006  # rad
FLIGHT_ANKLE = 0.265  # rad: toes up in the air
FLIGHT_ANKLE_PER_SPEED = -0.020  # rad per m/s of forward speed
TOE_PUSH = 1.419  # toe-down command during push-off (saturates after SCALE)
SCALE = 2.043  # all commands above are multiplied by this before clipping


def leg_command(obs: np.ndarray, first: int, thigh_offset: float) -> list:
    """Hip, knee and ankle commands of the leg whose thigh, knee and foot angles start at obs[first]."""
    height, pitch = obs[0], obs[1]
    forward_speed, vertical_speed, pitch_rate = obs[8], obs[9], obs[10]
    thigh, knee, ankle = obs[first], obs[first + 1], obs[first + 2]
    knee_rate, ankle_rate = obs[first + 10], obs[first + 11]
    hip = -PITCH_KP * (pitch - PITCH_TARGET) - PITCH_KD * pitch_rate
    hip = hip + THIGH_KP * (THIGH_TARGET + thigh_offset - thigh)
    knee_torque = KNEE_KP * (0.0 - knee) - KNEE_KD * knee_rate
    loaded = height < STANCE_HEIGHT
    if loaded and vertical_speed > LIFT_SPEED:
        ankle_torque = -TOE_PUSH
    elif loaded:
        ankle_torque = ANKLE_KP * (STANCE_ANKLE - ankle) - ANKLE_KD * ankle_rate - ANKLE_PITCH * pitch
    else:
        target = FLIGHT_ANKLE + FLIGHT_ANKLE_PER_SPEED * forward_speed
        ankle_torque = ANKLE_KP * (target - ankle) - ANKLE_KD * ankle_rate
    return [hip, knee_torque, ankle_torque]


def policy(obs: np.ndarray) -> np.ndarray:
    right = leg_command(obs, 2, STAGGER)
    left = leg_command(obs, 5, -STAGGER)
    return np.clip(SCALE * np.array(right + left), -1.0, 1.0)
