"""The offline model-based RL loop behind `python -m robolearn.offline` (MOPO, MOBILE, optionally MOREC's filter).

1. The dynamics: an ensemble (7 members, 5 elites on held-out error) that learns [next state - state,
   reward] from the dataset (MOPO section 4 / MBPO appendix C), or a saved one (`model=`), reusable
   across algorithms and seeds; saved as <run dir>/dynamics.pt.
2. SAC for `steps` gradient steps on batches mixing `real_ratio` dataset transitions with model ones.
   Every `rollout_every` steps, `rollout_batch` dataset states start branched rollouts of
   `rollout_length` steps with the current policy (robolearn.mbrl.offline.rollout); MOPO penalises the
   model reward when it is generated, MOBILE in each critic target (robolearn.mbrl.offline.penalties).
3. Every `eval_every` steps and at the end: deterministic episodes in the real env; the return is
   normalised with the dataset's reference returns (D4RL's 100 (R - random) / (expert - random)).

Everything random draws from the global RNGs, which LoopRun checkpoints, so a stopped run resumed
from its checkpoint gives the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robolearn.datasets import OfflineDataset
from robolearn.errors import UserError
from robolearn.mbrl.models import EnsembleDynamics
from robolearn.mbrl.offline.penalties import mobile_penalty, mopo_penalty
from robolearn.mbrl.offline.rollout import ModelBuffer, StepFilter, rollout, termination_fn
from robolearn.mbrl.offline.sac import SAC, Actor, Batch, SACConfig

Tensor = torch.Tensor

__all__ = [
    "DynamicsSettings",
    "OfflineLoop",
    "OfflineSettings",
    "load_dynamics",
    "make_env",
    "train_dynamics",
]

ALGOS = ("mopo", "mobile")
DYNAMICS_FILE = "dynamics.pt"
POLICY_FILE = "policy.pt"


@dataclass
class DynamicsSettings:
    """The ensemble and its training (defaults: MOPO's/OfflineRL-Kit's 7 members, 5 elites, 4x200, lr 1e-3)."""

    members: int = 7
    elites: int = 5
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    lr: float = 1e-3
    weight_decay: float = 5e-5
    batch_size: int = 256
    max_epochs: int = 100
    max_steps: int | None = None
    patience: int = 5
    val_fraction: float = 0.1

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> DynamicsSettings:
        """Build from a config mapping; unknown keys are one-line errors."""
        return _from_mapping(cls, values, "dynamics")


@dataclass
class OfflineSettings:
    """The loop's schedule and the algorithm's settings, resolved for one dataset."""

    algo: str
    steps: int
    penalty_coef: float
    rollout_length: int
    real_ratio: float = 0.05
    batch_size: int = 256
    rollout_every: int = 1000
    rollout_batch: int = 50000
    retain_epochs: int = 5
    mobile_samples: int = 10
    eval_every: int = 10000
    eval_episodes: int = 10
    log_every: int = 1000
    checkpoint_every: int = 10000
    samples_per_member: int = 1  # the filter's candidates per elite
    reject_as_terminal: bool = False  # a filter-refused step is stored as terminal (else dropped)


def _from_mapping(cls: Any, values: dict[str, Any], node: str) -> Any:
    known = {f.name for f in fields(cls)}
    for key in values:
        if key not in known:
            raise UserError(f"unknown {node} setting {key!r}; settings: {', '.join(sorted(known))}")
    out = cls(**values)
    if hasattr(out, "hidden"):
        out.hidden = tuple(int(h) for h in out.hidden)
    return out


def dataset_dims(dataset: OfflineDataset) -> tuple[int, int]:
    """(obs_dim, act_dim) of a dataset with flat Box spaces (one-line error otherwise)."""
    obs, act = dataset.observation_space, dataset.action_space
    if not isinstance(obs, gym.spaces.Box) or not isinstance(act, gym.spaces.Box):
        raise UserError(
            f"{dataset.path}: offline MBRL needs Box observation and action spaces, got {obs} and {act}"
        )
    return int(np.prod(obs.shape)), int(np.prod(act.shape))


def make_env(dataset: OfflineDataset) -> gym.Env:
    """The dataset's env (its recorded id and make kwargs), checked against the dataset's spaces."""
    if dataset.env_id is None:
        raise UserError(
            f"{dataset.path}: the dataset records no env (env_spec); offline RL evaluates in the env, "
            "so write the dataset with env_id=<gymnasium id>"
        )
    import robolearn.envs  # noqa: F401 - registers robolearn/<Name>-v<N> ids

    try:
        env = gym.make(dataset.env_id, **dict(dataset.env_kwargs or {}))
    except gym.error.Error as exc:
        raise UserError(f"{dataset.path}: cannot make its env {dataset.env_id!r} ({exc})") from None
    dataset.check_env(env)
    return env


def _flat_arrays(dataset: OfflineDataset) -> dict[str, np.ndarray]:
    t = dataset.transitions()
    if isinstance(t.observations, dict):
        raise UserError(
            f"{dataset.path}: Dict observations are not supported by offline MBRL; use Box observations"
        )
    return {
        "obs": np.asarray(t.observations, dtype=np.float32).reshape(len(t), -1),
        "act": np.asarray(t.actions, dtype=np.float32).reshape(len(t), -1),
        "rew": np.asarray(t.rewards, dtype=np.float32),
        "next_obs": np.asarray(t.next_observations, dtype=np.float32).reshape(len(t), -1),
        "done": np.asarray(t.terminations, dtype=np.float32),
    }


def train_dynamics(
    data: dict[str, np.ndarray], settings: DynamicsSettings, seed: int, device: str
) -> tuple[EnsembleDynamics, dict[str, float]]:
    """Fit a reward-predicting ensemble with elites on the dataset's transitions."""
    model = EnsembleDynamics(
        data["obs"].shape[1],
        data["act"].shape[1],
        hidden=settings.hidden,
        members=settings.members,
        gaussian=True,
        seed=seed,
        reward_dim=1,
        num_elites=settings.elites,
    ).to(device)
    info = model.fit(
        data["obs"],
        data["act"],
        data["next_obs"],
        reward=data["rew"],
        epochs=settings.max_epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        val_fraction=settings.val_fraction,
        patience=settings.patience,
        seed=seed,
        max_steps=settings.max_steps,
    )
    return model, info


def load_dynamics(path: str | Path, obs_dim: int, act_dim: int, device: str) -> EnsembleDynamics:
    """A saved ensemble (a file, or a run directory holding dynamics.pt) checked against the dataset."""
    p = Path(path)
    if p.is_dir():
        p = p / DYNAMICS_FILE
    if not p.is_file():
        raise UserError(
            f"model={path}: no {DYNAMICS_FILE} there; give a run directory of robolearn.offline or its file"
        )
    model = EnsembleDynamics.load(p, map_location=device)
    if model.obs_dim != obs_dim or model.act_dim != act_dim or model.reward_dim != 1:
        raise UserError(
            f"model={path} predicts obs {model.obs_dim}, act {model.act_dim}, reward_dim {model.reward_dim}; "
            f"this dataset needs obs {obs_dim}, act {act_dim} with a reward head (reward_dim 1)"
        )
    return model


class OfflineLoop:
    """SAC on real + model data with MOPO's or MOBILE's penalty; one `iterate()` per gradient step."""

    def __init__(
        self,
        settings: OfflineSettings,
        sac_cfg: SACConfig,
        dataset: OfflineDataset,
        model: EnsembleDynamics,
        *,
        seed: int,
        device: str = "cpu",
        step_filter: StepFilter | None = None,
    ) -> None:
        if settings.algo not in ALGOS:
            raise UserError(f"algo={settings.algo} is not known; choose one of {', '.join(ALGOS)}")
        self.s, self.dataset, self.model, self.seed = settings, dataset, model, seed
        self.device = torch.device(device)
        self.step_filter = step_filter
        self.env = make_env(dataset)
        box = self.env.action_space
        assert isinstance(box, gym.spaces.Box)
        self.low = torch.as_tensor(box.low, dtype=torch.float32, device=self.device)
        self.high = torch.as_tensor(box.high, dtype=torch.float32, device=self.device)
        data = _flat_arrays(dataset)
        self.real = {k: torch.as_tensor(v, device=self.device) for k, v in data.items()}
        # SAC acts in [-1, 1]: the dataset's actions are mapped there (clipped just inside, for tanh).
        span = (self.high - self.low).clamp_min(1e-8)
        self.real["act"] = (2 * (self.real["act"] - self.low) / span - 1).clamp(-0.999999, 0.999999)
        self.obs_dim, self.act_dim = data["obs"].shape[1], data["act"].shape[1]
        self.done_fn = termination_fn(dataset.env_id, dict(dataset.env_kwargs or {}), self.obs_dim)
        self.sac = SAC(self.obs_dim, self.act_dim, sac_cfg, self.device)
        capacity = max(1, settings.rollout_batch * settings.rollout_length * settings.retain_epochs)
        self.buffer = ModelBuffer(capacity, self.obs_dim, self.act_dim, self.device)
        self.step = 0
        self.last_eval: dict[str, Any] = {}

    # ----- pieces -----
    def _rollout(self) -> dict[str, float]:
        s = self.s
        idx = torch.randint(len(self.real["obs"]), (s.rollout_batch,), device=self.device)
        stats = rollout(
            self.model,
            lambda o: self.sac.act(o),
            self.real["obs"][idx],
            s.rollout_length,
            self.buffer,
            act_scale=(self.low, self.high),
            done_fn=self.done_fn,
            penalty_fn=mopo_penalty if s.algo == "mopo" else None,
            penalty_coef=s.penalty_coef if s.algo == "mopo" else 0.0,
            step_filter=self.step_filter,
            samples_per_member=s.samples_per_member,
            reject_as_terminal=s.reject_as_terminal,
        )
        out = {
            "rollout/transitions": float(stats.transitions),
            "rollout/mean_length": stats.mean_length,
            "rollout/terminated": float(stats.terminated),
            "rollout/raw_reward": stats.raw_reward,
            "rollout/penalty": stats.penalty,
            "rollout/buffer_size": float(self.buffer.size),
        }
        if self.step_filter is not None:
            out["rollout/filtered"] = float(stats.filtered)
            out["rollout/filter_score"] = stats.filter_score
        return out

    def _batch(self) -> tuple[Batch, int]:
        s = self.s
        n_real = round(s.batch_size * s.real_ratio) if self.buffer.size else s.batch_size
        idx = torch.randint(len(self.real["obs"]), (n_real,), device=self.device)
        real = {k: v[idx] for k, v in self.real.items()}
        fake = self.buffer.sample(s.batch_size - n_real) if n_real < s.batch_size else None
        if fake is None:
            return Batch(real["obs"], real["act"], real["rew"], real["next_obs"], real["done"]), 0
        if s.algo == "mobile":
            env_a = self.low + (fake["act"] + 1.0) * 0.5 * (self.high - self.low)
            with torch.no_grad():
                nxt, _ = self.model.sample_members(fake["obs"], env_a, s.mobile_samples)  # [M, S, B, o]
                nxt = nxt[self.model.elites].transpose(0, 1)  # [S, E, B, o]
                pen = mobile_penalty(nxt, self.sac.target_value)
            fake["rew"] = fake["rew"] - s.penalty_coef * pen
            self._last_penalty = float(pen.mean())
        cat = {k: torch.cat([real[k], fake[k]]) for k in real}
        return Batch(cat["obs"], cat["act"], cat["rew"], cat["next_obs"], cat["done"]), len(fake["obs"])

    @torch.no_grad()
    def evaluate(self, episodes: int) -> dict[str, Any]:
        """Deterministic episodes in the real env (fixed seeds, the same at every evaluation)."""
        returns = []
        for i in range(episodes):
            obs, _ = self.env.reset(seed=1_000_000 + 1000 * self.seed + i)
            total, done = 0.0, False
            while not done:
                o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device).reshape(1, -1)
                a = self.sac.act(o, deterministic=True)[0]
                env_a = (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).cpu().numpy()
                obs, r, term, trunc, _ = self.env.step(env_a)
                total += float(r)
                done = bool(term or trunc)
            returns.append(total)
        arr = np.asarray(returns, dtype=np.float64)
        out: dict[str, Any] = {
            "eval/mean_return": float(arr.mean()),
            "eval/std_return": float(arr.std()),
            "eval/episodes": int(episodes),
            "eval/returns": [float(r) for r in arr],
        }
        if self.dataset.ref_min_score is not None and self.dataset.ref_max_score is not None:
            scores = np.asarray(self.dataset.normalized_score(arr), dtype=np.float64)
            out["eval/normalized_score"] = float(scores.mean())
            out["eval/normalized_score_std"] = float(scores.std())
        return out

    # ----- one step -----
    def iterate(self) -> dict[str, Any]:
        """One gradient step (with a rollout round first when due); returns what to log now ({} if nothing)."""
        s = self.s
        logs: dict[str, Any] = {}
        if self.step % s.rollout_every == 0:
            logs.update(self._rollout())
        self._last_penalty = math.nan
        batch, n_fake = self._batch()
        losses = self.sac.update(batch)
        self.step += 1
        if self.step % s.log_every == 0 or self.step == s.steps:
            logs.update(losses)
            if s.algo == "mobile" and n_fake:
                logs["train/mobile_penalty"] = self._last_penalty
        if self.step % s.eval_every == 0 or self.step == s.steps:
            self.last_eval = self.evaluate(s.eval_episodes)
            logs.update({k: v for k, v in self.last_eval.items() if not isinstance(v, list)})
        return logs

    def state_dict(self) -> dict[str, Any]:
        """SAC (with optimisers), the model buffer and the step."""
        return {
            "step": self.step,
            "sac": self.sac.full_state(),
            "buffer": self.buffer.state_dict(),
            "last_eval": self.last_eval,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""
        self.step = int(state["step"])
        self.sac.load_full_state(state["sac"])
        self.buffer.load_state_dict(state["buffer"])
        self.last_eval = dict(state.get("last_eval", {}))

    def save_policy(self, path: Path) -> None:
        """The actor's weights and the action box (what an export needs), written atomically."""
        from robolearn.utils.io import atomic_save_with

        payload = {
            "actor": self.sac.actor.state_dict(),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": list(self.sac.cfg.hidden),
            "action_low": self.low.cpu(),
            "action_high": self.high.cpu(),
            "env_id": self.dataset.env_id,
            "env_kwargs": dict(self.dataset.env_kwargs or {}),
        }
        atomic_save_with(path, lambda tmp: torch.save(payload, tmp))

    def close(self) -> None:
        """Close the evaluation env."""
        self.env.close()


class DeterministicPolicy(torch.nn.Module):
    """A saved offline policy as a plain module: raw observation [B, o] -> env action [B, a] (tanh of the mean,
    scaled to the action box), what evaluation uses and what an ONNX export would trace."""

    low: Tensor
    high: Tensor

    def __init__(self, actor: Actor, low: Tensor, high: Tensor) -> None:
        super().__init__()
        self.actor = actor
        self.register_buffer("low", low.clone())
        self.register_buffer("high", high.clone())

    def forward(self, obs: Tensor) -> Tensor:
        """The deterministic env action."""
        a = torch.tanh(self.actor.mu(self.actor.body(obs)))
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)


def load_policy(path: str | Path) -> tuple[DeterministicPolicy, dict[str, Any]]:
    """The deterministic policy in a policy.pt (or a run directory holding one), and the file's facts."""
    p = Path(path)
    if p.is_dir():
        p = p / POLICY_FILE
    if not p.is_file():
        raise UserError(f"no {POLICY_FILE} at {path}; give a finished robolearn.offline run directory")
    payload = torch.load(p, map_location="cpu", weights_only=True)
    actor = Actor(int(payload["obs_dim"]), int(payload["act_dim"]), [int(h) for h in payload["hidden"]])
    actor.load_state_dict(payload["actor"])
    policy = DeterministicPolicy(actor, payload["action_low"], payload["action_high"]).eval()
    return policy, {k: v for k, v in payload.items() if k != "actor"}
