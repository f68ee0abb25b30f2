"""Learned dynamics: an ensemble of MLPs that predict normalised state deltas, run as one batched program.

The layout follows PETS (Chua et al., NeurIPS 2018, "Deep RL in a handful of trials", section 4 and
its appendix) and HyperCRL's dynamics MLP (rvl-lab-utoronto/HyperCRL, hypercrl/tools/default_arg.py:
four hidden layers of 200, normalised (x, u) inputs, "diff" outputs, optional output variance):

- inputs (obs, act) are normalised by statistics fitted on the training data;
- the network predicts the normalised delta next_obs - obs (and, with a Gaussian head, its log-variance);
- the log-variance is soft-clamped between learned bounds ``min_logvar``/``max_logvar`` (PETS, appendix A.1),
  with a small penalty that keeps the bounds tight;
- the M ensemble members hold their weights in [M, out, in] tensors, so one ``torch.baddbmm`` per layer
  runs every member at once: there is no Python loop over members.

For offline model-based RL (MOPO, Yu et al. NeurIPS 2020, section 4 and appendix; MBPO, Janner et al.
NeurIPS 2019, appendix C) the ensemble can also learn the reward (``reward_dim=1``: the target is
[delta, r], the reward is the last output feature) and keeps the ``num_elites`` members with the lowest
held-out error as its elites (MBPO/MOPO: 7 members, 5 elites), from which rollouts draw one at random.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import UserError, close_matches
from robolearn.mbrl.normalizer import Normalizer

__all__ = [
    "ACTIVATIONS",
    "DynamicsModel",
    "EnsembleDynamics",
    "Normalizer",
    "activation_fn",
    "mlp_forward",
]

Tensor = torch.Tensor
Activation = str | Callable[[Tensor], Tensor]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": F.silu,
    "swish": F.silu,  # PETS' name for SiLU
    "relu": F.relu,
    "elu": F.elu,
    "tanh": torch.tanh,
    "leaky_relu": F.leaky_relu,
}
# In-place twins, used when autograd is off (planning): they save one [B, hidden] allocation per layer.
_INPLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": lambda x: F.silu(x, inplace=True),
    "swish": lambda x: F.silu(x, inplace=True),
    "relu": torch.relu_,
    "elu": lambda x: F.elu(x, inplace=True),
    "tanh": torch.tanh_,
    "leaky_relu": lambda x: F.leaky_relu(x, inplace=True),
}


@runtime_checkable
class DynamicsModel(Protocol):
    """What planners need: the next observation's (mean, std) in raw units, batched over leading dims."""

    def predict(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]: ...


def activation_fn(activation: Activation) -> Callable[[Tensor], Tensor]:
    """The activation function for a name in ACTIVATIONS (or the callable itself)."""
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        raise UserError(
            f"unknown activation {activation!r}{close_matches(activation, ACTIVATIONS)}; "
            f"use one of {sorted(ACTIVATIONS)}"
        ) from None


def mlp_forward(
    params: Sequence[tuple[Tensor, Tensor]],
    x: Tensor,
    activation: Activation = "silu",
    *,
    inplace: bool = False,
) -> Tensor:
    """A functional MLP, x W^T + b per layer (torch.nn.functional.linear's layout), activation between layers.

    Weights are [out, in] with biases [out], as in nn.Linear; or batched, [M, out, in] with biases [M, out]
    applied to x [M, B, in] (one baddbmm per layer for all M networks). Generated weights (a hypernetwork's
    target network) and the ensemble's own parameters run through this same function. `inplace=True`
    applies a named activation in place when autograd is off.
    """
    act = activation_fn(activation)
    if inplace and isinstance(activation, str) and not torch.is_grad_enabled():
        # Safe: each layer's output is a fresh tensor nobody else holds.
        act = _INPLACE_ACTIVATIONS.get(activation, act)
    last = len(params) - 1
    for i, (w, b) in enumerate(params):
        if w.dim() == 3:
            if x.dim() == 3:
                x = torch.baddbmm(b.unsqueeze(-2), x, w.transpose(-1, -2))
            else:
                x = torch.matmul(x, w.transpose(-1, -2)) + b.unsqueeze(-2)
        else:
            x = F.linear(x, w, b)
        if i < last:
            x = act(x)
    return x


def _soft_clamp_logvar(logvar: Tensor, min_logvar: Tensor, max_logvar: Tensor) -> Tensor:
    # Softplus clamps keep gradients alive at the bounds, unlike a hard clamp (PETS, appendix A.1).
    logvar = max_logvar - F.softplus(max_logvar - logvar)
    return min_logvar + F.softplus(logvar - min_logvar)


def _as_tensor(x: np.ndarray | Tensor, device: torch.device) -> Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


class EnsembleDynamics(nn.Module):
    """M dynamics MLPs (M=1: a single model) with deterministic or Gaussian heads and saved normalisers."""

    min_logvar: nn.Parameter | Tensor
    max_logvar: nn.Parameter | Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (200, 200, 200, 200),
        members: int = 1,
        gaussian: bool = True,
        activation: str = "silu",
        *,
        min_logvar: float = -10.0,
        max_logvar: float = 0.5,
        logvar_bound_weight: float = 0.01,
        seed: int | None = None,
        reward_dim: int = 0,
        num_elites: int | None = None,
    ) -> None:
        super().__init__()
        if obs_dim <= 0 or act_dim <= 0:
            raise UserError(
                f"EnsembleDynamics needs obs_dim > 0 and act_dim > 0, got {obs_dim} and {act_dim}"
            )
        if members < 1:
            raise UserError(f"model members={members} must be >= 1")
        hidden = tuple(int(h) for h in hidden)
        if any(h <= 0 for h in hidden):
            raise UserError(f"model hidden={list(hidden)} must hold positive layer sizes")
        activation_fn(activation)  # fail now on a bad name, not at the first forward pass
        if reward_dim not in (0, 1):
            raise UserError(
                f"model reward_dim={reward_dim} must be 0 (next state only) or 1 (also the reward)"
            )
        if num_elites is not None and not 1 <= num_elites <= members:
            raise UserError(f"model num_elites={num_elites} must be between 1 and members={members}")
        self.obs_dim, self.act_dim, self.members = obs_dim, act_dim, members
        self.reward_dim = reward_dim
        # Output features: the next-state delta, then the reward when learned.
        self.out_dim = obs_dim + reward_dim
        self.num_elites = num_elites
        self.hidden, self.gaussian, self.activation = hidden, gaussian, activation
        self.logvar_bound_weight = logvar_bound_weight
        sizes = [obs_dim + act_dim, *hidden, self.out_dim * (2 if gaussian else 1)]
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            # nn.Linear's default init, drawn independently per member: members differ from the start.
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(members, fan_out, fan_in, generator=gen) * 2 - 1) * bound
            b = (torch.rand(members, fan_out, generator=gen) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        if gaussian:
            # PETS' initial bounds (max 0.5, min -10 in normalised units), learned per output feature.
            self.max_logvar = nn.Parameter(torch.full((self.out_dim,), float(max_logvar)))
            self.min_logvar = nn.Parameter(torch.full((self.out_dim,), float(min_logvar)))
        self.in_norm = Normalizer(obs_dim + act_dim)
        self.out_norm = Normalizer(self.out_dim)
        # The elite members' indices, chosen by fit() on held-out error; saved only when elites are asked
        # for (num_elites), so models saved before elites existed still load.
        self.elites: Tensor
        self.register_buffer("elites", torch.arange(num_elites or members), persistent=num_elites is not None)

    # ----- forward -----
    def layers(self) -> list[tuple[Tensor, Tensor]]:
        """The (weight [M, out, in], bias [M, out]) pairs, in order."""
        # The ParameterLists' own dicts: iterating the lists goes through nn.Module.__getattr__ per item,
        # which costs more than a small layer's matmul when a planner calls this thousands of times.
        ws, bs = self.weights._parameters.values(), self.biases._parameters.values()
        return [(w, b) for w, b in zip(ws, bs, strict=True) if w is not None and b is not None]

    def forward_normalized(self, xn: Tensor, *, need_logvar: bool = True) -> tuple[Tensor, Tensor | None]:
        """Normalised inputs [M, B, in] (or [B, in], shared by all members) -> (delta mean, log-variance) [M, B, out].

        out = obs_dim, plus the reward last when reward_dim=1.

        The log-variance is None for a deterministic head, or when need_logvar=False (planning needs means only).
        """
        if xn.dim() == 2 and self.members == 1:
            # One member: plain 2-D addmm per layer, no batch dimension for the BLAS call to carry.
            pairs = [(w[0], b[0]) for w, b in self.layers()]
            out = mlp_forward(pairs, xn, self.activation, inplace=True).unsqueeze(0)
        else:
            if xn.dim() == 2:
                xn = xn.unsqueeze(0).expand(self.members, -1, -1)
            out = mlp_forward(self.layers(), xn, self.activation, inplace=True)
        if not self.gaussian:
            return out, None
        mean, logvar = out.split(self.out_dim, dim=-1)
        if not need_logvar:
            return mean, None
        return mean, _soft_clamp_logvar(logvar, self.min_logvar, self.max_logvar)

    def _flat_inputs(self, obs: Tensor, act: Tensor) -> tuple[torch.Size, Tensor, Tensor]:
        if obs.shape[-1] != self.obs_dim or act.shape[-1] != self.act_dim:
            raise UserError(
                f"predict got obs [..., {obs.shape[-1]}] and act [..., {act.shape[-1]}]; "
                f"this model takes obs_dim={self.obs_dim}, act_dim={self.act_dim}"
            )
        if obs.dim() == 2 and obs.shape[:-1] == act.shape[:-1]:
            lead = obs.shape[:-1]  # a planner's [N, dim] batch: nothing to broadcast or flatten
        else:
            lead = torch.broadcast_shapes(obs.shape[:-1], act.shape[:-1])
            obs = obs.expand(*lead, self.obs_dim).reshape(-1, self.obs_dim)
            act = act.expand(*lead, self.act_dim).reshape(-1, self.act_dim)
        return lead, obs, self.in_norm.normalize(torch.cat([obs, act], dim=-1))

    def _base(self, flat_obs: Tensor) -> Tensor:
        """What the deltas are added to: the observation, and 0 for a learned reward (predicted directly)."""
        if not self.reward_dim:
            return flat_obs
        return F.pad(flat_obs, (0, self.reward_dim))

    def predict_mean(self, obs: Tensor, act: Tensor) -> Tensor:
        """The next observation's mean [..., out] alone (what planners roll out; skips the variance head).

        out = obs_dim, plus the reward last when reward_dim=1 (so for every prediction method below)."""
        lead, flat_obs, xn = self._flat_inputs(obs, act)
        flat_obs = self._base(flat_obs)
        mean_n, _ = self.forward_normalized(xn, need_logvar=False)
        # obs + (mean_n * std + mean) as one fused multiply-add.
        mean = torch.addcmul(flat_obs + self.out_norm.mean, mean_n, self.out_norm.std)
        if self.members > 1:
            mean = mean.mean(0)
        else:
            mean = mean[0]
        return mean.reshape(*lead, self.out_dim)

    def predict_members(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's next-observation (mean, std) in raw units: [M, ..., out] each."""
        lead, obs, xn = self._flat_inputs(obs, act)
        obs = self._base(obs)
        mean_n, logvar_n = self.forward_normalized(xn)
        mean = obs + self.out_norm.denormalize(mean_n)
        if logvar_n is None:
            std = torch.zeros_like(mean)
        else:
            std = self.out_norm.denormalize_scale(torch.exp(0.5 * logvar_n))
        shape = (self.members, *lead, self.out_dim)
        return mean.reshape(shape), std.reshape(shape)

    def sample_members(
        self, obs: Tensor, act: Tensor, samples: int = 1, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Draws from each member's Gaussian: (next_obs [M, S, ..., obs_dim], reward [M, S, ...] or None).

        A deterministic head gives its mean S times. The reward comes from the same draw as the state."""
        mean, std = self.predict_members(obs, act)
        noise = torch.randn(
            (mean.shape[0], samples, *mean.shape[1:]), generator=generator, device=mean.device
        )
        draw = mean.unsqueeze(1) + std.unsqueeze(1) * noise
        if not self.reward_dim:
            return draw, None
        return draw[..., : self.obs_dim], draw[..., self.obs_dim]

    def random_elites(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n member indices drawn uniformly from the elites (MBPO/MOPO: each input's model is one random elite)."""
        pick = torch.randint(len(self.elites), (n,), generator=generator, device=self.elites.device)
        return self.elites[pick]

    def predict(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        """Next-observation (mean, std) in raw units, [..., obs_dim]; an ensemble gives the mixture's mean and total std."""
        means, stds = self.predict_members(obs, act)
        if self.members == 1:
            return means[0], stds[0]
        mean = means.mean(0)
        # Total variance of the equal-weight mixture: mean aleatoric variance + spread of the members' means.
        var = (stds**2).mean(0) + means.var(0, unbiased=False)
        return mean, var.sqrt()

    # ----- training -----
    def _loss(self, xn: Tensor, yn: Tensor) -> Tensor:
        mean, logvar = self.forward_normalized(xn)
        if logvar is None:
            return ((mean - yn) ** 2).mean(dim=(1, 2)).sum()
        # Gaussian NLL per member (constant dropped), summed over members so each gets a full-size gradient.
        nll = (((mean - yn) ** 2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
        return nll + self.logvar_bound_weight * (self.max_logvar.sum() - self.min_logvar.sum())

    @torch.no_grad()
    def _val_mse(self, xn: Tensor, yn: Tensor) -> Tensor:
        mean, _ = self.forward_normalized(xn)
        return ((mean - yn) ** 2).mean(dim=(1, 2))  # [M]

    def fit(
        self,
        obs: np.ndarray | Tensor,
        act: np.ndarray | Tensor,
        next_obs: np.ndarray | Tensor,
        *,
        epochs: int = 50,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        val_fraction: float = 0.1,
        patience: int = 5,
        seed: int = 0,
        max_steps: int | None = None,
        reward: np.ndarray | Tensor | None = None,
    ) -> dict[str, float]:
        """Refit the normalisers and train on (obs, act, next_obs), early-stopping on a held-out split.

        A random `val_fraction` of the transitions is held out; training stops when the held-out MSE
        (normalised deltas, mean over members) has not improved for `patience` epochs, and the best
        epoch's weights are restored. `max_steps` caps the gradient steps in total. Each member sees
        its own shuffle of the training split. Returns train_loss, val_mse, best_epoch, epochs, steps,
        stopped_early. With reward_dim=1, `reward` [N] is learned as the last output. With num_elites,
        the elites are the members with the lowest held-out MSE at the restored epoch (MBPO's selection).
        """
        device = self.weights[0].device
        o, a, n = (_as_tensor(x, device) for x in (obs, act, next_obs))
        if o.ndim != 2 or a.ndim != 2 or n.ndim != 2:
            raise UserError(f"fit takes 2-D arrays [N, dim]; got obs {tuple(o.shape)}, act {tuple(a.shape)}")
        if not (len(o) == len(a) == len(n)):
            raise UserError(f"fit got {len(o)} obs, {len(a)} actions and {len(n)} next_obs; they must match")
        if o.shape[1] != self.obs_dim or a.shape[1] != self.act_dim or n.shape[1] != self.obs_dim:
            raise UserError(
                f"fit got obs dim {o.shape[1]}, act dim {a.shape[1]}, next_obs dim {n.shape[1]}; "
                f"this model takes obs_dim={self.obs_dim}, act_dim={self.act_dim}"
            )
        if self.reward_dim and reward is None:
            raise UserError(
                "this model learns the reward (reward_dim=1); pass fit(..., reward=<[N] rewards>)"
            )
        if not self.reward_dim and reward is not None:
            raise UserError("fit got a reward but the model has reward_dim=0; build it with reward_dim=1")
        r = _as_tensor(reward, device).reshape(-1, 1) if reward is not None else None
        if r is not None and len(r) != len(o):
            raise UserError(f"fit got {len(o)} obs and {len(r)} rewards; they must match")
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"val_fraction={val_fraction} must be in [0, 1)")
        if epochs < 1 or batch_size < 1:
            raise UserError(f"fit needs epochs >= 1 and batch_size >= 1, got {epochs} and {batch_size}")
        total = len(o)
        if total < 2:
            raise UserError(f"fit got {total} transition(s); collect at least 2")
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(total, generator=gen).to(device)
        n_val = round(total * val_fraction) if val_fraction > 0 else 0
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), total - 1)
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        x = torch.cat([o, a], dim=-1)
        y = n - o if r is None else torch.cat([n - o, r], dim=-1)
        # Normalisers see the training split only, so the validation score is honest.
        self.in_norm.fit(x[tr_idx])
        self.out_norm.fit(y[tr_idx])
        xn, yn = self.in_norm.normalize(x), self.out_norm.normalize(y)
        x_tr, y_tr, x_val, y_val = xn[tr_idx], yn[tr_idx], xn[val_idx], yn[val_idx]

        decay = [p for p in self.weights]
        rest = [p for name, p in self.named_parameters() if not name.startswith("weights.")]
        opt = torch.optim.Adam(
            [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr
        )
        n_tr = len(x_tr)
        bs = min(batch_size, n_tr)
        best = math.inf
        best_state: dict[str, Any] | None = None
        best_epoch, bad_epochs, steps, epoch, stopped_early = 0, 0, 0, 0, False
        train_loss = math.nan
        for epoch in range(1, epochs + 1):
            # One independent shuffle per member: [M, n_tr] indices, so a batch is one gather.
            order = torch.argsort(torch.rand(self.members, n_tr, generator=gen), dim=1).to(device)
            losses = []
            for start in range(0, n_tr, bs):
                idx = order[:, start : start + bs]
                loss = self._loss(x_tr[idx], y_tr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            train_loss = float(np.mean(losses)) / self.members
            if n_val:
                val = float(self._val_mse(x_val, y_val).mean())
                if val < best * (1 - 1e-4):  # MSE >= 0; a relative margin ignores float noise
                    best, best_epoch, bad_epochs = val, epoch, 0
                    best_state = copy.deepcopy(self.state_dict())
                else:
                    bad_epochs += 1
                    if bad_epochs >= patience:
                        stopped_early = True
                        break
            if max_steps is not None and steps >= max_steps:
                break
        if best_state is not None:
            self.load_state_dict(best_state)
        if n_val and self.num_elites is not None:
            member_mse = self._val_mse(x_val, y_val)
            self.elites.copy_(torch.argsort(member_mse)[: self.num_elites].sort().values)
        val_mse = best if n_val else math.nan
        return {
            "train_loss": train_loss,
            "val_mse": val_mse,
            "best_epoch": float(best_epoch if n_val else epoch),
            "epochs": float(epoch),
            "steps": float(steps),
            "stopped_early": float(stopped_early),
        }

    # ----- persistence -----
    def config(self) -> dict[str, Any]:
        """The constructor arguments, so a saved file can rebuild the model."""
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": list(self.hidden),
            "members": self.members,
            "gaussian": self.gaussian,
            "activation": self.activation,
            "logvar_bound_weight": self.logvar_bound_weight,
            "reward_dim": self.reward_dim,
            "num_elites": self.num_elites,
        }

    def save(self, path: str | Path) -> None:
        """Write config + weights + normalisers to `path` atomically (torch.save)."""
        from robolearn.utils.io import atomic_save_with

        payload = {"config": self.config(), "state_dict": self.state_dict()}
        atomic_save_with(Path(path), lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> EnsembleDynamics:
        """Rebuild a model written by save()."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no dynamics model file at {path}; pass the path save() wrote")
        payload = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(**payload["config"])
        model.load_state_dict(payload["state_dict"])
        return model.to(map_location)
