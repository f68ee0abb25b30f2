"""Demonstrations as learners read them: `load_demos` and `DemoSet` (issue 18's shared contract).

A DemoSet holds a demonstration dataset's episodes flattened into one array per observation key
(each episode's T+1 observations, so the final observation stays addressable) and one array of
actions (T per episode), with index helpers that never cross an episode's edge:

- `windows(obs_horizon, pred_horizon)`: observation histories and action chunks, padded at episode
  edges as Diffusion Policy's SequenceSampler does (the first observation repeated before the
  start, the last action repeated after the end; Chi et al. 2023, diffusion_policy/common/sampler.py);
- `pairs(k)`: (o_t, o_{t+k}, a_t) for inverse dynamics, o_{t+k} clipped to the episode's final
  observation (Brandfonbrener et al. 2023 pretrain on n-step pairs inside one trajectory).

Every array comes back as numpy; pixels stay uint8 (the encoders scale them), so a dataset of a few
hundred 64x64 demos fits in memory. The `*_index` methods give the flat indices instead, for
training loops that gather a batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from robolearn.errors import UserError

Obs = np.ndarray | dict[str, np.ndarray]


def take(obs: Obs, index: np.ndarray) -> Obs:
    """Index an observation array or every array of a dict observation by `index`."""
    if isinstance(obs, dict):
        return {k: v[index] for k, v in obs.items()}
    return obs[index]


def obs_len(obs: Obs) -> int:
    """Leading length of an observation array or dict of arrays."""
    if isinstance(obs, dict):
        return len(next(iter(obs.values())))
    return len(obs)


@dataclass
class DemoSet:
    """Demonstrations flattened for learners: observations with each episode's final one kept."""

    observations: Obs  # (sum(T_i + 1), ...) per key
    actions: np.ndarray  # (sum(T_i), act_dim)
    lengths: np.ndarray  # (E,) T_i, steps per episode
    observation_space: spaces.Space
    action_space: spaces.Box
    contexts: np.ndarray | None = None  # (E, c): each episode's hidden context (analysis/evaluation only)
    task: str | None = None
    path: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        # Start of each episode in the flat observation / action arrays.
        self.obs_start = np.concatenate([[0], np.cumsum(self.lengths + 1)[:-1]]).astype(np.int64)
        self.act_start = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    # -- sizes -----------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Number of demonstrations."""
        return len(self.lengths)

    @property
    def num_steps(self) -> int:
        """Number of (observation, action) steps over all demonstrations."""
        return int(self.lengths.sum())

    @property
    def pixels(self) -> bool:
        """True when observations are a Dict holding a `pixels` image."""
        return isinstance(self.observations, dict) and "pixels" in self.observations

    def step_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(episode, t) of every step, in flat order."""
        episode = np.repeat(np.arange(self.num_episodes), self.lengths)
        t = np.arange(self.num_steps) - self.act_start[episode]
        return episode, t

    # -- views -----------------------------------------------------------------------------------
    def window_index(
        self, obs_horizon: int, pred_horizon: int, past_actions: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices (N, To) into `observations` and (N, Tp) into `actions`, one row per step t.

        Row t holds o_{t-To+1..t} (the first observation repeated before the episode starts) and
        a_{t..t+Tp-1} (the last action repeated after it ends); with `past_actions` the chunk starts
        at t-To+1 as in Diffusion Policy's training windows (the first action repeated)."""
        if obs_horizon < 1 or pred_horizon < 1:
            raise UserError(
                f"windows(obs_horizon={obs_horizon}, pred_horizon={pred_horizon}): both must be >= 1"
            )
        episode, t = self.step_index()
        lengths = self.lengths[episode][:, None]
        obs_t = np.clip(t[:, None] + np.arange(-obs_horizon + 1, 1)[None, :], 0, None)
        obs_idx = self.obs_start[episode][:, None] + obs_t
        first = t - (obs_horizon - 1) if past_actions else t
        act_t = np.clip(first[:, None] + np.arange(pred_horizon)[None, :], 0, lengths - 1)
        act_idx = self.act_start[episode][:, None] + act_t
        return obs_idx, act_idx

    def windows(
        self, obs_horizon: int, pred_horizon: int, past_actions: bool = False
    ) -> tuple[Obs, np.ndarray]:
        """(obs_hist (N, To, ...), act_chunk (N, Tp, act_dim)), one window per step; see window_index."""
        obs_idx, act_idx = self.window_index(obs_horizon, pred_horizon, past_actions)
        return take(self.observations, obs_idx), self.actions[act_idx]

    def pair_index(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat indices of (o_t, o_{t+k}, a_t) for every step; t+k is clipped to the episode's end."""
        if k < 0:
            raise UserError(f"pairs(k={k}): k must be >= 0 (k=1 pairs each observation with the next)")
        episode, t = self.step_index()
        now = self.obs_start[episode] + t
        later = self.obs_start[episode] + np.minimum(t + k, self.lengths[episode])
        return now, later, np.arange(self.num_steps)

    def frame_index(self, offsets: np.ndarray | list[int]) -> np.ndarray:
        """Flat indices (N, len(offsets)) of o_{t+j} for every step t and offset j, clipped to the
        episode's observations 0..T (a non-causal window when offsets run both ways)."""
        episode, t = self.step_index()
        frames = np.clip(t[:, None] + np.asarray(offsets)[None, :], 0, self.lengths[episode][:, None])
        return self.obs_start[episode][:, None] + frames

    def pairs(self, k: int) -> tuple[Obs, Obs, np.ndarray]:
        """(o_t, o_{t+k}, a_t) for every step (o_{t+k} clipped to the episode's final observation)."""
        now, later, act = self.pair_index(k)
        return take(self.observations, now), take(self.observations, later), self.actions[act]

    def step_observations(self) -> Obs:
        """o_t for every step (each episode's final observation left out), aligned with `actions`."""
        now, _, _ = self.pair_index(0)
        return take(self.observations, now)

    def subset(self, episodes: int | np.ndarray) -> DemoSet:
        """The first `episodes` demonstrations (an int), or those at the given indices."""
        if isinstance(episodes, int | np.integer):
            chosen = np.arange(min(int(episodes), self.num_episodes))
        else:
            chosen = np.asarray(episodes)
        obs_idx = np.concatenate(
            [np.arange(self.obs_start[e], self.obs_start[e] + self.lengths[e] + 1) for e in chosen]
        )
        act_idx = np.concatenate(
            [np.arange(self.act_start[e], self.act_start[e] + self.lengths[e]) for e in chosen]
        )
        return DemoSet(
            observations=take(self.observations, obs_idx),
            actions=self.actions[act_idx],
            lengths=self.lengths[chosen],
            observation_space=self.observation_space,
            action_space=self.action_space,
            contexts=None if self.contexts is None else self.contexts[chosen],
            task=self.task,
            path=self.path,
            provenance=self.provenance,
        )

    def with_actions(self, actions: np.ndarray) -> DemoSet:
        """The same observations with other actions (e.g. an IDM's pseudo-labels), shape checked."""
        if actions.shape != self.actions.shape:
            raise UserError(f"actions of shape {actions.shape} do not match the demos' {self.actions.shape}")
        return DemoSet(
            self.observations,
            actions.astype(np.float32),
            self.lengths,
            self.observation_space,
            self.action_space,
            self.contexts,
            self.task,
            self.path,
            self.provenance,
        )


def _check_spaces(where: str, obs_space: spaces.Space, act_space: spaces.Space) -> None:
    if not isinstance(act_space, spaces.Box) or len(act_space.shape) != 1:
        raise UserError(
            f"{where}: action space {act_space} is not a 1-D Box; imitation learners need continuous actions"
        )
    if isinstance(obs_space, spaces.Dict):
        unknown = sorted(set(obs_space.spaces) - {"pixels", "state"})
        if unknown or not obs_space.spaces:
            raise UserError(
                f"{where}: observation keys {sorted(obs_space.spaces)} are not pixels/state; "
                "imitation encoders read a Dict of 'pixels' (H,W,3 uint8) and 'state' (n,)"
            )
        pix = obs_space.spaces.get("pixels")
        if pix is not None and (len(pix.shape or ()) != 3 or (pix.shape or (0,))[-1] != 3):
            raise UserError(f"{where}: pixels of shape {pix.shape} are not (H, W, 3) images")
        st = obs_space.spaces.get("state")
        if st is not None and len(st.shape or ()) != 1:
            raise UserError(f"{where}: state of shape {st.shape} is not a vector")
    elif not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1):
        raise UserError(
            f"{where}: observation space {obs_space} is neither a 1-D Box nor a Dict of pixels/state"
        )


def demoset_from_episodes(
    episodes: list[Any],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    task: str | None = None,
    path: Path | None = None,
    provenance: dict[str, Any] | None = None,
) -> DemoSet:
    """A DemoSet from robolearn.datasets Episodes (checks the spaces are ones the learners read)."""
    where = str(path) if path is not None else "demos"
    _check_spaces(where, observation_space, action_space)
    if not episodes:
        raise UserError(
            f"{where} holds no episodes; collect some demos first (python -m robolearn.imitation.collect)"
        )
    if isinstance(observation_space, spaces.Dict):
        observations: Obs = {
            key: np.concatenate([np.asarray(ep.observations[key]) for ep in episodes])
            for key in observation_space.spaces
        }
    else:
        observations = np.concatenate([np.asarray(ep.observations, dtype=np.float32) for ep in episodes])
    actions = np.concatenate([np.asarray(ep.actions, dtype=np.float32) for ep in episodes]).reshape(
        -1, int(np.prod(action_space.shape or (1,)))
    )
    contexts = None
    if all("context" in (ep.infos or {}) for ep in episodes):
        contexts = np.stack([np.asarray(ep.infos["context"])[0] for ep in episodes]).astype(np.float32)
    assert isinstance(action_space, spaces.Box)
    return DemoSet(
        observations=observations,
        actions=actions,
        lengths=np.array([len(ep.actions) for ep in episodes]),
        observation_space=observation_space,
        action_space=action_space,
        contexts=contexts,
        task=task,
        path=path,
        provenance=dict(provenance or {}),
    )


def load_demos(name_or_path: str | Path, task: str | None = None) -> DemoSet:
    """Open a demonstration dataset (path or minari id) through robolearn.datasets.

    With `task`, the dataset's provenance must name that task; the spaces must be a 1-D Box of
    actions and a 1-D Box or a Dict of pixels/state observations (one-line UserError otherwise)."""
    from robolearn.datasets import load_dataset

    data = load_dataset(name_or_path)
    prov = data.metadata.get("robolearn") or {}
    recorded = prov.get("task")
    if task is not None and recorded != task:
        raise UserError(
            f"{data.path} holds demos of task {recorded}, not {task}; "
            f"collect {task} demos (python -m robolearn.imitation.collect task={task} ...) or pick another dataset"
        )
    return demoset_from_episodes(
        data.episodes, data.observation_space, data.action_space, recorded, data.path, prov
    )


def check_same_spaces(where: str, expected: DemoSet | dict[str, Any], got: DemoSet) -> None:
    """A one-line UserError when `got`'s task or spaces differ from `expected`'s (a DemoSet or a
    saved {"task", "observation_space", "action_space"} record of serialised spaces)."""
    from robolearn.datasets.spaces import describe, deserialize_space, spaces_match

    if isinstance(expected, DemoSet):
        task = expected.task
        obs_space: spaces.Space = expected.observation_space
        act_space: spaces.Space = expected.action_space
    else:
        task = expected.get("task")
        obs_space = deserialize_space(expected["observation_space"])
        act_space = deserialize_space(expected["action_space"])
    if task is not None and got.task is not None and task != got.task:
        raise UserError(
            f"{got.path}: demos of task {got.task}, but {where} was trained on task {task}; use {task} demos"
        )
    if not spaces_match(got.observation_space, obs_space):
        raise UserError(
            f"{got.path}: observation space {describe(got.observation_space)} does not match {where}'s "
            f"{describe(obs_space)}; use demos of the same task and observation type"
        )
    if not spaces_match(got.action_space, act_space):
        raise UserError(
            f"{got.path}: action space {describe(got.action_space)} does not match {where}'s "
            f"{describe(act_space)}; use demos of the same task"
        )
