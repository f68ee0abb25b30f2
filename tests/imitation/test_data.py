"""robolearn.imitation.data: load_demos checks, windows/pairs padding at episode edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from robolearn.datasets import Episode, write_dataset
from robolearn.errors import UserError
from robolearn.imitation.data import check_same_spaces, load_demos


def _episode(length: int, offset: float, pixels: bool = False) -> Episode:
    # Observation at step t is offset + t, so windows can be read off by value.
    state = (offset + np.arange(length + 1, dtype=np.float32))[:, None].repeat(2, axis=1)
    obs: np.ndarray | dict[str, np.ndarray] = state
    if pixels:
        img = np.zeros((length + 1, 8, 8, 3), dtype=np.uint8)
        img[:, 0, 0, 0] = np.arange(length + 1)
        obs = {"pixels": img, "state": state}
    done = np.zeros(length, dtype=bool)
    done[-1] = True
    return Episode(
        observations=obs,
        actions=(offset + np.arange(length, dtype=np.float32))[:, None],
        rewards=np.zeros(length, dtype=np.float32),
        terminations=np.zeros(length, dtype=bool),
        truncations=done,
        infos={"context": np.full((length + 1, 2), offset, dtype=np.float32)},
    )


def write_demos(
    path: Path, lengths: tuple[int, ...] = (3, 5), pixels: bool = False, task: str = "toy"
) -> Path:
    """A tiny demo dataset: episode i has observations 100*i + t and actions 100*i + t."""
    state_space = spaces.Box(-1e3, 1e3, (2,), np.float32)
    obs_space: spaces.Space = state_space
    if pixels:
        obs_space = spaces.Dict({"pixels": spaces.Box(0, 255, (8, 8, 3), np.uint8), "state": state_space})
    write_dataset(
        path,
        [_episode(n, 100.0 * i, pixels) for i, n in enumerate(lengths)],
        dataset_id="test/toy-v0",
        observation_space=obs_space,
        action_space=spaces.Box(-1e3, 1e3, (1,), np.float32),
        provenance={"task": task, "context_dim": 2, "pixels": pixels},
    )
    return path


def test_windows_pad_with_first_obs_and_last_action(tmp_path: Path) -> None:
    demos = load_demos(write_demos(tmp_path / "d"), task="toy")
    assert demos.num_episodes == 2 and demos.num_steps == 8
    obs, act = demos.windows(obs_horizon=2, pred_horizon=3)
    assert isinstance(obs, np.ndarray)
    assert obs.shape == (8, 2, 2) and act.shape == (8, 3, 1)
    # Episode 0 (3 steps): t=0 repeats o_0 before the start; the chunk at t=2 repeats a_2.
    assert obs[0, :, 0].tolist() == [0, 0]
    assert obs[2, :, 0].tolist() == [1, 2]
    assert act[2, :, 0].tolist() == [2, 2, 2]
    # Episode 1 starts fresh: no value from episode 0 leaks into its first window.
    assert obs[3, :, 0].tolist() == [100, 100]
    assert act[3, :, 0].tolist() == [100, 101, 102]
    assert act[7, :, 0].tolist() == [104, 104, 104]
    _, past = demos.windows(obs_horizon=2, pred_horizon=3, past_actions=True)
    assert past[3, :, 0].tolist() == [100, 100, 101]
    assert demos.contexts is not None and demos.contexts[:, 0].tolist() == [0, 100]


def test_pairs_clip_at_the_final_observation(tmp_path: Path) -> None:
    demos = load_demos(write_demos(tmp_path / "d"))
    now, later, act = demos.pairs(2)
    assert isinstance(now, np.ndarray) and isinstance(later, np.ndarray)
    assert now[:, 0].tolist() == [0, 1, 2, 100, 101, 102, 103, 104]
    # o_{t+2} never passes the episode's final observation (index T = 3 and T = 5).
    assert later[:, 0].tolist() == [2, 3, 3, 102, 103, 104, 105, 105]
    assert act[:, 0].tolist() == now[:, 0].tolist()


def test_pixel_demos_keep_dicts_and_subset(tmp_path: Path) -> None:
    demos = load_demos(write_demos(tmp_path / "d", pixels=True))
    assert demos.pixels
    obs, _ = demos.windows(2, 1)
    assert (
        isinstance(obs, dict) and obs["pixels"].shape == (8, 2, 8, 8, 3) and obs["pixels"].dtype == np.uint8
    )
    one = demos.subset(1)
    assert one.num_episodes == 1 and one.num_steps == 3
    _now, later, _ = one.pairs(1)
    assert isinstance(later, dict) and later["pixels"][:, 0, 0, 0].tolist() == [1, 2, 3]


def test_wrong_task_and_spaces_are_one_line_errors(tmp_path: Path) -> None:
    path = write_demos(tmp_path / "d", task="reacher")
    with pytest.raises(UserError, match="task reacher, not pointmass_pixels") as err:
        load_demos(path, task="pointmass_pixels")
    assert "\n" not in str(err.value)
    state = load_demos(path)
    pixels = load_demos(write_demos(tmp_path / "p", pixels=True, task="reacher"))
    with pytest.raises(UserError, match="observation space") as err:
        check_same_spaces("the encoder", state, pixels)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="obs_horizon=0"):
        state.windows(0, 4)
