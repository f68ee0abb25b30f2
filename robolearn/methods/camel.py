"""CAMEL: continuous action masking around an LLM-written prior policy (Zhao et al., 2025), on TD3/SAC.

The method, top to bottom:

1. A prior policy p(s) (a checked program from robolearn.llm, or a trained expert) proposes an action.
2. The mask is a per-dimension box of radius `radius` around it, clipped to the action bounds. We
   work in SB3's scaled action space [-1, 1], where the radius is a fraction of each dimension's
   half-range: box = [max(-1, p - r), min(1, p + r)].
3. The actor's squashed output u in [-1, 1] (exploration noise already added and clipped, as SB3
   does) is mapped affinely into the box: a = lo + (u + 1) / 2 * (hi - lo). The map is part of the
   actor loss, so gradients flow through it; target actions go through the same map with the box at
   the next state, stored in replay when the transition was collected.
4. Epsilon-masking: the mask is applied with probability eps, which decays linearly from 1 to 0 over
   `eps_fraction` of training; the draw is made per episode (default) or per step. An unmasked step
   uses the actor's action untouched, so at eps = 0 the agent is exactly plain TD3/SAC (bit for bit:
   the mask draws use their own generator and the replay sampling draws the same numbers).

Replay stores the executed (masked) action, whether it was masked, and the boxes at s and s'.
`masked_replay` says what the update does with masked transitions still in replay once eps = 0
(before that, every mode maps them): `mapped` keeps mapping the actor's output into their boxes,
`raw` uses the raw actor output everywhere (the map is never called), `drop` trains the actor on
unmasked transitions only (the critic still learns on all of them, with raw targets).
A prior that raises or returns NaN during training is disabled for the rest of the run (logged as
`camel/prior_disabled`); training continues unmasked.

Logged metrics: `camel/eps` (current mask probability), `camel/masked_fraction` (fraction of env
steps masked since the last log point), `camel/prior_disabled` (1 once the prior was disabled),
`camel/replay_masked_fraction` (fraction of the last update's sampled transitions that were masked).

Deviations from the paper (whose code is not public): the radius is relative to each dimension's
half-range rather than absolute; SAC support adds the map's log-determinant to the log-probability
(the paper evaluates TD3 only); with per-step masking the target map uses the transition's own mask
draw at s'. See docs/camel.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import VecNormalize

from robolearn.agents.factory import RobolearnSAC, RobolearnTD3
from robolearn.errors import UserError

MASKED_REPLAY_MODES = ("mapped", "raw", "drop")
# drop: at most this many extra replay draws to fill the actor's batch with unmasked transitions.
MAX_ACTOR_REDRAWS = 100

PriorFn = Callable[[np.ndarray], np.ndarray]  # (n_envs, obs_dim) raw obs -> (n_envs, act_dim) env units


class MaskedSamples(NamedTuple):
    """A replay batch with the mask of each transition (boxes in scaled action space)."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    masked: th.Tensor  # (batch, 1) 1.0 where the mask was applied
    low: th.Tensor
    high: th.Tensor
    next_low: th.Tensor
    next_high: th.Tensor


def mask_box(prior_scaled: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension box of `radius` around a scaled prior action, clipped to [-1, 1]."""
    return np.clip(prior_scaled - radius, -1.0, 1.0), np.clip(prior_scaled + radius, -1.0, 1.0)


def map_into_box(u: Any, low: Any, high: Any) -> Any:
    """Affine map of u in [-1, 1] into [low, high] (numpy or torch)."""
    return low + (u + 1.0) * 0.5 * (high - low)


def epsilon(step: int, total_steps: int, eps_fraction: float) -> float:
    """Mask probability: 1 at the start, linearly to 0 at eps_fraction of training, then 0."""
    horizon = eps_fraction * total_steps
    if horizon <= 0:
        return 0.0
    return float(max(0.0, 1.0 - step / horizon))


def _rows(samples: MaskedSamples, rows: th.Tensor) -> MaskedSamples:
    """The batch's transitions at `rows` (a boolean or index tensor)."""
    fields: list[Any] = [None if x is None else x[rows] for x in samples]
    return MaskedSamples(*fields)


def _join(parts: list[MaskedSamples], size: int) -> MaskedSamples:
    """The first `size` transitions of the batches in `parts`, in order."""
    fields: list[Any] = [None if xs[0] is None else th.cat(xs)[:size] for xs in zip(*parts, strict=True)]
    return MaskedSamples(*fields)


class CamelReplayBuffer(ReplayBuffer):
    """Replay that also stores, per transition, whether it was masked and the boxes at s and s'.

    The agent sets `pending` (mask flags and boxes at s) before SB3 calls add(), and `next_box_fn`
    computes the box at s' from the raw next observation.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        act_dim = int(np.prod(self.action_space.shape or (1,)))
        shape = (self.buffer_size, self.n_envs, act_dim)
        self.masked = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.mask_low = np.zeros(shape, dtype=np.float32)
        self.mask_high = np.zeros(shape, dtype=np.float32)
        self.next_mask_low = np.zeros(shape, dtype=np.float32)
        self.next_mask_high = np.zeros(shape, dtype=np.float32)
        self.pending: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.next_box_fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None

    def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any, infos: Any) -> None:
        """Store a transition and its mask (SB3 ReplayBuffer.add plus the pending mask)."""
        pos = self.pos
        if self.pending is not None:
            masked, low, high = self.pending
            self.masked[pos] = masked
            self.mask_low[pos] = low
            self.mask_high[pos] = high
            if self.next_box_fn is not None and masked.any():
                next_low, next_high = self.next_box_fn(np.asarray(next_obs), masked)
            else:
                next_low, next_high = -np.ones_like(low), np.ones_like(high)
            self.next_mask_low[pos] = next_low
            self.next_mask_high[pos] = next_high
            self.pending = None
        else:  # an unmasked transition: never leave a recycled slot's old mask behind
            self.masked[pos] = 0.0
            self.mask_low[pos] = -1.0
            self.mask_high[pos] = 1.0
            self.next_mask_low[pos] = -1.0
            self.next_mask_high[pos] = 1.0
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> MaskedSamples:  # type: ignore[override]
        # SB3 draws the env index of each sample from NumPy's global generator inside _get_samples;
        # peek at the same draw so the base batch (and the RNG stream) equal plain SB3's exactly.
        state = np.random.get_state()
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        np.random.set_state(state)
        base: ReplayBufferSamples = super()._get_samples(batch_inds, env)
        extra = (
            self.masked[batch_inds, env_indices].reshape(-1, 1),
            self.mask_low[batch_inds, env_indices],
            self.mask_high[batch_inds, env_indices],
            self.next_mask_low[batch_inds, env_indices],
            self.next_mask_high[batch_inds, env_indices],
        )
        return MaskedSamples(*base, *(self.to_torch(x) for x in extra))


class _CamelMixin:
    """Acting with the mask, shared by TD3 and SAC. Configure with configure_camel() after construction."""

    # Declared for the type checker; set in configure_camel().
    prior_fn: PriorFn | None
    camel_radius: float
    camel_eps_fraction: float
    camel_eps_mode: str
    camel_total_steps: int
    camel_prior_disabled: bool
    camel_masked: np.ndarray
    camel_new_episode: np.ndarray
    camel_mask_rng: np.random.Generator
    camel_counts: np.ndarray  # [masked steps, steps] since the last log point
    camel_eval_mask: bool
    camel_masked_replay: str = "mapped"  # one of MASKED_REPLAY_MODES
    camel_prior_cache: tuple[np.ndarray, np.ndarray] | None = None  # (raw obs, scaled prior actions)

    def configure_camel(
        self,
        prior_fn: PriorFn | None,
        radius: float,
        eps_fraction: float,
        eps_mode: str,
        total_steps: int,
        seed: int,
        eval_mask: bool = False,
        masked_replay: str = "mapped",
    ) -> None:
        """Set the prior and the masking schedule (state that is not already restored from a save)."""
        if masked_replay not in MASKED_REPLAY_MODES:
            raise UserError(
                f"method.masked_replay={masked_replay} is not allowed; choose one of {', '.join(MASKED_REPLAY_MODES)}"
            )
        self.prior_fn = prior_fn
        if not hasattr(self, "camel_mask_rng"):
            n_envs = self.n_envs  # type: ignore[attr-defined]
            self.camel_mask_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA3E1]))
            self.camel_masked = np.zeros(n_envs, dtype=bool)
            self.camel_new_episode = np.ones(n_envs, dtype=bool)
            self.camel_prior_disabled = False
            self.camel_counts = np.zeros(2, dtype=np.int64)
        if prior_fn is None:
            # No prior (on_bad_prior=unmasked), also on resume when it no longer resolves: the rest of
            # the run is unmasked instead of failing at the next masked step.
            self.camel_prior_disabled = True
        self.camel_prior_cache = None
        self.camel_radius = radius
        self.camel_eps_fraction = eps_fraction
        self.camel_eps_mode = eps_mode
        self.camel_total_steps = total_steps
        self.camel_eval_mask = eval_mask
        self.camel_masked_replay = masked_replay
        buffer = self.replay_buffer  # type: ignore[attr-defined]
        if isinstance(buffer, CamelReplayBuffer):
            buffer.next_box_fn = self._next_box

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "prior_fn", "camel_prior_cache"]  # type: ignore[misc]

    # -- the prior and its boxes ---------------------------------------------------------------------
    def _raw_obs(self) -> np.ndarray:
        """The current observation as the env gave it (the prior reads raw observations).

        SB3 keeps it in `_last_original_obs` only under VecNormalize; without one that attribute holds
        the *previous* step's observation (SB3 sets it to the old `_last_obs` when storing a
        transition), so it must not be read then."""
        if self._vec_normalize_env is not None:  # type: ignore[attr-defined]
            return np.asarray(self._last_original_obs)  # type: ignore[attr-defined]
        return np.asarray(self._last_obs)  # type: ignore[attr-defined]

    def _prior_scaled(self, raw_obs: np.ndarray) -> np.ndarray | None:
        """The prior's actions in scaled space, or None (and the prior disabled) if it fails."""
        assert self.prior_fn is not None
        try:
            actions = np.asarray(self.prior_fn(raw_obs), dtype=np.float64)
            if not np.isfinite(actions).all():
                raise FloatingPointError(f"non-finite prior action {actions.tolist()}")
        except Exception as exc:  # any failure of user/LLM code disables the prior, not the run
            self.camel_prior_disabled = True
            self.logger.record("camel/prior_disabled", 1)  # type: ignore[attr-defined]
            print(f"warning: CAMEL prior disabled at step {self.num_timesteps}: {exc}", flush=True)  # type: ignore[attr-defined]
            return None
        return self.policy.scale_action(actions)  # type: ignore[attr-defined]

    def _next_box(self, next_obs: np.ndarray, masked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = np.ones((len(masked), *self.action_space.shape), dtype=np.float64)  # type: ignore[attr-defined]
        if self.camel_prior_disabled:
            return -full, full
        prior = self._prior_scaled(next_obs)
        if prior is None:
            return -full, full
        # s' is the next step's s unless an episode ended: keep the prior's answer for _sample_action.
        self.camel_prior_cache = (np.array(next_obs, copy=True), prior)
        low, high = mask_box(prior, self.camel_radius)
        return np.where(masked[:, None], low, -full), np.where(masked[:, None], high, full)

    def _prior_at(self, raw_obs: np.ndarray) -> np.ndarray | None:
        """The prior's scaled actions at raw_obs, reused from the last next-state box when the
        observation is the same (priors are deterministic functions of the observation): one prior
        call per env step instead of two."""
        cache = self.camel_prior_cache
        if cache is not None and cache[0].shape == raw_obs.shape and np.array_equal(cache[0], raw_obs):
            return cache[1]
        return self._prior_scaled(raw_obs)

    # -- acting --------------------------------------------------------------------------------------
    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[misc]
        eps = epsilon(self.num_timesteps, self.camel_total_steps, self.camel_eps_fraction)  # type: ignore[attr-defined]
        self.logger.record("camel/eps", eps)  # type: ignore[attr-defined]
        draw = self.camel_new_episode if self.camel_eps_mode == "episode" else np.ones(n_envs, dtype=bool)
        if draw.any():
            u = self.camel_mask_rng.random(n_envs)
            self.camel_masked = np.where(draw, u < eps, self.camel_masked)
            self.camel_new_episode[:] = False
        masked = self.camel_masked & (not self.camel_prior_disabled)
        full = np.ones_like(buffer_action, dtype=np.float64)
        low, high = -full, full
        if masked.any():
            prior = self._prior_at(self._raw_obs())
            if prior is None:
                masked = np.zeros_like(masked)
            else:
                box_low, box_high = mask_box(prior, self.camel_radius)
                low = np.where(masked[:, None], box_low, low)
                high = np.where(masked[:, None], box_high, high)
                mapped = map_into_box(buffer_action, box_low, box_high)
                buffer_action = np.where(masked[:, None], mapped, buffer_action).astype(buffer_action.dtype)
                action = self.policy.unscale_action(buffer_action)  # type: ignore[attr-defined]
        self.camel_counts += (int(masked.sum()), n_envs)
        self.logger.record("camel/masked_fraction", self.camel_counts[0] / max(self.camel_counts[1], 1))  # type: ignore[attr-defined]
        buffer = self.replay_buffer  # type: ignore[attr-defined]
        if isinstance(buffer, CamelReplayBuffer):
            buffer.pending = (masked.astype(np.float32), low, high)
        return action, buffer_action

    def _store_transition(
        self, replay_buffer: Any, buffer_action: Any, new_obs: Any, reward: Any, dones: Any, infos: Any
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[misc]
        self.camel_new_episode |= np.asarray(dones, dtype=bool)

    def dump_logs(self) -> None:
        """SB3's periodic log dump; the masked-fraction counter restarts after each."""
        super().dump_logs()  # type: ignore[misc]
        self.camel_counts[:] = 0

    # -- learning from replay ------------------------------------------------------------------------
    def _replay_mode(self) -> str:
        """How this update treats masked transitions: `mapped` while eps > 0, the configured
        `masked_replay` once the mask schedule has ended."""
        eps = epsilon(self.num_timesteps, self.camel_total_steps, self.camel_eps_fraction)  # type: ignore[attr-defined]
        return "mapped" if eps > 0.0 else self.camel_masked_replay

    def _map_batch(self, samples: Any, actions: th.Tensor, next_state: bool = False) -> th.Tensor:
        """Actions mapped into the transitions' boxes (at s, or at s' for targets) where masked,
        untouched elsewhere. Every use of the map in an update goes through here."""
        low, high = (samples.next_low, samples.next_high) if next_state else (samples.low, samples.high)
        return th.where(samples.masked > 0, map_into_box(actions, low, high), actions)

    def _unmasked_batch(self, batch: Any, batch_size: int) -> MaskedSamples | None:
        """`drop`'s batch for the actor: the batch's unmasked transitions, topped up from fresh
        replay draws (their unmasked transitions only) to `batch_size`; None if replay yields none."""
        parts = [_rows(batch, batch.masked[:, 0] == 0)]
        have, draws = len(parts[0].observations), 0
        while have < batch_size and draws < MAX_ACTOR_REDRAWS:
            extra = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[attr-defined]
            parts.append(_rows(extra, extra.masked[:, 0] == 0))
            have, draws = have + len(parts[-1].observations), draws + 1
        return _join(parts, batch_size) if have > 0 else None

    def _record_replay(self, masked_fractions: list[float]) -> None:
        if masked_fractions:
            self.logger.record("camel/replay_masked_fraction", float(np.mean(masked_fractions)))  # type: ignore[attr-defined]

    # -- evaluation ----------------------------------------------------------------------------------
    def eval_variants(self, obs_transform: Callable[[Any], Any] | None) -> dict[str, MaskedActor]:
        """Extra evaluations the trainer runs next to the standalone actor's: with `eval_mask` and
        while eps > 0, the deterministic actor acting through the mask (logged as eval/masked/*)."""
        eps = epsilon(self.num_timesteps, self.camel_total_steps, self.camel_eps_fraction)  # type: ignore[attr-defined]
        if not getattr(self, "camel_eval_mask", False) or eps <= 0.0 or self.camel_prior_disabled:
            return {}
        assert self.prior_fn is not None
        return {"masked": MaskedActor(self, self.prior_fn, self.camel_radius, obs_transform)}


class MaskedActor:
    """predict() of a CAMEL agent acting through its mask: the actor's action, from the normalised
    observation, mapped into the box around the prior's action at the raw observation. A prior that
    fails here leaves the action unmasked and the training run's prior untouched."""

    def __init__(
        self,
        model: Any,
        prior_fn: PriorFn,
        radius: float,
        obs_transform: Callable[[Any], Any] | None,
    ) -> None:
        self.model, self.prior_fn, self.radius, self.obs_transform = model, prior_fn, radius, obs_transform

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Masked action for one raw observation."""
        policy_obs = self.obs_transform(obs) if self.obs_transform is not None else obs
        action, _ = self.model.predict(policy_obs, deterministic=deterministic)
        policy = self.model.policy
        try:
            prior = np.asarray(self.prior_fn(np.asarray(obs)[None]), dtype=np.float64)
        except Exception:  # the training loop owns disabling the prior; evaluation just acts unmasked
            return action, None
        if not np.isfinite(prior).all():
            return action, None
        low, high = mask_box(policy.scale_action(prior), self.radius)
        scaled = policy.scale_action(np.asarray(action, dtype=np.float64)[None])
        masked = policy.unscale_action(map_into_box(scaled, low, high))[0]
        return masked.astype(np.asarray(action).dtype), None


class CamelTD3(_CamelMixin, RobolearnTD3):
    """TD3 whose actor acts, and is trained, through the CAMEL mask."""

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """TD3's update (Fujimoto et al.) with the mask map in the target and in the actor loss."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        mode = self._replay_mode()
        actor_losses, critic_losses, masked_fractions = [], [], []
        for _ in range(gradient_steps):
            self._n_updates += 1
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            any_masked = False
            if isinstance(batch, MaskedSamples):
                masked_fractions.append(float(batch.masked.mean()))
                any_masked = masked_fractions[-1] > 0
            use_map = any_masked and mode == "mapped"
            discounts = batch.discounts if batch.discounts is not None else self.gamma
            with th.no_grad():
                noise = batch.actions.clone().data.normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(batch.next_observations) + noise).clamp(-1, 1)
                if use_map:
                    next_actions = self._map_batch(batch, next_actions, next_state=True)
                next_q = th.cat(self.critic_target(batch.next_observations, next_actions), dim=1)
                next_q, _ = th.min(next_q, dim=1, keepdim=True)
                target_q = batch.rewards + (1 - batch.dones) * discounts * next_q
            current_q = self.critic(batch.observations, batch.actions)
            critic_loss = sum(F.mse_loss(q, target_q) for q in current_q)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            if self._n_updates % self.policy_delay == 0:
                actor_batch: Any = batch
                if any_masked and mode == "drop":
                    actor_batch = self._unmasked_batch(batch, batch_size)
                if actor_batch is not None:
                    actions = self.actor(actor_batch.observations)
                    if use_map:  # masking-aware: the loss sees (and differentiates) the executed action
                        actions = self._map_batch(actor_batch, actions)
                    actor_loss = -self.critic.q1_forward(actor_batch.observations, actions).mean()
                    actor_losses.append(actor_loss.item())
                    self.actor.optimizer.zero_grad()
                    actor_loss.backward()
                    self.actor.optimizer.step()
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self._record_replay(masked_fractions)


class CamelSAC(_CamelMixin, RobolearnSAC):
    """SAC whose actor acts, and is trained, through the CAMEL mask.

    The affine map scales dimension i by (hi_i - lo_i) / 2, so a masked action's log-density gains
    -sum_i log((hi_i - lo_i) / 2); the entropy terms use that corrected log-probability.
    """

    @staticmethod
    def _log_det(samples: MaskedSamples, next_state: bool = False) -> th.Tensor:
        low, high = (samples.next_low, samples.next_high) if next_state else (samples.low, samples.high)
        log_scale = th.log(th.clamp((high - low) * 0.5, min=1e-6)).sum(dim=1, keepdim=True)
        return th.where(samples.masked > 0, log_scale, th.zeros_like(log_scale))

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SAC's update (Haarnoja et al.) with the mask map in the target and in the actor loss."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)
        mode = self._replay_mode()
        ent_coef_losses, ent_coefs, actor_losses, critic_losses, masked_fractions = [], [], [], [], []
        for gradient_step in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            any_masked = False
            if isinstance(batch, MaskedSamples):
                masked_fractions.append(float(batch.masked.mean()))
                any_masked = masked_fractions[-1] > 0
            use_map = any_masked and mode == "mapped"
            actor_batch: Any = batch
            if any_masked and mode == "drop":
                actor_batch = self._unmasked_batch(batch, batch_size)
            discounts = batch.discounts if batch.discounts is not None else self.gamma
            if self.use_sde:
                self.actor.reset_noise()
            pi: tuple[th.Tensor, th.Tensor] | None = None  # (actions, log-probabilities) for the actor loss
            if actor_batch is not None:
                actions_pi, log_prob = self.actor.action_log_prob(actor_batch.observations)
                log_prob = log_prob.reshape(-1, 1)
                if use_map:
                    actions_pi = self._map_batch(actor_batch, actions_pi)
                    log_prob = log_prob - self._log_det(actor_batch)
                pi = actions_pi, log_prob

            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                if pi is not None:
                    ent_coef_loss = -(self.log_ent_coef * (pi[1] + self.target_entropy).detach()).mean()
                    ent_coef_losses.append(ent_coef_loss.item())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())
            if ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(batch.next_observations)
                next_log_prob = next_log_prob.reshape(-1, 1)
                if use_map:
                    assert isinstance(batch, MaskedSamples)
                    next_actions = self._map_batch(batch, next_actions, next_state=True)
                    next_log_prob = next_log_prob - self._log_det(batch, next_state=True)
                next_q = th.cat(self.critic_target(batch.next_observations, next_actions), dim=1)
                next_q, _ = th.min(next_q, dim=1, keepdim=True)
                next_q = next_q - ent_coef * next_log_prob
                target_q = batch.rewards + (1 - batch.dones) * discounts * next_q

            current_q = self.critic(batch.observations, batch.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            if pi is not None:
                q_pi = th.cat(self.critic(actor_batch.observations, pi[0]), dim=1)
                min_q_pi, _ = th.min(q_pi, dim=1, keepdim=True)
                actor_loss = (ent_coef * pi[1] - min_q_pi).mean()
                actor_losses.append(actor_loss.item())
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        self._record_replay(masked_fractions)


CAMEL_ALGORITHMS: dict[str, type[CamelTD3] | type[CamelSAC]] = {"td3": CamelTD3, "sac": CamelSAC}


def batch_prior(single: Callable[[np.ndarray], np.ndarray], action_space: spaces.Box) -> PriorFn:
    """Lift a one-observation prior to the (n_envs, obs_dim) -> (n_envs, act_dim) form the agent uses."""
    shape = action_space.shape

    def prior(obs: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(single(o), dtype=np.float64).reshape(shape) for o in obs])

    return prior
