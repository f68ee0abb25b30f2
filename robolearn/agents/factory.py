"""Build an SB3 PPO/SAC/TD3 from its config, with the loop hook that makes checkpoints exact.

Checkpoints are taken at the top of SB3's training loop, just before each `collect_rollouts`: the
previous rollout has been trained on and no RNG of the next one has been drawn yet, so a run resumed
from there continues bit for bit. SB3 has no callback at that point (`on_rollout_start` fires after
the gSDE noise reset), hence a thin subclass per algorithm. The subclasses add no saved attributes but PPO's adaptive
learning rate (two plain attributes that a plain load sets and ignores): their checkpoints load with
plain `stable_baselines3.<Algo>.load`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch.nn as nn
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecEnv

from robolearn.agents.null import RandomAgent, ZeroAgent
from robolearn.agents.rsl_ppo import RslPolicy
from robolearn.errors import UserError, close_matches

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}

LoopHook = Callable[[BaseAlgorithm], None]


class _LoopHookMixin:
    """Calls `self.before_collect(self)` at the top of every iteration of SB3's learn loop."""

    before_collect: LoopHook | None = None

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> Any:
        hook = self.before_collect
        if hook is not None:
            hook(self)  # type: ignore[arg-type]
        return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "before_collect"]  # type: ignore[misc]


class RobolearnPPO(_LoopHookMixin, PPO):
    """PPO with the checkpoint loop hook and, with `desired_kl`, a KL-adaptive learning rate.

    The adaptive rule is rsl_rl's (legged_gym's PPO): after an update whose KL divergence from the
    rollout policy exceeds twice `desired_kl` the learning rate shrinks by 1.5x, below half of it
    the rate grows by 1.5x, within [1e-5, 1e-2]. rsl_rl adapts after every minibatch from the exact
    Gaussian KL; SB3's update loop has no hook there, so here it adapts once per rollout from the
    mean of SB3's approximate KL over the update's minibatches. The current rate is a plain
    attribute, saved with the model: a resumed run continues from it.
    """

    LR_BOUNDS = (1e-5, 1e-2)

    def __init__(self, *args: Any, desired_kl: float | None = None, **kwargs: Any) -> None:
        self.desired_kl = desired_kl
        self.adaptive_lr: float | None = None
        super().__init__(*args, **kwargs)

    def _update_learning_rate(self, optimizers: Any) -> None:
        if self.desired_kl is None:
            super()._update_learning_rate(optimizers)
            return
        if self.adaptive_lr is None:
            self.adaptive_lr = float(self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/learning_rate", self.adaptive_lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = self.adaptive_lr

    # Called after every PPO update with the model, its rollout buffer still filled (a method's
    # extra update, e.g. prior_init's kickstarting); not saved with the model.
    after_train: LoopHook | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "after_train"]

    def train(self) -> None:
        """One PPO update, a method's after_train hook, then the learning-rate adaptation from the
        update's KL."""
        super().train()
        if self.after_train is not None:
            self.after_train(self)
        if self.desired_kl is None or self.adaptive_lr is None:
            return
        kl = self.logger.name_to_value.get("train/approx_kl")
        if kl is None or not np.isfinite(kl):
            return
        lo, hi = self.LR_BOUNDS
        if kl > 2.0 * self.desired_kl:
            self.adaptive_lr = max(lo, self.adaptive_lr / 1.5)
        elif kl < 0.5 * self.desired_kl:
            self.adaptive_lr = min(hi, self.adaptive_lr * 1.5)


class RobolearnSAC(_LoopHookMixin, SAC):
    """SAC with the checkpoint loop hook."""


class RobolearnTD3(_LoopHookMixin, TD3):
    """TD3 with the checkpoint loop hook."""


class RobolearnZero(_LoopHookMixin, ZeroAgent):
    """agent=zero with the checkpoint loop hook."""


class RobolearnRandom(_LoopHookMixin, RandomAgent):
    """agent=random with the checkpoint loop hook."""


ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": RobolearnPPO,
    "sac": RobolearnSAC,
    "td3": RobolearnTD3,
    "zero": RobolearnZero,
    "random": RobolearnRandom,
}

# The class each algorithm's final/ and best/ models load with (`cls.load(path, device=...)`, then
# `predict`): plain SB3 for the learning agents; agent=rsl_ppo's actor file loads with RslPolicy
# (robolearn/agents/rsl_ppo.py, which imports rsl-rl-lib only when a policy is loaded).
SB3_CLASSES: dict[str, Any] = {
    "ppo": PPO,
    "sac": SAC,
    "td3": TD3,
    "zero": ZeroAgent,
    "random": RandomAgent,
    "rsl_ppo": RslPolicy,
}


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The class for an algorithm name, or a one-line error listing the choices."""
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise UserError(
            f"agent.algo={algo} is not a known algorithm{close_matches(algo, ALGORITHMS)}; "
            f"choose one of {', '.join(sorted(ALGORITHMS))}"
        ) from None


def _schedule(value: float, kind: str, key: str) -> float | Callable[[float], float]:
    if kind == "constant":
        return float(value)
    if kind == "linear":
        start = float(value)
        return lambda progress_remaining: progress_remaining * start
    raise UserError(f"{key}={kind} is not a schedule; use constant or linear")


def _policy_kwargs(pk: Any, algo: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shared = list(pk.net_arch) if pk.net_arch is not None else None
    if pk.net_arch_pi is not None or pk.net_arch_critic is not None:
        default = {"ppo": [64, 64], "sac": [256, 256], "td3": [400, 300]}.get(algo, [64, 64])  # SB3's
        critic_key = "vf" if algo == "ppo" else "qf"
        pi = pk.net_arch_pi if pk.net_arch_pi is not None else (shared or default)
        critic = pk.net_arch_critic if pk.net_arch_critic is not None else (shared or default)
        out["net_arch"] = {"pi": list(pi), critic_key: list(critic)}
    elif shared is not None:
        out["net_arch"] = shared
    if pk.activation != "default":
        if pk.activation not in ACTIVATIONS:
            raise UserError(
                f"agent.policy_kwargs.activation={pk.activation} is unknown"
                f"{close_matches(pk.activation, ACTIVATIONS)}; choose one of {', '.join(ACTIVATIONS)}"
            )
        out["activation_fn"] = ACTIVATIONS[pk.activation]
    for name in ("log_std_init", "ortho_init", "squash_output", "n_critics"):
        value = getattr(pk, name)
        if value is not None:
            out[name] = value
    return out


def _number_or_auto(value: str, key: str) -> str | float:
    if value == "auto" or value.startswith("auto_"):
        return value
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{key}={value} is neither 'auto', 'auto_<init>' nor a number") from None


def _action_noise(agent: Any, env: VecEnv) -> ActionNoise | None:
    kind = agent.action_noise
    if kind == "none":
        return None
    shape = env.action_space.shape
    assert shape is not None
    mean, sigma = np.zeros(shape), agent.action_noise_std * np.ones(shape)
    if kind == "normal":
        return NormalActionNoise(mean, sigma)
    if kind == "ornstein_uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean, sigma)
    raise UserError(f"agent.action_noise={kind} is unknown; choose none, normal or ornstein_uhlenbeck")


def agent_kwargs(agent: Any, env: VecEnv) -> dict[str, Any]:
    """SB3 constructor keyword arguments for an agent config node."""
    if agent.algo in ("zero", "random"):
        return {}
    kw: dict[str, Any] = {
        "learning_rate": _schedule(agent.learning_rate, agent.lr_schedule, "agent.lr_schedule"),
        "gamma": agent.gamma,
        "use_sde": agent.use_sde,
        "sde_sample_freq": agent.sde_sample_freq,
        "policy_kwargs": _policy_kwargs(agent.policy_kwargs, agent.algo),
    }
    if agent.algo == "ppo":
        kw.update(
            n_steps=agent.n_steps,
            batch_size=agent.batch_size,
            n_epochs=agent.n_epochs,
            gae_lambda=agent.gae_lambda,
            clip_range=_schedule(agent.clip_range, agent.clip_range_schedule, "agent.clip_range_schedule"),
            normalize_advantage=agent.normalize_advantage,
            ent_coef=agent.ent_coef,
            vf_coef=agent.vf_coef,
            max_grad_norm=agent.max_grad_norm,
            target_kl=agent.target_kl,
            desired_kl=agent.desired_kl,
        )
    else:
        kw.update(
            buffer_size=agent.buffer_size,
            learning_starts=agent.learning_starts,
            batch_size=agent.batch_size,
            tau=agent.tau,
            train_freq=agent.train_freq,
            gradient_steps=agent.gradient_steps,
            optimize_memory_usage=agent.optimize_memory_usage,
        )
        if agent.optimize_memory_usage:
            kw["replay_buffer_kwargs"] = {"handle_timeout_termination": False}
    if agent.algo == "sac":
        kw.update(
            ent_coef=_number_or_auto(agent.ent_coef, "agent.ent_coef"),
            target_update_interval=agent.target_update_interval,
            target_entropy=_number_or_auto(agent.target_entropy, "agent.target_entropy"),
        )
    if agent.algo == "td3":
        kw.pop("use_sde")
        kw.pop("sde_sample_freq")
        kw.update(
            action_noise=_action_noise(agent, env),
            policy_delay=agent.policy_delay,
            target_policy_noise=agent.target_policy_noise,
            target_noise_clip=agent.target_noise_clip,
        )
    return kw


def build_agent(
    agent: Any,
    env: VecEnv,
    seed: int,
    device: str,
    algorithm: type[BaseAlgorithm] | None = None,
    **extra: Any,
) -> BaseAlgorithm:
    """Construct the algorithm for `agent.algo` (or `algorithm`, e.g. a method's subclass) on env, seeded."""
    cls = algorithm or algorithm_class(agent.algo)
    return cls(
        agent.policy,
        env,
        seed=seed,
        device=device,
        verbose=0,
        **agent_kwargs(agent, env),
        **extra,
    )
