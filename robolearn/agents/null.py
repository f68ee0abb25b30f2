"""Sanity agents: `agent=zero` and `agent=random` run any env through the train and evaluate verbs.

They learn nothing. They exist to debug an env or a pipeline (does it step, terminate, log, resume,
export?) and as the floor every learning curve should clear. Both are SB3 algorithms, so run
directories, checkpoints and evaluation treat them like any other agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import safe_mean
from stable_baselines3.common.vec_env import VecEnv


class FixedActionPolicy(BasePolicy):
    """Zero actions (the middle of the bounds when 0 is outside them) or uniform random actions."""

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, kind: str = "zero", **_: Any
    ) -> None:
        super().__init__(observation_space, action_space)
        if not isinstance(action_space, spaces.Box):
            raise TypeError(f"agent={kind} supports Box action spaces, not {type(action_space).__name__}")
        self.kind = kind
        low = th.as_tensor(action_space.low, dtype=th.float32)
        high = th.as_tensor(action_space.high, dtype=th.float32)
        self.low: th.Tensor
        self.high: th.Tensor
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def _predict(self, observation: Any, deterministic: bool = False) -> th.Tensor:
        n = (
            observation.shape[0]
            if not isinstance(observation, dict)
            else next(iter(observation.values())).shape[0]
        )
        low, high = self.low.expand(n, -1), self.high.expand(n, -1)
        if self.kind == "random":
            return low + th.rand(low.shape, device=low.device) * (high - low)
        return th.clamp(th.zeros_like(low), low, high)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "kind": self.kind}


class NullAgent(BaseAlgorithm):
    """Steps the env with a fixed-action policy; `learn` only collects and logs episodes."""

    kind: ClassVar[str] = "zero"
    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": FixedActionPolicy}
    # The trainer's checkpoint/stop hook, called before each block of steps (as for PPO/SAC/TD3).
    before_collect: Callable[[BaseAlgorithm], None] | None = None

    def __init__(
        self,
        policy: Any,
        env: Any,
        seed: int | None = None,
        device: str = "cpu",
        verbose: int = 0,
        _init_setup_model: bool = True,
        **_: Any,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate=0.0,
            seed=seed,
            device=device,
            verbose=verbose,
            supported_action_spaces=(spaces.Box,),
        )
        if _init_setup_model:
            self._setup_model()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "before_collect"]

    def _setup_model(self) -> None:
        self.set_random_seed(self.seed)
        policy = self.policy_class(self.observation_space, self.action_space, kind=self.kind)
        self.policy = policy.to(self.device)

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, n_steps: int) -> None:
        """Step every env n_steps times with the policy's actions."""
        callback.on_rollout_start()
        for _ in range(n_steps):
            assert self._last_obs is not None
            actions, _ = self.predict(self._last_obs)
            new_obs, _, dones, infos = env.step(actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                break
            self._update_info_buffer(infos, dones)
            self._episode_num += int(np.sum(dones))
            self._last_obs = new_obs  # type: ignore[assignment]
        callback.on_rollout_end()

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> NullAgent:
        """Collect `total_timesteps` steps in blocks of 100 per env, logging episode returns."""
        total_timesteps, cb = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        cb.on_training_start(locals(), globals())
        assert self.env is not None
        iteration = 0
        while self.num_timesteps < total_timesteps:
            if self.before_collect is not None:
                self.before_collect(self)
            block = min(100, max(1, (total_timesteps - self.num_timesteps) // self.env.num_envs))
            self.collect_rollouts(self.env, cb, block)
            iteration += 1
            if log_interval and iteration % log_interval == 0 and self.ep_info_buffer:
                self.logger.record("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
                self.logger.record("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
                self.logger.dump(step=self.num_timesteps)
        cb.on_training_end()
        return self


class ZeroAgent(NullAgent):
    """agent=zero: always the zero action."""

    kind = "zero"


class RandomAgent(NullAgent):
    """agent=random: uniform random actions within the bounds (torch's seeded generator)."""

    kind = "random"
