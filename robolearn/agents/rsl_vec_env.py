"""An SB3 VecEnv seen as rsl_rl's torch VecEnv: observations as a TensorDict of groups, actions,
rewards, dones and time-outs as tensors.

Any training VecEnv robolearn builds fits under it: a DummyVecEnv of gymnasium envs (Pendulum-v1,
Hopper-v5, ...) or the batched robot tasks (robolearn/envs/vector.py), which auto-reset in
the same step as SB3's VecEnvs do, as rsl_rl's loop expects. Group names follow rsl_rl's
convention (rsl_rl/env/vec_env.py, rsl_rl/utils/utils.py:resolve_obs_groups): a plain Box
observation is the group "policy"; a Dict observation space gives one group per key, so a task that
exposes privileged observations (e.g. {"policy": ..., "critic": ...}) can feed an asymmetric critic.
A batched robot task's privileged observations (RobotTask.privileged_observation, e.g. the velocity
task's critic_observes_base_lin_vel) come as the group "critic"; agent.obs_groups.critic names it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from robolearn.envs.state import get_vec_env_state, set_vec_env_state

POLICY_GROUP = "policy"
CRITIC_GROUP = "critic"  # a batched task's privileged observations (critic only), when it has any


class RslVecEnv:
    """rsl_rl's VecEnv interface (duck-typed, so that this module loads without rsl-rl-lib)."""

    def __init__(self, venv: VecEnv, device: str = "cpu") -> None:
        self.venv = venv
        self.device = device
        self.num_envs = int(venv.num_envs)
        space = venv.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"rsl_rl's PPO needs a Box action space, not {space}")
        self.action_space = space
        self.observation_space = venv.observation_space
        self.num_actions = int(np.prod(space.shape))
        # Gaussian samples are unbounded; the env gets them clipped to its bounds, as SB3's PPO does.
        self._low = np.asarray(space.low, dtype=np.float32)
        self._high = np.asarray(space.high, dtype=np.float32)
        self._bounded = bool(np.isfinite(self._low).any() or np.isfinite(self._high).any())
        self.cfg: dict[str, Any] = {}
        self._obs: Any = None

    # -- rsl_rl's interface ----------------------------------------------------------------------------
    def reset(self) -> Any:
        """Reset every env (seeded as the VecEnv was) and return the first observations."""
        self._obs = self._to_groups(self.venv.reset())
        return self._obs

    def get_observations(self) -> Any:
        """The current observations (TensorDict of groups)."""
        if self._obs is None:
            return self.reset()
        return self._obs

    def step(self, actions: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step all envs; extras carry `time_outs` (truncations that were not failures, which rsl_rl's
        PPO bootstraps) and the episodes that ended, as (return, length) pairs."""
        act = actions.detach().to("cpu").numpy().reshape((self.num_envs, *self.action_space.shape))
        if self._bounded:
            act = np.clip(act, self._low, self._high)
        obs, rewards, dones, infos = self.venv.step(act)
        time_outs = np.zeros(self.num_envs, dtype=np.float32)
        episodes: list[tuple[float, int]] = []
        for i in np.flatnonzero(dones):
            info = infos[i]
            time_outs[i] = float(bool(info.get("TimeLimit.truncated", False)))
            episode = info.get("episode")
            if episode is not None:
                episodes.append((float(episode["r"]), int(episode["l"])))
        self._obs = self._to_groups(obs)
        return (
            self._obs,
            torch.as_tensor(np.asarray(rewards, dtype=np.float32), device=self.device),
            torch.as_tensor(np.asarray(dones, dtype=bool), device=self.device),
            {"time_outs": torch.as_tensor(time_outs, device=self.device), "episodes": episodes},
        )

    # -- robolearn's -----------------------------------------------------------------------------------
    def _to_groups(self, obs: Any) -> Any:
        from tensordict import TensorDict  # rsl-rl-lib's dependency; present wherever rsl_rl is

        items = list(obs.items()) if isinstance(obs, dict) else [(POLICY_GROUP, obs)]
        privileged = getattr(self.venv, "privileged_observations", None)
        if privileged is not None:
            items.append((CRITIC_GROUP, privileged))
        # One copy into torch-owned memory: the VecEnv may reuse its arrays in the next step, while
        # rsl_rl keeps this step's observations until then (PPO.act stores them before env.step).
        groups = {
            name: torch.tensor(np.asarray(value, dtype=np.float32), device=self.device).reshape(
                self.num_envs, -1
            )
            for name, value in items
        }
        return TensorDict(groups, batch_size=[self.num_envs], device=self.device)

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly: the VecEnv's snapshot and the current observations."""
        obs = self.get_observations()
        return {
            "venv": get_vec_env_state(self.venv),
            "obs": {name: value.clone().cpu() for name, value in obs.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore get_state()'s snapshot into an identically built env."""
        from tensordict import TensorDict

        set_vec_env_state(self.venv, state["venv"])
        groups = {name: value.to(self.device) for name, value in state["obs"].items()}
        self._obs = TensorDict(groups, batch_size=[self.num_envs], device=self.device)

    def close(self) -> None:
        """Close the underlying VecEnv."""
        self.venv.close()
