"""agent=rsl_ppo: rsl-rl-lib's PPO and MLP actor/critic, built from an agent config node.

rsl-rl-lib is an extra (`pip install "robolearn[rsl]"`), imported only when this agent is used.
Our loop (robolearn/runs/rsl_trainer.py) drives `rsl_rl.algorithms.PPO` itself, the way
rsl_rl/runners/on_policy_runner.py does, so that the run directory stays robolearn's.

`RslPolicy` is the trained actor as evaluation and export see it: `predict(obs, deterministic)`
like an SB3 model, observation and action spaces, and `export_module()` for ONNX. Its file
(`final/model.zip`, `best/model.zip`) is a `torch.save` archive (itself a zip) holding the actor's
weights, including the empirical observation normaliser, and what rebuilds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from robolearn.agents.rsl_vec_env import CRITIC_GROUP, POLICY_GROUP, RslVecEnv
from robolearn.errors import UserError

MISSING_RSL = 'agent=rsl_ppo needs rsl-rl-lib: pip install "robolearn[rsl]"'
POLICY_FORMAT = "robolearn-rsl_ppo-actor"
POLICY_FORMAT_VERSION = 1


def import_rsl() -> Any:
    """The rsl_rl package, or the one-line error naming the extra to install."""
    try:
        import rsl_rl.algorithms
        import rsl_rl.models
        import rsl_rl.storage
    except ImportError:
        raise UserError(MISSING_RSL) from None
    return rsl_rl


def obs_groups(agent: Any, available: list[str]) -> dict[str, list[str]]:
    """The actor's and critic's observation groups from agent.obs_groups, checked against the env's."""
    groups = OmegaConf.to_container(agent.obs_groups, resolve=True) if agent.obs_groups is not None else {}
    assert isinstance(groups, dict)
    out: dict[str, list[str]] = {}
    for role in ("actor", "critic"):
        chosen = [str(g) for g in groups.get(role) or [POLICY_GROUP]]
        for group in chosen:
            if group not in available:
                hint = (
                    " (the critic group comes from a batched task's privileged values: "
                    "env.kwargs.critic_observes_base_lin_vel=true with env.kwargs.backend=batch or warp)"
                    if group == CRITIC_GROUP
                    else ""
                )
                raise UserError(
                    f"agent.obs_groups.{role} names {group}, which the env does not provide; "
                    f"its observation groups: {', '.join(available)}{hint}"
                )
        out[role] = chosen
    if CRITIC_GROUP in available and CRITIC_GROUP not in out["critic"]:
        raise UserError(
            f"the env provides privileged values for the critic, but agent.obs_groups.critic="
            f"[{', '.join(out['critic'])}] leaves them out; set agent.obs_groups.critic=[policy,critic] "
            "or env.kwargs.critic_observes_base_lin_vel=false"
        )
    return out


def _actor_kwargs(agent: Any) -> dict[str, Any]:
    return {
        "hidden_dims": [int(n) for n in agent.actor_hidden_dims],
        "activation": str(agent.activation),
        "obs_normalization": bool(agent.empirical_normalization),
        "distribution_cfg": {
            "class_name": "rsl_rl.modules.distribution:GaussianDistribution",
            "init_std": float(agent.init_noise_std),
            "std_type": str(agent.noise_std_type),
        },
    }


def _critic_kwargs(agent: Any) -> dict[str, Any]:
    return {
        "hidden_dims": [int(n) for n in agent.critic_hidden_dims],
        "activation": str(agent.activation),
        "obs_normalization": bool(agent.empirical_normalization),
    }


def build_rsl_ppo(agent: Any, env: RslVecEnv, device: str) -> Any:
    """rsl_rl's PPO with MLP actor and critic for env, as agent configures them (draws torch's RNG)."""
    rsl = import_rsl()
    obs = env.get_observations()
    groups = obs_groups(agent, list(obs.keys()))
    actor = rsl.models.MLPModel(obs, groups, "actor", env.num_actions, **_actor_kwargs(agent)).to(device)
    gain = float(agent.get("actor_output_gain", 1.0))
    if gain != 1.0:  # the initial mean action near zero (agent.actor_output_gain)
        last = [m for m in actor.mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.mul_(gain)
            last.bias.mul_(gain)
    critic = rsl.models.MLPModel(obs, groups, "critic", 1, **_critic_kwargs(agent)).to(device)
    storage = rsl.storage.RolloutStorage(
        "rl", env.num_envs, int(agent.num_steps_per_env), obs, [env.num_actions], device
    )
    return rsl.algorithms.PPO(
        actor,
        critic,
        storage,
        num_learning_epochs=int(agent.num_learning_epochs),
        num_mini_batches=int(agent.num_mini_batches),
        clip_param=float(agent.clip_param),
        gamma=float(agent.gamma),
        lam=float(agent.lam),
        value_loss_coef=float(agent.value_loss_coef),
        entropy_coef=float(agent.entropy_coef),
        learning_rate=float(agent.learning_rate),
        max_grad_norm=float(agent.max_grad_norm),
        use_clipped_value_loss=bool(agent.use_clipped_value_loss),
        schedule=str(agent.schedule),
        desired_kl=None if agent.desired_kl is None else float(agent.desired_kl),
        device=device,
    )


def policy_payload(alg: Any, agent: Any, env: RslVecEnv) -> dict[str, Any]:
    """What RslPolicy.load rebuilds the actor from (weights, normaliser, shapes, spaces)."""
    obs = env.get_observations()
    return {
        "format": POLICY_FORMAT,
        "format_version": POLICY_FORMAT_VERSION,
        "actor_state_dict": {k: v.detach().cpu().clone() for k, v in alg.get_policy().state_dict().items()},
        "actor_kwargs": _actor_kwargs(agent),
        "obs_groups": obs_groups(agent, list(obs.keys())),
        "obs_shapes": {name: int(value.shape[-1]) for name, value in obs.items()},
        "observation_space": env.observation_space,
        "action_space": env.action_space,
    }


class RslPolicy:
    """A trained rsl_ppo actor used like an SB3 model by evaluation and export."""

    def __init__(self, actor: Any, payload: dict[str, Any]) -> None:
        self.actor = actor.eval()
        self.payload = payload
        self.observation_space: gym.Space[Any] = payload["observation_space"]
        self.action_space: gym.spaces.Box = payload["action_space"]
        self.groups: list[str] = list(payload["obs_groups"]["actor"])
        self._low = torch.as_tensor(self.action_space.low, dtype=torch.float32)
        self._high = torch.as_tensor(self.action_space.high, dtype=torch.float32)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], device: str = "cpu") -> RslPolicy:
        """Rebuild the actor (needs rsl-rl-lib) and load its weights."""
        rsl = import_rsl()
        from tensordict import TensorDict

        shapes = payload["obs_shapes"]
        obs = TensorDict({k: torch.zeros(1, n) for k, n in shapes.items()}, batch_size=[1])
        actor = rsl.models.MLPModel(
            obs,
            payload["obs_groups"],
            "actor",
            int(np.prod(payload["action_space"].shape)),
            **payload["actor_kwargs"],
        )
        actor.load_state_dict(payload["actor_state_dict"])
        return cls(actor.to(device), payload)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", **_: Any) -> RslPolicy:
        """Load a policy file written by save() (final/model.zip, best/model.zip)."""
        try:
            payload = torch.load(path, map_location=device, weights_only=False)
        except Exception as exc:
            raise UserError(f"{path} cannot be loaded ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != POLICY_FORMAT:
            raise UserError(f"{path} is not an rsl_ppo policy file")
        return cls.from_payload(payload, device)

    def save(self, path: str | Path) -> None:
        """torch.save the policy payload to path (use robolearn.utils.io for atomic writes)."""
        torch.save(self.payload, path)

    def _obs_dict(self, obs: Any, batch: int) -> Any:
        from tensordict import TensorDict

        items = obs.items() if isinstance(obs, dict) else [(POLICY_GROUP, obs)]
        groups = {
            name: torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(batch, -1)
            for name, value in items
        }
        return TensorDict(groups, batch_size=[batch])

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        """Actions for one observation or a batch, clipped to the action space (as SB3's predict)."""
        first = next(iter(observation.values())) if isinstance(observation, dict) else observation
        single_shape = (
            self.observation_space[POLICY_GROUP].shape
            if isinstance(self.observation_space, gym.spaces.Dict)
            else self.observation_space.shape
        )
        batched = np.asarray(first).ndim > len(single_shape or ())
        batch = int(np.asarray(first).shape[0]) if batched else 1
        device = next(self.actor.parameters()).device
        with torch.inference_mode():
            obs = self._obs_dict(observation, batch).to(device)
            action = self.actor(obs, stochastic_output=not deterministic).cpu()
            action = torch.maximum(torch.minimum(action, self._high), self._low)
        out = action.cpu().numpy().reshape((batch, *self.action_space.shape))
        return (out if batched else out[0]), None

    def export_module(self) -> torch.nn.Module:
        """A torch module from the actor's (concatenated) observation to its deterministic action:
        normaliser, MLP, clip to the action bounds; what ONNX export traces."""
        actor = self.actor
        low, high = self._low, self._high

        class _Deterministic(torch.nn.Module):
            low: torch.Tensor
            high: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.normalizer = actor.obs_normalizer
                self.mlp = actor.mlp
                self.register_buffer("low", low.clone())
                self.register_buffer("high", high.clone())

            def forward(self, obs: torch.Tensor) -> torch.Tensor:
                # rsl_rl's Gaussian actor acts deterministically with the MLP's output (its mean).
                mean = self.mlp(self.normalizer(obs))
                return torch.maximum(torch.minimum(mean, self.high), self.low)

        return _Deterministic().eval()
