"""observation_history: the actor's input is the last H frames, oldest first, as the deploy runtime stacks them.

The deploy side of the same contract (a recorded session's frames through ObservationPipeline) is
tests/deploy/test_deploy_golden.py's go2-history_4 case; these check the batched env: stepping
shifts, an auto-reset fills with the new episode's first frame, the newest frame is exactly the
history-free env's observation (same generator stream, noise included), and snapshots carry it.
"""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.envs.vector import make_batched_env
from robolearn.errors import UserError

ENV = "robolearn/Go2Velocity-v1"
N = 4
H = 3
KWARGS = {"gait_period_s": 0.5, "randomization": {"obs_noise": 1.0}, "max_episode_steps": 6}


def _actions(step: int) -> np.ndarray:
    return np.random.default_rng(step).uniform(-1.0, 1.0, size=(N, 12)).astype(np.float32)


def test_history_shifts_on_steps_and_refills_on_auto_reset() -> None:
    stacked = make_batched_env(ENV, N, seed=5, observation_history=H, **KWARGS)
    single = make_batched_env(ENV, N, seed=5, **KWARGS)
    try:
        frame = single.observation_space.shape[0]
        assert stacked.observation_space.shape == (H * frame,)
        obs, ref = stacked.reset(), single.reset()
        # A new episode's history is its first frame repeated.
        np.testing.assert_array_equal(obs, np.tile(ref, (1, H)))
        resets = 0
        for t in range(14):
            prev = obs
            obs, _, done, infos = stacked.step(_actions(t))
            ref, _, ref_done, ref_infos = single.step(_actions(t))
            np.testing.assert_array_equal(done, ref_done)
            # The newest frame is the history-free env's observation, noise draws included.
            np.testing.assert_array_equal(obs[:, -frame:], ref)
            for i in range(N):
                if done[i]:
                    resets += 1
                    np.testing.assert_array_equal(obs[i], np.tile(ref[i], H))
                    # The finished episode's last input: its previous frames shifted, its final frame newest.
                    final = infos[i]["terminal_observation"]
                    np.testing.assert_array_equal(final[:-frame], prev[i][frame:])
                    np.testing.assert_array_equal(final[-frame:], ref_infos[i]["terminal_observation"])
                else:
                    np.testing.assert_array_equal(obs[i][:-frame], prev[i][frame:])
        assert resets >= N  # every env went through at least one time-limit reset
        # A reset of one env alone refills its history only; re-observing the same step replaces
        # the newest frame of the others instead of shifting their histories.
        task = stacked.task
        task.reset_envs(np.array([1]))
        now = task.backend.frame()
        alone = task.observe(now, np.array([1]))[0]
        np.testing.assert_array_equal(alone, np.tile(alone[-frame:], H))
        again = task.observe(now)
        np.testing.assert_array_equal(again[1], np.tile(again[1][-frame:], H))  # still a new episode
        for i in (0, 2, 3):
            np.testing.assert_array_equal(again[i][:-frame], obs[i][:-frame])
    finally:
        stacked.close()
        single.close()


def test_snapshot_carries_the_history() -> None:
    venv = make_batched_env(ENV, N, seed=2, observation_history=H, **KWARGS)
    try:
        venv.reset()
        for t in range(4):
            venv.step(_actions(t))
        state = venv.get_state()
        after = [venv.step(_actions(10 + t))[0] for t in range(4)]
        venv.step(_actions(99))  # move on, then restore
        venv.set_state(state)
        again = [venv.step(_actions(10 + t))[0] for t in range(4)]
        for a, b in zip(after, again, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        venv.close()


def test_a_single_env_starts_each_episode_with_a_full_history() -> None:
    import gymnasium as gym

    env = gym.make(ENV, gait_period_s=0.5, observation_history=2)
    try:
        first, _ = env.reset(seed=0)
        half = first.shape[0] // 2
        np.testing.assert_array_equal(first[:half], first[half:])
        second = env.step(np.zeros(12, dtype=np.float32))[0]
        np.testing.assert_array_equal(second[:half], first[half:])
        assert not np.array_equal(second[half:], first[half:])  # the clock moved on
    finally:
        env.close()


@pytest.mark.parametrize("bad", [0, -2, 2.5, "3", True])
def test_a_bad_history_is_a_one_line_error(bad: object) -> None:
    with pytest.raises(UserError, match=r"observation_history=.* must be a whole number of frames"):
        make_batched_env(ENV, 2, observation_history=bad)
