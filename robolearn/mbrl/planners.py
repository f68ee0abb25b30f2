"""Sampling-based MPC over a learned model: CEM and MPPI, batched over samples and horizon.

Both planners keep a plan of `horizon` actions, sample `samples` action sequences around it as one
[N, H, A] tensor, roll every sequence through `model.predict` at once (the loop over the horizon is the
only Python loop; the model sees [N, obs_dim] per step), score them with a torch reward function of
(obs, action, next_obs), and return the first action. The next call starts from the previous plan
shifted by one step (warm start, as in PETS' MPC, Chua et al. 2018, section 5), with the last step
reset to the middle of the action box.

Defaults: CEM's smoothing alpha=0.1 and initial std of a quarter of the action range are PETS'
(kchua/handful-of-trials, dmbrl/misc/optimizers/cem.py: alpha 0.1, var (ub-lb)^2/16). HyperCRL's
controller (rvl-lab-utoronto/HyperCRL, hypercrl/control/cem.py) re-fits mean and std to the elites
each iteration without a warm start; MPPI's temperature 1/20 and unit noise are HyperCRL's
(hypercrl/control/agent.py: lambda_ = 1 / pddm_kappa, pddm_kappa = 20, mag_noise = 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from robolearn.errors import UserError

__all__ = ["CEMPlanner", "DoneFn", "MPPIPlanner", "RewardFn", "rollout_returns"]

Tensor = torch.Tensor
RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
DoneFn = Callable[[Tensor, Tensor, Tensor], Tensor] | None


def rollout_returns(
    model: Any,
    reward_fn: RewardFn,
    obs: Tensor,
    actions: Tensor,
    done_fn: DoneFn = None,
    discount: float = 1.0,
) -> Tensor:
    """Discounted model-predicted return of each action sequence: actions [N, H, A] from obs [obs_dim] -> [N].

    Uses the model's mean prediction (`model.predict_mean` when it has one, else `model.predict(...)[0]`).
    After a predicted termination the sequence earns no more reward (the step that terminates still
    counts, as in Gymnasium). Non-finite returns become -inf so a diverging rollout never wins.
    """
    n, horizon, _ = actions.shape
    # A model may offer predict_mean (EnsembleDynamics does): the same mean without computing a std.
    predict_mean = getattr(model, "predict_mean", None)
    # Time-major and contiguous, so each step's [N, A] slice feeds the model without a strided copy.
    steps = actions.transpose(0, 1).contiguous()
    state = obs.reshape(1, -1).expand(n, -1)
    total = torch.zeros(n, dtype=actions.dtype, device=actions.device)
    alive: Tensor | None = None  # None until a termination function has run: everyone is alive
    weight = 1.0
    for t in range(horizon):
        act = steps[t]
        nxt = predict_mean(state, act) if predict_mean is not None else model.predict(state, act)[0]
        reward = reward_fn(state, act, nxt)
        if alive is not None:
            # where, not a product: a terminated rollout's later (possibly diverged, NaN) rewards must vanish.
            reward = torch.where(alive, reward, torch.zeros_like(reward))
        total = total + weight * reward
        if done_fn is not None:
            done = done_fn(state, act, nxt)
            alive = ~done if alive is None else alive & ~done
        state = nxt
        weight *= discount
    return torch.where(torch.isfinite(total), total, torch.full_like(total, -torch.inf))


class _ShootingPlanner:
    """Shared state of the sampling planners: the action box, the warm-started plan, the noise source."""

    def __init__(
        self,
        act_low: Tensor | np.ndarray | Sequence[float],
        act_high: Tensor | np.ndarray | Sequence[float],
        horizon: int,
        samples: int,
        iterations: int,
        discount: float,
        seed: int | None,
        device: str | torch.device | None,
    ) -> None:
        low = torch.as_tensor(np.asarray(act_low) if not isinstance(act_low, Tensor) else act_low)
        high = torch.as_tensor(np.asarray(act_high) if not isinstance(act_high, Tensor) else act_high)
        dev = torch.device(device) if device is not None else low.device
        self.low = low.to(device=dev, dtype=torch.float32).reshape(-1)
        self.high = high.to(device=dev, dtype=torch.float32).reshape(-1)
        if self.low.shape != self.high.shape:
            raise UserError(
                f"planner act_low {tuple(self.low.shape)} and act_high {tuple(self.high.shape)} differ"
            )
        if not bool(torch.all(torch.isfinite(self.low)) and torch.all(torch.isfinite(self.high))):
            raise UserError("planner action bounds must be finite; wrap the env in a bounded action space")
        if not bool(torch.all(self.high > self.low)):
            raise UserError(f"planner act_high {self.high.tolist()} must exceed act_low {self.low.tolist()}")
        for name, value in (("horizon", horizon), ("samples", samples), ("iterations", iterations)):
            if int(value) < 1:
                raise UserError(f"planner {name}={value} must be >= 1")
        if not 0.0 < discount <= 1.0:
            raise UserError(f"planner discount={discount} must be in (0, 1]")
        self.horizon, self.samples, self.iterations = int(horizon), int(samples), int(iterations)
        self.discount = float(discount)
        self.act_dim = self.low.numel()
        self.device = dev
        # None: draw from torch's global RNG, so a loop that seeds (and checkpoints) it controls planning.
        self.generator = torch.Generator(device=dev).manual_seed(seed) if seed is not None else None
        self._plan: Tensor | None = None

    @property
    def middle(self) -> Tensor:
        """The centre of the action box [act_dim]."""
        return (self.low + self.high) / 2

    def reset(self) -> None:
        """Forget the previous plan (call at an episode's start)."""
        self._plan = None

    def _warm_start(self) -> Tensor:
        mid = self.middle.expand(self.horizon, -1)
        if self._plan is None:
            return mid.clone()
        return torch.cat([self._plan[1:], mid[:1]], dim=0)

    def _noise(self) -> Tensor:
        return torch.randn(
            self.samples, self.horizon, self.act_dim, device=self.device, generator=self.generator
        )

    def _check_obs(self, obs: Tensor) -> Tensor:
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if obs.dim() != 1:
            raise UserError(f"plan() takes one observation [obs_dim], got shape {tuple(obs.shape)}")
        return obs

    @property
    def plan_actions(self) -> Tensor | None:
        """The current plan [horizon, act_dim] (None before the first call)."""
        return self._plan


class CEMPlanner(_ShootingPlanner):
    """Cross-entropy method: refit a diagonal Gaussian to the best `elites` sequences, `iterations` times."""

    def __init__(
        self,
        act_low: Tensor | np.ndarray | Sequence[float],
        act_high: Tensor | np.ndarray | Sequence[float],
        horizon: int,
        samples: int,
        elites: int,
        iterations: int,
        alpha: float = 0.1,
        init_std: float = 0.25,
        min_std: float = 1e-3,
        discount: float = 1.0,
        seed: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(act_low, act_high, horizon, samples, iterations, discount, seed, device)
        if not 1 <= int(elites) <= self.samples:
            raise UserError(f"planner elites={elites} must be in [1, samples={self.samples}]")
        if not 0.0 <= alpha < 1.0:
            raise UserError(f"CEM alpha={alpha} must be in [0, 1)")
        if init_std <= 0:
            raise UserError(f"CEM init_std={init_std} must be > 0 (a fraction of the action range)")
        self.elites, self.alpha = int(elites), float(alpha)
        self.init_std = float(init_std) * (self.high - self.low)
        self.min_std = float(min_std) * (self.high - self.low)

    @torch.no_grad()
    def plan(self, model: Any, reward_fn: RewardFn, obs: Tensor, done_fn: DoneFn = None) -> Tensor:
        """The first action [act_dim] of the plan CEM converges to from `obs`; keeps the plan for warm start."""
        obs = self._check_obs(obs)
        mean = self._warm_start()
        std = self.init_std.expand(self.horizon, -1).clone()
        for _ in range(self.iterations):
            actions = torch.clamp(mean + std * self._noise(), self.low, self.high)
            returns = rollout_returns(model, reward_fn, obs, actions, done_fn, self.discount)
            elite = actions[torch.topk(returns, self.elites, sorted=False).indices]
            # PETS' smoothing: keep alpha of the old distribution, so one noisy elite set cannot collapse it.
            mean = self.alpha * mean + (1 - self.alpha) * elite.mean(0)
            std = self.alpha * std + (1 - self.alpha) * elite.std(0, unbiased=False)
            std = torch.maximum(std, self.min_std)
        self._plan = mean
        return mean[0].clone()


class MPPIPlanner(_ShootingPlanner):
    """Model-predictive path integral: the plan moves to the exp(return / temperature)-weighted mean of samples."""

    def __init__(
        self,
        act_low: Tensor | np.ndarray | Sequence[float],
        act_high: Tensor | np.ndarray | Sequence[float],
        horizon: int,
        samples: int,
        iterations: int = 1,
        temperature: float = 0.05,
        noise_std: float = 1.0,
        alpha: float = 0.0,
        discount: float = 1.0,
        seed: int | None = None,
        device: str | torch.device | None = None,
        elites: int | None = None,
    ) -> None:
        # `elites` is accepted and ignored so one config can build either planner.
        super().__init__(act_low, act_high, horizon, samples, iterations, discount, seed, device)
        if temperature <= 0:
            raise UserError(f"MPPI temperature={temperature} must be > 0")
        if noise_std <= 0:
            raise UserError(f"MPPI noise_std={noise_std} must be > 0 (a fraction of half the action range)")
        if not 0.0 <= alpha < 1.0:
            raise UserError(f"MPPI alpha={alpha} must be in [0, 1)")
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.noise_std = float(noise_std) * (self.high - self.low) / 2

    @torch.no_grad()
    def plan(self, model: Any, reward_fn: RewardFn, obs: Tensor, done_fn: DoneFn = None) -> Tensor:
        """The first action [act_dim] of the MPPI-updated plan from `obs`; keeps the plan for warm start."""
        obs = self._check_obs(obs)
        mean = self._warm_start()
        for _ in range(self.iterations):
            actions = torch.clamp(mean + self.noise_std * self._noise(), self.low, self.high)
            returns = rollout_returns(model, reward_fn, obs, actions, done_fn, self.discount)
            weights = torch.softmax(returns / self.temperature, dim=0)  # -inf returns get weight 0
            if not bool(torch.isfinite(weights).all()):
                weights = torch.full_like(returns, 1.0 / len(returns))
            target = torch.einsum("n,nha->ha", weights, actions)
            mean = self.alpha * mean + (1 - self.alpha) * target
        self._plan = mean
        return mean[0].clone()
