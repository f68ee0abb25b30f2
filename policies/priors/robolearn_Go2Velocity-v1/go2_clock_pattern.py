# robolearn-prior: 1
# env: robolearn/Go2Velocity-v1
# name: go2_clock_pattern
# origin: hand-written
# label: written by the robolearn developers from the env card, not by an LLM (the build machines cannot reach an LLM)
# model: none
# prompt_sha256: 19bb74badc14db83bfe21e5cb218431410f21071ed57c0cd1b461bb6d71e1208
# created: 2026-11-26
# env_kwargs: {"gait_period_s": 0.5}
# screened_return: 6.32
# screened_return_std: 2.56
# screened_episodes: 10
# screened_seed: 0
# screened_at: 2026-11-26T09:51:24+00:00

"""An open-loop trot pattern on the env's gait clock, for Go2Velocity with gait_period_s=0.5 (the
47-value observation whose last two values are sin and cos of the clock phase). It reads only the
command and the clock: no feedback from the IMU or the joints. Diagonal pairs FR+RL and FL+RR
alternate; in the second half of each foot's cycle (its swing, as the env's contact reward wants
it) the calf folds by up to 0.8 rad along a half sine, and the thigh swings by 0.55 rad per m/s
of the foot's commanded speed (forward speed minus yaw rate times the foot's lateral offset), so
the stride follows the command. Sideways commands are ignored.

On its own it moves forward but tracks poorly (benchmarks/go2_walk.py, docs/envs.md: mean velocity
error 0.34-0.36 m/s against about 0.48 standing still, yaw-rate error 1.41 rad/s against 0.44: it
wobbles in yaw); it is the starting point for method=prior_init, where PPO learns the feedback that
tracks the commands."""

import numpy as np

STRIDE = 0.55  # thigh swing (rad) per m/s of foot speed
LIFT = 0.8  # calf fold (rad) at mid-swing
FOOT_Y = np.array([-0.13, 0.13, -0.13, 0.13])  # FR, FL, RR, RL lateral offsets (m)
OFFSET = np.array([0.0, 0.5, 0.5, 0.0])  # the env's foot phase offsets (trot)
SCALE = np.array([0.3349, 0.3349, 0.1747] * 4)  # rad per action unit: hip, thigh, calf


def policy(obs: np.ndarray) -> np.ndarray:
    vx = obs[6] / 2.0
    wz = obs[8] / 0.25
    phase = np.arctan2(obs[45], obs[46]) / (2.0 * np.pi)
    # Positive in each foot's swing half (foot phase in [0.5, 1)), negative in its stance half.
    swing = -np.sin(2.0 * np.pi * np.mod(phase + OFFSET, 1.0))
    foot_speed = vx - wz * FOOT_Y
    offsets = np.zeros(12)
    offsets[1::3] = -STRIDE * foot_speed * swing
    offsets[2::3] = -LIFT * np.maximum(0.0, swing)
    return np.clip(offsets / SCALE, -5.0, 5.0)
