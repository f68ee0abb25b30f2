"""MOREC: learn a dynamics reward from offline data and use it to filter model rollouts.

Luo, Xu, Cao, Yu, "Reward-Consistent Dynamics Models are Strongly Generalizable for Offline Reinforcement
Learning", ICLR 2024 (arXiv 2310.05422). The official code (polixir/morec) ships the filter and pretrained
rewards but not the reward learning; this file implements both, in our own code.

Dynamics reward learning (the paper's method, section 4, and its algorithm). The *transition MDP* has state (s, a) and
action s'; the dynamics model T(s'|s, a) is its agent and a discriminator D(s, a, s') its reward. The game:
  - the discriminator separates the dataset's transitions (label 1) from the dynamics agent's (label 0)
    (GAIL, Ho & Ermon 2016), with the small output-entropy bonus of OpenAI baselines' GAIL (entcoeff 0.001,
    also the official MOREC discriminator's `ent_coeff`);
  - the dynamics agent maximises the GAIL reward -log(1 - D) plus an entropy term alpha * H(T(.|s, a)):
    the paper's entropy regularisation, which makes the agent's updates a no-regret (FTRL-like) learner;
  - every `snapshot_every` rounds the discriminator is copied; the reward is the AVERAGE of the copies. The
    paper's theorem (section 4) is about this averaged reward: with no-regret players, the real dynamics are
    near-optimal for the average of the rounds' rewards, with a gap bounded by the players' average regret,
    which shrinks as rounds grow. One late discriminator alone has no such guarantee (it only separates the
    last generator); the average spans coarse (early) to fine (late) distinctions, which is what makes it a
    graded, generalising score.
Departures, each a choice of ours (the paper leaves them to the implementation or we trade for CPU budget):
  - the transition MDP is run with horizon 1 (each (s, a) of the dataset is an episode of one step), so the
    agent's update is the exact pathwise (reparameterised) gradient of its entropy-regularised objective
    through the discriminator, instead of an RL algorithm over multi-step transition episodes;
  - the agent is a single Gaussian MLP (robolearn.mbrl.models.EnsembleDynamics, members=1) trained from scratch;
  - the kept copies are the last `max_discriminators` snapshots (the official loader likewise keeps a window:
    the last 400 updates, every 10th (MOPO) or 40th (MOBILE); run_morec_*.py `max_retain_num`,
    `ensemble_choosing_interval`), not all rounds;
  - discriminators are small (2 x 32, relu) so that scoring K candidates with all of them costs about one ensemble
    forward (the issue's <= 2x throughput goal).

Each copy is calibrated as the official loader does (models/discriminator_ensemble_loader.py): its logit is
clamped between its mean on generated samples (lo) and on data (hi) at snapshot time, mapped linearly onto
[-1, 1] and squashed by a sigmoid; `score` is the mean over copies, in (0, 1) (in fact [0.27, 0.73]), and the
dynamics reward is r = -log(1 - score) (the official `prob_mean_clip` strategy with d_clip 1.0).

The filter (paper section 4 and abstract): for each model step, K = elites x samples candidates; keep per input the one
with the highest dynamics reward (or sample from softmax(r / 0.1): the official `softmax_elite`); when the
chosen candidate's r is below the threshold (official `terminal_dynamics_reward` 0.6) the rollout ends there.
"""

from __future__ import annotations

import itertools
import math
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import UserError
from robolearn.mbrl.models import EnsembleDynamics, activation_fn, mlp_forward
from robolearn.mbrl.normalizer import Normalizer

__all__ = [
    "DynamicsReward",
    "FilterSettings",
    "RewardLearningSettings",
    "auc",
    "learn_dynamics_reward",
    "load_or_learn_dynamics_reward",
    "make_morec_filter",
    "score_to_reward",
    "select_candidates",
]

Tensor = torch.Tensor
StepFilterFn = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]
FORMAT_VERSION = 1
SCORE_CHUNK = 2048


@dataclass
class RewardLearningSettings:
    """The adversarial game's budget and networks (the `learn` node of configs/filter/morec.yaml)."""

    rounds: int = 3000  # one discriminator step + one dynamics-agent step per round
    batch_size: int = 256
    disc_hidden: tuple[int, ...] = (32, 32)  # small: scoring K candidates x N copies must stay cheap
    disc_activation: str = (
        "relu"  # the official discriminator code's relu layers; tanh learned far slower here
    )
    disc_lr: float = 1e-3
    disc_entropy_coef: float = 0.001  # baselines GAIL entcoeff; official DiscriminatorRestrain.ent_coeff
    gen_hidden: tuple[int, ...] = (200, 200)
    gen_lr: float = 1e-3
    entropy_coef: float = 0.01  # alpha on the dynamics agent's entropy (paper's entropy regularisation)
    snapshot_every: int = 100
    max_discriminators: int = 16
    val_fraction: float = 0.1  # held-out transitions: calibration and the reported AUC

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RewardLearningSettings:
        """Build from a config mapping; unknown keys are one-line errors."""
        out = _from_mapping(cls, values, "filter.learn")
        out.disc_hidden = tuple(int(h) for h in out.disc_hidden)
        out.gen_hidden = tuple(int(h) for h in out.gen_hidden)
        if out.rounds < 1 or out.batch_size < 2 or out.snapshot_every < 1 or out.max_discriminators < 1:
            raise UserError(
                f"filter.learn needs rounds >= 1, batch_size >= 2, snapshot_every >= 1, max_discriminators >= 1; "
                f"got {out.rounds}, {out.batch_size}, {out.snapshot_every}, {out.max_discriminators}"
            )
        if not 0.0 < out.val_fraction < 1.0:
            raise UserError(f"filter.learn.val_fraction={out.val_fraction} must be in (0, 1)")
        activation_fn(out.disc_activation)
        return out


@dataclass
class FilterSettings:
    """How the filter picks and stops (the top level of configs/filter/morec.yaml)."""

    threshold: float = 0.6  # on r = -log(1 - score); official terminal_dynamics_reward 0.6
    selection: str = "max"  # max | softmax (official select_elite | softmax_elite)
    temperature: float = 0.1  # softmax_elite: softmax(r * 10)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FilterSettings:
        """Build from the filter node (keys the filter does not read are ignored: they belong to the loop)."""
        known = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in values.items() if k in known})
        if out.selection not in ("max", "softmax"):
            raise UserError(f"filter.selection={out.selection!r} is not known; use max or softmax")
        if out.temperature <= 0:
            raise UserError(f"filter.temperature={out.temperature} must be > 0")
        return out


def _from_mapping(cls: Any, values: Mapping[str, Any], node: str) -> Any:
    known = {f.name for f in fields(cls)}
    for key in values:
        if key not in known:
            raise UserError(f"unknown {node} setting {key!r}; settings: {', '.join(sorted(known))}")
    return cls(**dict(values))


# ----------------------------------------------------------------------------------------------------------
# The averaged, calibrated discriminator
# ----------------------------------------------------------------------------------------------------------
class DynamicsReward(nn.Module):
    """N calibrated discriminators over (s, a, s' - s), averaged: score(obs, act, next_obs) in (0, 1).

    Weights are stacked [N, out, in] so one batched matmul per layer scores with every copy at once.
    The input normaliser (fitted on the dataset) is saved with the weights."""

    lo: Tensor
    hi: Tensor

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], count: int, activation: str = "relu"
    ) -> None:
        super().__init__()
        if obs_dim <= 0 or act_dim <= 0 or count < 1:
            raise UserError(
                f"DynamicsReward needs obs_dim, act_dim, count >= 1; got {obs_dim}, {act_dim}, {count}"
            )
        self.obs_dim, self.act_dim, self.count = obs_dim, act_dim, count
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        sizes = [2 * obs_dim + act_dim, *self.hidden, 1]
        self.weights = nn.ParameterList(
            [
                nn.Parameter(torch.zeros(count, o, i), requires_grad=False)
                for i, o in itertools.pairwise(sizes)
            ]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(count, o), requires_grad=False) for o in sizes[1:]]
        )
        self.in_norm = Normalizer(2 * obs_dim + act_dim)
        self.register_buffer("lo", torch.zeros(count))
        self.register_buffer("hi", torch.ones(count))
        self.info: dict[str, Any] = {}

    def _inputs(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> tuple[torch.Size, Tensor]:
        if (
            obs.shape[-1] != self.obs_dim
            or act.shape[-1] != self.act_dim
            or next_obs.shape[-1] != self.obs_dim
        ):
            raise UserError(
                f"dynamics reward got obs [..., {obs.shape[-1]}], act [..., {act.shape[-1]}], next_obs "
                f"[..., {next_obs.shape[-1]}]; it was learned with obs_dim={self.obs_dim}, act_dim={self.act_dim}"
            )
        lead = torch.broadcast_shapes(obs.shape[:-1], act.shape[:-1], next_obs.shape[:-1])
        o = obs.expand(*lead, self.obs_dim)
        x = torch.cat([o, act.expand(*lead, self.act_dim), next_obs.expand(*lead, self.obs_dim) - o], dim=-1)
        return lead, self.in_norm.normalize(x.reshape(-1, x.shape[-1]))

    def logits(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        """Each copy's raw logit, [N, ...]."""
        lead, xn = self._inputs(obs, act, next_obs)
        layers = list(zip(self.weights, self.biases, strict=True))
        # Row chunks keep the [N, chunk, hidden] activations in cache: on CPU this halves the cost of
        # scoring a rollout step's K x B candidates with every copy (benchmarks/morec.py throughput).
        chunks = [
            mlp_forward(layers, xn[i : i + SCORE_CHUNK], self.activation, inplace=True)
            for i in range(0, len(xn), SCORE_CHUNK)
        ]
        out = torch.cat(chunks, dim=1) if len(chunks) != 1 else chunks[0]  # [N, B, 1]
        return out.reshape(self.count, *lead)

    def score(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        """The averaged calibrated probability that (s, a, s') is a real transition, in (0, 1), [...]."""
        lg = self.logits(obs, act, next_obs)
        shape = (self.count,) + (1,) * (lg.dim() - 1)
        lo, hi = self.lo.reshape(shape), self.hi.reshape(shape)
        # Official calibration with load_min_max=False: clamp to [lo, hi], map to [-1, 1], sigmoid.
        u = ((lg - lo) / (hi - lo)).clamp(0.0, 1.0)
        return torch.sigmoid(2.0 * u - 1.0).mean(0)

    def reward(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        """The dynamics reward r = -log(1 - score) (the scale the threshold is given on)."""
        return score_to_reward(self.score(obs, act, next_obs))

    # ----- persistence -----
    def config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": list(self.hidden),
            "count": self.count,
            "activation": self.activation,
        }

    def save(self, path: str | Path) -> None:
        """Config, stacked weights, normaliser, calibration and learning info, written atomically."""
        from robolearn.utils.io import atomic_save_with

        payload = {
            "format": FORMAT_VERSION,
            "config": self.config(),
            "state_dict": self.state_dict(),
            "info": _jsonable(self.info),
        }
        atomic_save_with(Path(path), lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> DynamicsReward:
        """Rebuild a reward written by save()."""
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"no dynamics reward file at {path}; give the file a MOREC run saved (dynamics_reward.pt)"
            )
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
            model = cls(**payload["config"])
            model.load_state_dict(payload["state_dict"])
        except (KeyError, RuntimeError, TypeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            raise UserError(
                f"{path}: not a dynamics reward saved by robolearn ({type(exc).__name__}: {exc})"
            ) from None
        model.info = dict(payload.get("info", {}))
        return model.to(map_location)


def score_to_reward(score: Tensor) -> Tensor:
    """r = -log(1 - score): the official reward scale (threshold 0.6 <=> score 1 - e^-0.6 = 0.451)."""
    return -torch.log1p(-score.clamp(max=1.0 - 1e-7))


def _jsonable(info: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = [float(x) if isinstance(x, (int, float, np.floating)) else str(x) for x in v]
        else:
            out[k] = str(v)
    return out


# ----------------------------------------------------------------------------------------------------------
# Learning: the adversarial game in the transition MDP
# ----------------------------------------------------------------------------------------------------------
def auc(pos: np.ndarray | Tensor, neg: np.ndarray | Tensor) -> float:
    """Area under the ROC curve: P(score(pos) > score(neg)), ties counting one half (Mann-Whitney U)."""
    p = np.asarray(pos.detach().cpu() if isinstance(pos, Tensor) else pos, dtype=np.float64).ravel()
    n = np.asarray(neg.detach().cpu() if isinstance(neg, Tensor) else neg, dtype=np.float64).ravel()
    if len(p) == 0 or len(n) == 0:
        raise UserError("auc needs at least one positive and one negative score")
    allv = np.concatenate([p, n])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv), dtype=np.float64)
    sorted_v = allv[order]
    # Average ranks over ties.
    i = 0
    while i < len(sorted_v):
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    u = ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2.0
    return float(u / (len(p) * len(n)))


def _init_layers(sizes: list[int], gen: torch.Generator) -> list[tuple[Tensor, Tensor]]:
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init
        w = ((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound).requires_grad_(True)
        b = ((torch.rand(fan_out, generator=gen) * 2 - 1) * bound).requires_grad_(True)
        layers.append((w, b))
    return layers


def learn_dynamics_reward(
    obs: np.ndarray | Tensor,
    act: np.ndarray | Tensor,
    next_obs: np.ndarray | Tensor,
    settings: RewardLearningSettings | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log: Callable[[dict[str, float]], None] | None = None,
) -> DynamicsReward:
    """Play the transition-MDP game on (obs, act, next_obs) [N, .] and return the averaged dynamics reward."""
    s = settings or RewardLearningSettings()
    dev = torch.device(device)
    o, a, n = (
        torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
        for x in (obs, act, next_obs)
    )
    if o.ndim != 2 or a.ndim != 2 or n.shape != o.shape or len(a) != len(o):
        raise UserError(
            f"learn_dynamics_reward takes obs [N, o], act [N, a], next_obs [N, o]; got {tuple(o.shape)}, "
            f"{tuple(a.shape)}, {tuple(n.shape)}"
        )
    if len(o) < 10:
        raise UserError(f"learn_dynamics_reward got {len(o)} transitions; it needs at least 10")
    if not (torch.isfinite(o).all() and torch.isfinite(a).all() and torch.isfinite(n).all()):
        raise UserError("learn_dynamics_reward got NaN/inf in the transitions; clean the dataset first")
    o, a, n = o.to(dev), a.to(dev), n.to(dev)
    obs_dim, act_dim = o.shape[1], a.shape[1]
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(o), generator=gen).to(dev)
    n_val = min(max(1, round(len(o) * s.val_fraction)), len(o) - 2)
    val_idx, tr_idx = perm[:n_val], perm[n_val:]

    reward = DynamicsReward(obs_dim, act_dim, s.disc_hidden, s.max_discriminators, s.disc_activation).to(dev)
    reward.in_norm.fit(torch.cat([o, a, n - o], dim=-1)[tr_idx])

    # The dynamics agent: a Gaussian MLP over normalised deltas (the model family offline MBRL uses).
    agent = EnsembleDynamics(obs_dim, act_dim, hidden=s.gen_hidden, members=1, gaussian=True, seed=seed).to(
        dev
    )
    agent.in_norm.fit(torch.cat([o, a], dim=-1)[tr_idx])
    agent.out_norm.fit((n - o)[tr_idx])
    gen_opt = torch.optim.Adam(agent.parameters(), lr=s.gen_lr)

    disc = [
        (w.to(dev).detach().requires_grad_(True), b.to(dev).detach().requires_grad_(True))
        for w, b in _init_layers([2 * obs_dim + act_dim, *s.disc_hidden, 1], gen)
    ]
    disc_opt = torch.optim.Adam([p for layer in disc for p in layer], lr=s.disc_lr)

    def d_logit(layers: list[tuple[Tensor, Tensor]], ob: Tensor, ac: Tensor, nx: Tensor) -> Tensor:
        x = reward.in_norm.normalize(torch.cat([ob, ac, nx - ob], dim=-1))
        return mlp_forward(layers, x, s.disc_activation).squeeze(-1)

    def generate(ob: Tensor, ac: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterised draw s' ~ T(.|s, a) and the per-sample entropy (normalised units, up to a constant)."""
        xn = agent.in_norm.normalize(torch.cat([ob, ac], dim=-1))
        mean_n, logvar_n = agent.forward_normalized(xn)
        assert logvar_n is not None
        eps = torch.randn(mean_n.shape, generator=gen).to(dev)
        delta_n = mean_n + torch.exp(0.5 * logvar_n) * eps
        return ob + agent.out_norm.denormalize(delta_n[0]), 0.5 * logvar_n[0].sum(-1)

    snapshots: list[tuple[list[tuple[Tensor, Tensor]], float, float]] = []
    vo, va, vn = o[val_idx], a[val_idx], n[val_idx]
    n_tr = len(tr_idx)
    t0 = time.perf_counter()
    d_loss_v = g_loss_v = math.nan
    for rnd in range(1, s.rounds + 1):
        # 1. Discriminator: data (1) vs the current agent's transitions (0), plus the output-entropy bonus.
        i = tr_idx[torch.randint(n_tr, (s.batch_size,), generator=gen).to(dev)]
        with torch.no_grad():
            fake, _ = generate(o[i], a[i])
        real_l, fake_l = d_logit(disc, o[i], a[i], n[i]), d_logit(disc, o[i], a[i], fake)
        logits = torch.cat([real_l, fake_l])
        labels = torch.cat([torch.ones_like(real_l), torch.zeros_like(fake_l)])
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        p = torch.sigmoid(logits)
        ent = (F.softplus(logits) - logits * p).mean()  # Bernoulli entropy of sigmoid(logits)
        d_loss = bce - s.disc_entropy_coef * ent
        disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        disc_opt.step()

        # 2. Dynamics agent: maximise E[-log(1 - D(s, a, s'))] + alpha H(T(.|s, a)) (horizon-1 transition MDP).
        j = tr_idx[torch.randint(n_tr, (s.batch_size,), generator=gen).to(dev)]
        nxt, entropy = generate(o[j], a[j])
        g_reward = F.softplus(d_logit(disc, o[j], a[j], nxt))  # -log(1 - sigmoid(l))
        g_loss = -(g_reward + s.entropy_coef * entropy).mean()
        gen_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        gen_opt.step()
        d_loss_v, g_loss_v = d_loss.item(), g_loss.item()

        if rnd % s.snapshot_every == 0 or rnd == s.rounds:
            # Calibrate this copy on held-out data (hi) and fresh agent samples (lo), as the official loader does.
            with torch.no_grad():
                frozen = [(w.detach().clone(), b.detach().clone()) for w, b in disc]
                fake_v, _ = generate(vo, va)
                hi = float(d_logit(frozen, vo, va, vn).mean())
                lo = float(d_logit(frozen, vo, va, fake_v).mean())
            if (
                hi - lo > 1e-3
            ):  # a copy that cannot tell data from the agent carries no information (official mask)
                snapshots.append((frozen, lo, hi))
                snapshots = snapshots[-s.max_discriminators :]
            if log is not None:
                log({"round": float(rnd), "disc_loss": d_loss_v, "gen_loss": g_loss_v, "lo": lo, "hi": hi})
    if not snapshots:
        raise UserError(
            "dynamics reward learning kept no discriminator (none separated data from the model); "
            "raise filter.learn.rounds or disc_lr"
        )
    out = DynamicsReward(obs_dim, act_dim, s.disc_hidden, len(snapshots), s.disc_activation).to(dev)
    out.in_norm.load_state_dict(reward.in_norm.state_dict())
    with torch.no_grad():
        for li in range(len(out.weights)):
            out.weights[li].copy_(torch.stack([snap[0][li][0] for snap in snapshots]))
            out.biases[li].copy_(torch.stack([snap[0][li][1] for snap in snapshots]))
        out.lo.copy_(torch.tensor([snap[1] for snap in snapshots]))
        out.hi.copy_(torch.tensor([snap[2] for snap in snapshots]))
        fake_v, _ = generate(vo, va)
        val_score = out.score(vo, va, vn)
        val_auc = auc(val_score, out.score(vo, va, fake_v))
        val_r = score_to_reward(val_score)
    out.info = {
        "rounds": s.rounds,
        "discriminators": len(snapshots),
        "final_disc_loss": d_loss_v,
        "final_gen_loss": g_loss_v,
        "val_auc_vs_agent": val_auc,
        # How much held-out REAL data the official threshold (r < 0.6) would reject: a calibration check.
        "val_reward_median": float(val_r.median()),
        "val_below_0.6": float((val_r < 0.6).float().mean()),
        "seconds": time.perf_counter() - t0,
        "transitions": len(o),
        "seed": seed,
    }
    return out


# ----------------------------------------------------------------------------------------------------------
# The filter
# ----------------------------------------------------------------------------------------------------------
def select_candidates(
    score: Tensor,
    cand_next: Tensor,
    cand_rew: Tensor,
    settings: FilterSettings,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pick one candidate per input from scores [K, B]: (next [B, o], rew [B], keep [B], chosen score [B])."""
    _k, b = score.shape
    rows = torch.arange(b, device=score.device)
    if settings.selection == "max":
        idx = score.argmax(0)
    else:
        probs = torch.softmax(score_to_reward(score) / settings.temperature, dim=0)  # [K, B]
        idx = torch.multinomial(probs.t(), 1, generator=generator).squeeze(-1)
    chosen = score[idx, rows]
    keep = score_to_reward(chosen) >= settings.threshold
    return cand_next[idx, rows], cand_rew[idx, rows], keep, chosen


def make_morec_filter(dynamics_reward: DynamicsReward, cfg: Mapping[str, Any]) -> StepFilterFn:
    """The StepFilter of robolearn.mbrl.offline.rollout: best candidate by dynamics reward, stop below threshold."""
    settings = FilterSettings.from_mapping(dict(cfg))

    @torch.no_grad()
    def step_filter(
        obs: Tensor, act: Tensor, cand_next: Tensor, cand_rew: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if cand_next.dim() != 3 or cand_rew.shape != cand_next.shape[:2]:
            raise UserError(
                f"MOREC filter takes candidates [K, B, o] and rewards [K, B]; got {tuple(cand_next.shape)} "
                f"and {tuple(cand_rew.shape)}"
            )
        score = dynamics_reward.score(obs.unsqueeze(0), act.unsqueeze(0), cand_next)  # [K, B]
        return select_candidates(score, cand_next, cand_rew, settings)

    return step_filter


def _plain(cfg: Any) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            out = OmegaConf.to_container(cfg, resolve=True)
            assert isinstance(out, dict)
            return {str(k): v for k, v in out.items()}
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def load_or_learn_dynamics_reward(
    dataset: Any, cfg: Mapping[str, Any], path: Path, *, seed: int, device: str
) -> DynamicsReward:
    """Load the dynamics reward at `path` (checked against the dataset's dims), or learn it and save it there."""
    from robolearn.datasets import OfflineDataset

    if not isinstance(dataset, OfflineDataset):
        raise UserError(
            f"load_or_learn_dynamics_reward takes an OfflineDataset, got {type(dataset).__name__}"
        )
    t = dataset.transitions()
    if isinstance(t.observations, dict) or isinstance(t.next_observations, dict):
        raise UserError(f"{dataset.path}: MOREC needs Box observations, this dataset has Dict observations")
    obs = np.asarray(t.observations, dtype=np.float32).reshape(len(t), -1)
    act = np.asarray(t.actions, dtype=np.float32).reshape(len(t), -1)
    nxt = np.asarray(t.next_observations, dtype=np.float32).reshape(len(t), -1)
    path = Path(path)
    if path.is_file():
        reward = DynamicsReward.load(path, map_location=device)
        if reward.obs_dim != obs.shape[1] or reward.act_dim != act.shape[1]:
            raise UserError(
                f"filter.reward_path={path} was learned for obs {reward.obs_dim}, act {reward.act_dim}; "
                f"{dataset.dataset_id} has obs {obs.shape[1]}, act {act.shape[1]}: learn one for this dataset"
            )
        return reward
    plain = _plain(cfg)
    settings = RewardLearningSettings.from_mapping(plain.get("learn") or {})
    reward = learn_dynamics_reward(obs, act, nxt, settings, seed=seed, device=device)
    reward.info["dataset_id"] = dataset.dataset_id
    reward.save(path)
    return reward
