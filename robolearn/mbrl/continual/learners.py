"""Continual dynamics learners: HyperCRL and the paper's baselines, one interface for the loop.

Every learner fits a dynamics MLP that predicts the normalised state delta from normalised
(obs, action), task after task, and hands the loop a `DynamicsModel` per task (`model(task)`).

- hypercrl: a hypernetwork generates the MLP's weights from a learned task embedding. Task t trains
  its embedding and the hypernetwork on task t's data only; for every earlier task j the
  regulariser beta * ||h(e_j, theta*) - h(e_j, theta + delta_theta)||^2 (averaged over j) keeps
  the generated weights where they were when task t began, evaluated at the look-ahead point
  theta + delta_theta, the step Adam would take on the task loss (Huang et al., IROS 2021, Eq. 4;
  von Oswald et al., ICLR 2020, Eq. 2). Earlier embeddings are frozen.
- hypercrl_noreg: the same with beta = 0.
- finetune, coreset, ewc, si, multitask: one MLP with a shared trunk and one output head per task,
  as the official baselines (rvl-lab-utoronto/HyperCRL hypercrl/model/mbrl.py `Baseline`). finetune
  trains on the current task only; coreset also replays a random sample of each earlier task (all
  of it each step, its loss scaled to the batch size, as the official `MSELoss`); multitask replays
  one batch of every earlier task's full data each step (`MTBaseline`); ewc adds the online-EWC
  penalty with a diagonal empirical Fisher of the Gaussian NLL (Schwarz et al. 2018); si adds the
  synaptic-intelligence penalty (Zenke et al. 2017). ewc/si penalise the trunk only (the official
  code skips heads and log-variance bounds).
- single: a fresh MLP per task (kept per task, so every task's model stays available).

Normalisation: per task, as the official DataCollector (`normalize_xu`, statistics of the task's
own data): each fit refits task t's input and delta normalisers on the buffer it is given; they are
frozen once the task ends. Losses follow the official TaskLoss/MSELoss: summed over the batch and
divided by the output size (Gaussian heads: NLL with soft log-variance bounds plus
0.01 * (max_logvar - min_logvar)), so the official penalty weights (beta, EWC lambda, SI c) keep
their meaning. One difference: the official code predicts raw deltas, these learners normalised ones,
which changes how strongly a given beta binds relative to the task loss (more so for Gaussian heads,
whose NLL gradients grow as the variance shrinks).

Tuning note (benchmarks/hypercrl_learners.py, toy two-task system, 300 steps per task): at the official
lr_hyper = 1e-4 the embedding barely moves in a short budget (Adam moves it ~lr per step, the
official runs take ~10^5 steps per task), so the hypernetwork itself must fit the new task and the
regulariser holds less; lr 1e-3 (and, for Gaussian heads, beta 0.5) held task 0 on that toy.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from robolearn.errors import UserError, close_matches
from robolearn.mbrl.hypernet import (
    HyperNetwork,
    default_chunking,
    default_hnet_hidden,
    mlp_shapes,
    pair_params,
)
from robolearn.mbrl.models import activation_fn, mlp_forward
from robolearn.mbrl.normalizer import Normalizer

# Defaults per learner, from the paper and the official code. The model block (MLP sizes and
# training) is per environment in configs/loop/<env>.yaml; MODEL_DEFAULTS is the official
# Pendulum setting (default_arg.py, default_arg_pendulum), used for keys a config leaves out.
MODEL_DEFAULTS: dict[str, Any] = {
    "hidden": [32, 32],
    "activation": "relu",
    "gaussian": False,  # out_var
    "lr": 1e-3,
    "batch_size": 20,  # bs
    "train_iters": 1000,  # train_dynamic_iters (gradient steps per dynamics update)
    "weight_decay": 0.0,  # reg_lambda (applied here as Adam's L2 weight decay on the baselines' MLPs)
}
_HNET = {
    # hypercrl/tools/default_arg.py, Hparams.add_hnet_hparams
    "beta": 0.05,  # 0.5 for door_pose / pusher_slide
    "lookahead": True,  # no_look_ahead = False
    "emb_size": 10,
    "emb_std": 1.0,  # std_normal_temb
    "hnet_hidden": None,  # None: the official pairing with the target MLP (hypernet.OFFICIAL_HNET_HIDDEN)
    "hnet_activation": "relu",  # elu for door / pusher
    "lr": 1e-4,  # lr_hyper
    "grad_max_norm": 5.0,
    "chunked": False,
    # Hparams.add_chunked_hnet_hparams (None: the official table, hypernet.OFFICIAL_CHUNKING)
    "chunk_size": None,
    "chunk_emb_size": None,
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "hypercrl": dict(_HNET),
    "hypercrl_noreg": {**_HNET, "beta": 0.0},
    "finetune": {},
    "single": {},
    "multitask": {},
    # The official coreset size M is per env in default_arg.py (pendulum 50, inverted pendulum 400,
    # half_cheetah 1000, pusher 200); 1000 is the HalfCheetah value.
    "coreset": {"coreset_size": 1000},
    # hypercrl/lqr_exp.py `ewc`: ewc_beta = 10000, empirical Fisher, gamma 1 (the official runs
    # offline EWC; online EWC with gamma = 1 sums the same Fisher terms, anchored at the last task).
    "ewc": {"ewc_lambda": 10000.0, "online_gamma": 1.0, "fisher_samples": -1},
    # hypercrl/lqr_exp.py `si`: si_c = 0.1, si_epsilon = 1e-3.
    "si": {"si_c": 0.1, "si_eps": 1e-3},
}
LEARNERS = tuple(DEFAULTS)

# Initial soft log-variance bounds of Gaussian heads (official Baseline / MLP: 0.5 and -10).
_MAX_LOGVAR0, _MIN_LOGVAR0 = 0.5, -10.0


@dataclass(frozen=True)
class ModelSettings:
    """The dynamics MLP and its training (the `model` block of the continual config)."""

    hidden: tuple[int, ...]
    activation: str
    gaussian: bool
    lr: float
    batch_size: int
    train_iters: int
    weight_decay: float

    @staticmethod
    def from_cfg(cfg: Mapping[str, Any]) -> ModelSettings:
        """Read cfg['model'] over MODEL_DEFAULTS (None values take the default), checking ranges."""
        given = dict(cfg.get("model") or {})
        values: dict[str, Any] = {
            k: (given.get(k) if given.get(k) is not None else v) for k, v in MODEL_DEFAULTS.items()
        }
        hidden = tuple(int(h) for h in values["hidden"])
        if not hidden or min(hidden) < 1:
            raise UserError(f"model.hidden={list(hidden)} must be a non-empty list of sizes >= 1")
        activation_fn(str(values["activation"]))
        for key in ("lr", "batch_size", "train_iters"):
            if not float(values[key]) > 0:
                raise UserError(f"model.{key}={values[key]} must be > 0")
        if float(values["weight_decay"]) < 0:
            raise UserError(f"model.weight_decay={values['weight_decay']} must be >= 0")
        return ModelSettings(
            hidden=hidden,
            activation=str(values["activation"]),
            gaussian=bool(values["gaussian"]),
            lr=float(values["lr"]),
            batch_size=int(values["batch_size"]),
            train_iters=int(values["train_iters"]),
            weight_decay=float(values["weight_decay"]),
        )


def _settings(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The learner's own settings: DEFAULTS[name] overridden by cfg's non-None values."""
    out = dict(DEFAULTS[name])
    for key, value in cfg.items():
        if key in ("name", "model"):
            continue
        if key not in out:
            known = ", ".join(out) or "none besides model.*"
            raise UserError(
                f"learner.{key} is not a setting of learner={name}{close_matches(key, out)}; its settings: {known}"
            )
        if value is not None:
            out[key] = value
    return out


def _bound_logvar(raw: torch.Tensor, max_lv: torch.Tensor, min_lv: torch.Tensor) -> torch.Tensor:
    """Soft-clamp a log-variance into [min_lv, max_lv] (PETS, Chua et al. 2018, App. A.1)."""
    lv = max_lv - F.softplus(max_lv - raw)
    return min_lv + F.softplus(lv - min_lv)


class TaskDynamics:
    """One task's dynamics model: an MLP on fixed weights plus that task's normalisers.

    `predict(obs, act)` returns the next observation's mean and std in raw units (std zeros for a
    deterministic head); any leading batch shape.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        in_norm: Normalizer,
        out_norm: Normalizer,
        activation: str,
        obs_dim: int,
        logvar_bounds: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        self.params = pair_params([p.detach().clone() for p in params])
        # The output layer's mean columns alone (contiguous), so planning skips the variance head.
        w_out, b_out = self.params[-1]
        self.mean_params = [
            *self.params[:-1],
            (w_out[:obs_dim].contiguous(), b_out[:obs_dim].contiguous()),
        ]
        self.in_norm = copy.deepcopy(in_norm)
        self.out_norm = copy.deepcopy(out_norm)
        self.act = activation_fn(activation)
        self.obs_dim = obs_dim
        self.bounds = None if logvar_bounds is None else tuple(b.detach().clone() for b in logvar_bounds)

    @torch.no_grad()
    def predict_mean(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Mean of the next observation (raw units); what the planners roll out."""
        return self._mean(obs, self._forward(obs, act, mean_only=True))

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the next observation (raw units) for a batch of (obs, act)."""
        out = self._forward(obs, act)
        mean = self._mean(obs, out)
        if self.bounds is None:
            return mean, torch.zeros_like(mean)
        logvar = _bound_logvar(out[..., self.obs_dim :], *self.bounds)
        return mean, self.out_norm.denormalize_scale(torch.exp(0.5 * logvar))

    def _forward(self, obs: torch.Tensor, act: torch.Tensor, mean_only: bool = False) -> torch.Tensor:
        x = self.in_norm.normalize(torch.cat([obs, act], dim=-1))
        return mlp_forward(self.mean_params if mean_only else self.params, x, self.act)

    def _mean(self, obs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return obs + self.out_norm.denormalize(out[..., : self.obs_dim])


class ContinualLearner(ABC):
    """A dynamics learner that sees tasks one after another (the continual loop drives it)."""

    name: str = ""

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
    ) -> None:
        if obs_dim < 1 or act_dim < 1 or num_tasks < 1:
            raise UserError(f"obs_dim={obs_dim}, act_dim={act_dim}, num_tasks={num_tasks} must all be >= 1")
        self.obs_dim, self.act_dim, self.num_tasks = int(obs_dim), int(act_dim), int(num_tasks)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.m = ModelSettings.from_cfg(cfg)
        self.s = _settings(self.name, cfg)
        self.out_dim = self.obs_dim * (2 if self.m.gaussian else 1)
        # Own generators: construction and batch order do not depend on (or disturb) global RNGs.
        self.init_gen = torch.Generator().manual_seed(self.seed)
        self.batch_gen = torch.Generator().manual_seed(self.seed + 1)
        self.norms = nn.ModuleList(
            [
                nn.ModuleDict(
                    {"inp": Normalizer(self.obs_dim + self.act_dim), "out": Normalizer(self.obs_dim)}
                )
                for _ in range(self.num_tasks)
            ]
        ).to(self.device)
        self.task = 0

    # -- the interface the loop calls ------------------------------------------------------------
    def begin_task(self, task: int) -> None:
        """Start task `task` (tasks come in order 0, 1, ...): fresh optimiser, anchors."""
        self._check_task(task)
        self.task = task
        self._begin(task)

    def fit(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> dict[str, float]:
        """Train on the current task's whole buffer for `model.train_iters` gradient steps."""
        if task != self.task:
            raise UserError(
                f"fit(task={task}) while task {self.task} is current; call begin_task({task}) first"
            )
        x, y = self._prepare(task, obs, act, next_obs, refit=True)
        return self._train(task, x, y)

    def end_task(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        """Close task `task` (anchors, coresets, Fisher, SI importances); its normalisers freeze."""
        if task != self.task:
            raise UserError(f"end_task(task={task}) while task {self.task} is current")
        self._end(task, obs, act, next_obs)

    @abstractmethod
    def model(self, task: int) -> TaskDynamics:
        """What MPC plans with on task `task`."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this learner stands."""
        return {
            "name": self.name,
            "task": self.task,
            "norms": self.norms.state_dict(),
            "batch_gen": self.batch_gen.get_state(),
            **self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() saved (on a learner made with the same arguments)."""
        if state.get("name") != self.name:
            raise UserError(f"a {state.get('name')} learner's state cannot load into learner={self.name}")
        self.task = int(state["task"])
        self.norms.load_state_dict(state["norms"])
        self.batch_gen.set_state(state["batch_gen"])
        self._load(state)

    # -- pieces for subclasses -------------------------------------------------------------------
    @abstractmethod
    def _begin(self, task: int) -> None: ...

    @abstractmethod
    def _train(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]: ...

    def _end(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        return None

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _load(self, state: dict[str, Any]) -> None: ...

    def _norm(self, task: int) -> tuple[Normalizer, Normalizer]:
        """Task `task`'s (input, delta) normalisers."""
        pair = cast(nn.ModuleDict, self.norms[task])
        return cast(Normalizer, pair["inp"]), cast(Normalizer, pair["out"])

    def _check_task(self, task: int) -> None:
        if not 0 <= task < self.num_tasks:
            raise UserError(f"task={task} is out of range; this learner was made for {self.num_tasks} tasks")

    def _prepare(
        self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray, refit: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs and normalised deltas of task `task` (refitting its normalisers if asked)."""
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(
            -1, self.obs_dim
        )
        a = torch.as_tensor(np.asarray(act), dtype=torch.float32, device=self.device).reshape(
            -1, self.act_dim
        )
        n = torch.as_tensor(np.asarray(next_obs), dtype=torch.float32, device=self.device).reshape(
            -1, self.obs_dim
        )
        if len(o) == 0:
            raise UserError(f"task {task} has no transitions to train on; collect data before fitting")
        xu, delta = torch.cat([o, a], -1), n - o
        inp, out = self._norm(task)
        if refit:
            inp.fit(xu)
            out.fit(delta)
        return inp.normalize(xu), out.normalize(delta)

    def _batches(self, n: int) -> torch.Tensor:
        """`train_iters` batches of indices, epoch by epoch over a shuffled order (last partial batch dropped)."""
        b = min(self.m.batch_size, n)
        per_epoch = n // b
        epochs = -(-self.m.train_iters // per_epoch)
        perms = torch.stack([torch.randperm(n, generator=self.batch_gen) for _ in range(epochs)])
        idx = perms[:, : per_epoch * b].reshape(-1, b)[: self.m.train_iters]
        return idx.to(self.device)

    def _task_loss(
        self, out: torch.Tensor, y: torch.Tensor, bounds: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """Official TaskLoss: summed over the batch, / output size; Gaussian NLL with bound penalty."""
        if bounds is None:
            return F.mse_loss(out, y, reduction="sum") / self.obs_dim
        mu, raw = out[..., : self.obs_dim], out[..., self.obs_dim :]
        logvar = _bound_logvar(raw, *bounds)
        nll = ((mu - y) ** 2 * torch.exp(-logvar) + logvar).sum() / self.obs_dim
        return nll + 0.01 * (bounds[0].sum() - bounds[1].sum())

    def _new_bounds(self) -> nn.ParameterList:
        return nn.ParameterList(
            [
                nn.Parameter(torch.full((self.obs_dim,), v, device=self.device))
                for _ in range(self.num_tasks)
                for v in (_MAX_LOGVAR0, _MIN_LOGVAR0)
            ]
        )


def _linear_init(shapes: Sequence[tuple[int, ...]], gen: torch.Generator) -> list[nn.Parameter]:
    """nn.Linear's default init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, from `gen`."""
    out = []
    for i in range(0, len(shapes), 2):
        bound = 1.0 / math.sqrt(shapes[i][1])  # weights are [out, in]
        for shape in (shapes[i], shapes[i + 1]):
            out.append(nn.Parameter((torch.rand(shape, generator=gen) * 2 - 1) * bound))
    return out


class MultiHeadMLP(nn.Module):
    """A trunk shared by all tasks and one linear output head (and log-variance bounds) per task."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int],
        heads: int,
        gaussian: bool,
        gen: torch.Generator,
    ) -> None:
        super().__init__()
        shapes = mlp_shapes(in_dim, out_dim, hidden)
        self.trunk = nn.ParameterList(_linear_init(shapes[:-2], gen))
        self.heads = nn.ParameterList([p for _ in range(heads) for p in _linear_init(shapes[-2:], gen)])
        obs_dim = out_dim // 2 if gaussian else out_dim
        self.bounds = (
            nn.ParameterList(
                [
                    nn.Parameter(torch.full((obs_dim,), v))
                    for _ in range(heads)
                    for v in (_MAX_LOGVAR0, _MIN_LOGVAR0)
                ]
            )
            if gaussian
            else None
        )

    def params(self, head: int) -> list[torch.Tensor]:
        """Trunk + head `head` as a flat [W1, b1, ..., W_out, b_out] list."""
        return [*self.trunk, self.heads[2 * head], self.heads[2 * head + 1]]

    def head_bounds(self, head: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(max_logvar, min_logvar) of head `head`, or None for a deterministic head."""
        return None if self.bounds is None else (self.bounds[2 * head], self.bounds[2 * head + 1])


class MLPLearner(ContinualLearner):
    """finetune / single / multitask / coreset / ewc / si: a multi-head MLP trained with Adam."""

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
    ) -> None:
        super().__init__(obs_dim, act_dim, num_tasks, cfg, device, seed)
        # `single` keeps one fresh single-head network per task; the others share one network.
        count, heads = (num_tasks, 1) if self.name == "single" else (1, num_tasks)
        self.nets = nn.ModuleList(
            [
                MultiHeadMLP(
                    obs_dim + act_dim, self.out_dim, self.m.hidden, heads, self.m.gaussian, self.init_gen
                )
                for _ in range(count)
            ]
        ).to(self.device)
        self.optimizer = self._make_optimizer(0)
        # Replay memory: normalised (x, y) per earlier task (multitask: all of it; coreset: a sample).
        self.memory: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _net(self, task: int) -> tuple[MultiHeadMLP, int]:
        if self.name == "single":
            return cast(MultiHeadMLP, self.nets[task]), 0
        return cast(MultiHeadMLP, self.nets[0]), task

    def _trunk(self) -> list[nn.Parameter]:
        """The shared trunk's parameters (ewc, si)."""
        return list(cast(MultiHeadMLP, self.nets[0]).trunk)

    def _make_optimizer(self, task: int) -> torch.optim.Adam:
        net, _ = self._net(task)
        return torch.optim.Adam(net.parameters(), lr=self.m.lr, weight_decay=self.m.weight_decay, fused=True)

    def _forward(
        self, task: int, x: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        net, head = self._net(task)
        return mlp_forward(pair_params(net.params(head)), x, self.m.activation), net.head_bounds(head)

    def _begin(self, task: int) -> None:
        self.optimizer = self._make_optimizer(task)

    def _penalty(self) -> torch.Tensor | None:
        """The continual penalty added to the task loss (ewc, si); None for none."""
        return None

    def _after_step(self, task_grads: list[torch.Tensor], before: list[torch.Tensor]) -> None:
        """Called after each optimiser step with the trunk's task-loss gradients and pre-step values."""

    def _replay_loss(self, batch: int) -> torch.Tensor | None:
        """multitask / coreset: the loss on earlier tasks' memory, scaled to `batch` samples per task."""
        if not self.memory:
            return None
        total = torch.zeros((), device=self.device)
        for j, (mx, my) in enumerate(self.memory):
            if self.name == "multitask":
                idx = torch.randint(len(mx), (min(batch, len(mx)),), generator=self.batch_gen).to(self.device)
                mx, my = mx[idx], my[idx]
            out, bounds = self._forward(j, mx)
            # Official MSELoss: a replayed set counts as much as one batch of the current task.
            total = total + self._task_loss(out, my, bounds) * batch / len(mx)
        return total

    def _train(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        net, _ = self._net(task)
        trunk = list(net.trunk)
        losses: list[float] = []
        penalties: list[float] = []
        for idx in self._batches(len(x)):
            out, bounds = self._forward(task, x[idx])
            loss = self._task_loss(out, y[idx], bounds)
            replay = self._replay_loss(len(idx))
            if replay is not None:
                loss = loss + replay
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            task_grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in trunk]
            penalty = self._penalty()
            if penalty is not None:
                penalty.backward()
                penalties.append(float(penalty.detach()))
            before = [p.detach().clone() for p in trunk]
            self.optimizer.step()
            self._after_step(task_grads, before)
            losses.append(float(loss.detach()) / len(idx))
        info = {"loss": float(np.mean(losses[-50:])), "loss_first": losses[0], "n": float(len(x))}
        if penalties:
            info["penalty"] = float(np.mean(penalties[-50:]))
        return info

    def model(self, task: int) -> TaskDynamics:
        """The MLP (trunk + task's head) with task `task`'s normalisers."""
        self._check_task(task)
        net, head = self._net(task)
        return TaskDynamics(
            net.params(head),
            *self._norm(task),
            self.m.activation,
            self.obs_dim,
            net.head_bounds(head),
        )

    def _state(self) -> dict[str, Any]:
        return {
            "nets": self.nets.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "memory": [(mx.cpu(), my.cpu()) for mx, my in self.memory],
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.optimizer = self._make_optimizer(self.task)
        self.optimizer.load_state_dict(state["optimizer"])
        self.memory = [(mx.to(self.device), my.to(self.device)) for mx, my in state["memory"]]


class FinetuneLearner(MLPLearner):
    """One multi-head MLP trained task after task on each task's data only (the paper's fine-tuning)."""

    name = "finetune"


class SingleLearner(MLPLearner):
    """A fresh MLP per task (the paper's single-task baseline, the reference for forward transfer)."""

    name = "single"


class MultitaskLearner(MLPLearner):
    """One multi-head MLP on every task's data so far (the upper bound; it keeps every buffer)."""

    name = "multitask"

    def _end(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        x, y = self._prepare(task, obs, act, next_obs, refit=False)
        self.memory.append((x.detach(), y.detach()))


class CoresetLearner(MLPLearner):
    """Fine-tuning plus replay of `coreset_size` random transitions kept from each earlier task."""

    name = "coreset"

    def _end(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        x, y = self._prepare(task, obs, act, next_obs, refit=False)
        size = int(self.s["coreset_size"])
        if size < 1:
            raise UserError(f"learner.coreset_size={size} must be >= 1")
        idx = torch.randperm(len(x), generator=self.batch_gen)[:size].to(self.device)
        self.memory.append((x[idx].detach(), y[idx].detach()))


class EWCLearner(MLPLearner):
    """Online EWC: lambda/2 * sum F (w - w*)^2 over the trunk, F the running diagonal empirical Fisher."""

    name = "ewc"

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
    ) -> None:
        super().__init__(obs_dim, act_dim, num_tasks, cfg, device, seed)
        self.fisher: list[torch.Tensor] | None = None
        self.anchor: list[torch.Tensor] | None = None

    def _penalty(self) -> torch.Tensor | None:
        if self.fisher is None or self.anchor is None:
            return None
        total = torch.zeros((), device=self.device)
        for f, p, a in zip(self.fisher, self._trunk(), self.anchor, strict=True):
            total = total + (f * (p - a) ** 2).sum()
        return 0.5 * float(self.s["ewc_lambda"]) * total

    def penalty(self) -> float:
        """The current EWC penalty (0 before the first task ends)."""
        p = self._penalty()
        return 0.0 if p is None else float(p.detach())

    def _end(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        x, y = self._prepare(task, obs, act, next_obs, refit=False)
        n_max = int(self.s["fisher_samples"])
        if 0 < n_max < len(x):
            idx = torch.randperm(len(x), generator=self.batch_gen)[:n_max].to(self.device)
            x, y = x[idx], y[idx]
        net, head = self._net(task)
        trunk = tuple(p.detach() for p in net.trunk)
        head_params = [p.detach() for p in net.params(head)[len(trunk) :]]
        bounds = net.head_bounds(head)
        b = None if bounds is None else (bounds[0].detach(), bounds[1].detach())

        def nll(trunk_params: tuple[torch.Tensor, ...], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            # The Gaussian NLL of one sample (unit variance for a deterministic head), as the
            # official estimate_fisher (empirical Fisher, batch size 1).
            out = mlp_forward(pair_params([*trunk_params, *head_params]), xi, self.m.activation)
            mu = out[..., : self.obs_dim]
            logvar = torch.zeros_like(mu) if b is None else _bound_logvar(out[..., self.obs_dim :], *b)
            return (0.5 * (mu - yi) ** 2 * torch.exp(-logvar) + 0.5 * logvar).sum()

        per_sample = torch.func.vmap(torch.func.grad(nll), in_dims=(None, 0, 0))
        fisher = [torch.zeros_like(p) for p in trunk]
        for start in range(0, len(x), 256):  # chunks bound the per-sample-gradient memory
            grads = per_sample(trunk, x[start : start + 256], y[start : start + 256])
            for f, g in zip(fisher, grads, strict=True):
                f += (g**2).sum(0)
        fisher = [f / len(x) for f in fisher]
        if self.fisher is not None:
            gamma = float(self.s["online_gamma"])
            fisher = [gamma * old + new for old, new in zip(self.fisher, fisher, strict=True)]
        self.fisher = fisher
        self.anchor = [p.clone() for p in trunk]

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "fisher": self.fisher, "anchor": self.anchor}

    def _load(self, state: dict[str, Any]) -> None:
        super()._load(state)
        self.fisher, self.anchor = state["fisher"], state["anchor"]


class SILearner(MLPLearner):
    """Synaptic intelligence: c * sum omega (w - w_prev)^2 over the trunk, omega the path integral of each weight."""

    name = "si"

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
    ) -> None:
        super().__init__(obs_dim, act_dim, num_tasks, cfg, device, seed)
        trunk = list(self._trunk())
        self.omega = [torch.zeros_like(p).detach() for p in trunk]
        self.prev = [p.detach().clone() for p in trunk]  # weights at the last task's end
        self.path = [torch.zeros_like(p).detach() for p in trunk]  # running -g * dw of this task

    def _begin(self, task: int) -> None:
        super()._begin(task)
        self.path = [torch.zeros_like(p) for p in self.path]

    def _penalty(self) -> torch.Tensor | None:
        if self.task == 0:
            return None
        total = torch.zeros((), device=self.device)
        for o, p, q in zip(self.omega, self._trunk(), self.prev, strict=True):
            total = total + (o * (p - q) ** 2).sum()
        return float(self.s["si_c"]) * total

    def penalty(self) -> float:
        """The current SI penalty (0 on the first task)."""
        p = self._penalty()
        return 0.0 if p is None else float(p.detach())

    def _after_step(self, task_grads: list[torch.Tensor], before: list[torch.Tensor]) -> None:
        # Zenke et al. 2017, Eq. 3: the task loss's gradient times the step actually taken.
        for w, g, p, b in zip(self.path, task_grads, self._trunk(), before, strict=True):
            w -= g * (p.detach() - b)

    def _end(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        eps = float(self.s["si_eps"])
        now = [p.detach().clone() for p in self._trunk()]
        for o, w, p, q in zip(self.omega, self.path, now, self.prev, strict=True):
            # Zenke et al. 2017, Eq. 5; clamped at zero because a negative importance would reward drift.
            o += (w / ((p - q) ** 2 + eps)).clamp_min(0.0)
        self.prev = now

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "omega": self.omega, "prev": self.prev, "path": self.path}

    def _load(self, state: dict[str, Any]) -> None:
        super()._load(state)
        self.omega, self.prev, self.path = state["omega"], state["prev"], state["path"]


def adam_lookahead(optimizer: torch.optim.Adam) -> list[torch.Tensor]:
    """The step Adam's next `step()` would add to each parameter, without changing its state.

    The look-ahead of HyperCRL's regulariser (official `calc_delta_theta`, use_sgd_change=False):
    gradients are detached, so delta_theta is a constant in the regulariser.
    """
    steps: list[torch.Tensor] = []
    for group in optimizer.param_groups:
        if group.get("amsgrad") or group.get("weight_decay"):
            raise UserError("adam_lookahead supports plain Adam (no amsgrad, no weight decay)")
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                steps.append(torch.zeros_like(p))
                continue
            g = p.grad.detach()
            state = optimizer.state.get(p, {})
            t = float(state["step"]) + 1 if "step" in state else 1.0
            # In place on two fresh buffers: the hypernetwork's output layer can hold tens of
            # millions of weights, and this runs every step, so passes over memory count.
            if "exp_avg" in state:
                m = state["exp_avg"].mul(beta1).add_(g, alpha=1 - beta1)
                v = state["exp_avg_sq"].mul(beta2).addcmul_(g, g, value=1 - beta2)
            else:
                m = g.mul(1 - beta1)
                v = g.mul(g).mul_(1 - beta2)
            v.div_(1 - beta2**t).sqrt_().add_(group["eps"])
            steps.append(m.div_(v).mul_(-group["lr"] / (1 - beta1**t)))
    return steps


class HyperCRLLearner(ContinualLearner):
    """HyperCRL: a task-conditioned hypernetwork generates the dynamics MLP (beta > 0: regularised)."""

    name = "hypercrl"

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
    ) -> None:
        super().__init__(obs_dim, act_dim, num_tasks, cfg, device, seed)
        s = self.s
        if float(s["beta"]) < 0:
            raise UserError(f"learner.beta={s['beta']} must be >= 0")
        shapes = mlp_shapes(obs_dim + act_dim, self.out_dim, self.m.hidden)
        chunk_size = chunk_emb = None
        if s["chunked"]:
            c_hidden, c_size, c_emb = default_chunking(self.m.hidden)
            hidden = tuple(s["hnet_hidden"] or c_hidden)
            chunk_size = int(s["chunk_size"] or c_size)
            chunk_emb = int(s["chunk_emb_size"] or c_emb)
        else:
            hidden = tuple(s["hnet_hidden"] or default_hnet_hidden(self.m.hidden))
        self.hnet = HyperNetwork(
            shapes,
            num_tasks,
            emb_size=int(s["emb_size"]),
            hidden=hidden,
            activation=str(s["hnet_activation"]),
            chunk_size=chunk_size,
            chunk_emb_size=chunk_emb,
            emb_std=float(s["emb_std"]),
            generator=self.init_gen,
        ).to(self.device)
        # Per-task log-variance bounds, trained with the task's embedding (task-specific, so unregularised).
        self.bounds = self._new_bounds() if self.m.gaussian else None
        self.targets = torch.zeros(0, self.hnet.num_outputs, device=self.device)
        self._make_optimizers(0)

    def _task_params(self, task: int) -> list[nn.Parameter]:
        params = [self.hnet.task_embs[task]]
        if self.bounds is not None:
            params += [self.bounds[2 * task], self.bounds[2 * task + 1]]
        return params

    def _task_bounds(self, task: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if self.bounds is None else (self.bounds[2 * task], self.bounds[2 * task + 1])

    def _make_optimizers(self, task: int) -> None:
        lr = float(self.s["lr"])
        # Fused Adam: one pass over each tensor (about 9x faster on CPU for the 34M-weight
        # hypernetwork of HalfCheetah's 4x200 target than the default implementation).
        self.theta_opt = torch.optim.Adam(self.hnet.theta, lr=lr, fused=True)
        self.emb_opt = torch.optim.Adam(self._task_params(task), lr=lr, fused=True)

    def _begin(self, task: int) -> None:
        # Targets: the generated weights of every earlier task at the start of this one.
        with torch.no_grad():
            self.targets = (
                self.hnet(self.hnet.embeddings(range(task))).detach()
                if task > 0
                else torch.zeros(0, self.hnet.num_outputs, device=self.device)
            )
        self._make_optimizers(task)

    def regularizer(self, delta_theta: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Mean over earlier tasks of ||target_j - h(e_j, theta + delta_theta)||^2 (0 on the first task)."""
        t = self.targets.shape[0]
        if t == 0:
            return torch.zeros((), device=self.device)
        # Earlier embeddings are frozen: detached, one batched hypernetwork call for all of them.
        out = self.hnet(self.hnet.embeddings(range(t)).detach(), delta=delta_theta)
        return ((self.targets - out) ** 2).sum(-1).mean()

    def _train(self, task: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        beta = float(self.s["beta"])
        max_norm = float(self.s["grad_max_norm"])
        calc_reg = task > 0 and beta > 0
        emb_params = self._task_params(task)
        losses: list[float] = []
        regs: list[float] = []
        for idx in self._batches(len(x)):
            self.theta_opt.zero_grad(set_to_none=True)
            self.emb_opt.zero_grad(set_to_none=True)
            params = self.hnet.split(self.hnet(self.hnet.task_embs[task]))
            out = mlp_forward(pair_params(params), x[idx], self.m.activation)
            loss = self._task_loss(out, y[idx], self._task_bounds(task))
            loss.backward()
            # The embedding learns from the task loss only (official hnet_exp.train).
            torch.nn.utils.clip_grad_norm_(emb_params, max_norm)
            self.emb_opt.step()
            if calc_reg:
                delta = adam_lookahead(self.theta_opt) if self.s["lookahead"] else None
                reg = self.regularizer(delta)
                # Scaled by the batch size because the task loss is summed over the batch.
                (reg * beta * len(idx)).backward()
                regs.append(float(reg.detach()))
            torch.nn.utils.clip_grad_norm_(self.hnet.theta, max_norm)
            self.theta_opt.step()
            losses.append(float(loss.detach()) / len(idx))
        info = {"loss": float(np.mean(losses[-50:])), "loss_first": losses[0], "n": float(len(x))}
        if regs:
            info["reg"] = float(np.mean(regs[-50:]))
        return info

    def model(self, task: int) -> TaskDynamics:
        """The MLP on the weights generated from task `task`'s embedding (computed once, cached in the model)."""
        self._check_task(task)
        with torch.no_grad():
            params = self.hnet.weights(task)
        return TaskDynamics(
            params,
            *self._norm(task),
            self.m.activation,
            self.obs_dim,
            self._task_bounds(task),
        )

    def _state(self) -> dict[str, Any]:
        return {
            "hnet": self.hnet.state_dict(),
            "bounds": None if self.bounds is None else self.bounds.state_dict(),
            "targets": self.targets.cpu(),
            "theta_opt": self.theta_opt.state_dict(),
            "emb_opt": self.emb_opt.state_dict(),
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.hnet.load_state_dict(state["hnet"])
        if self.bounds is not None:
            self.bounds.load_state_dict(state["bounds"])
        self.targets = state["targets"].to(self.device)
        self._make_optimizers(self.task)
        self.theta_opt.load_state_dict(state["theta_opt"])
        self.emb_opt.load_state_dict(state["emb_opt"])


class HyperCRLNoRegLearner(HyperCRLLearner):
    """HyperCRL without its continual regulariser (beta = 0): the hypernetwork drifts freely."""

    name = "hypercrl_noreg"

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
    ) -> None:
        if cfg.get("beta"):
            raise UserError(
                f"learner=hypercrl_noreg has beta=0 by definition (got learner.beta={cfg.get('beta')}); "
                "use learner=hypercrl for beta > 0"
            )
        super().__init__(obs_dim, act_dim, num_tasks, cfg, device, seed)


_CLASSES: dict[str, type[ContinualLearner]] = {
    "hypercrl": HyperCRLLearner,
    "hypercrl_noreg": HyperCRLNoRegLearner,
    "finetune": FinetuneLearner,
    "single": SingleLearner,
    "multitask": MultitaskLearner,
    "coreset": CoresetLearner,
    "ewc": EWCLearner,
    "si": SILearner,
}


def make_learner(
    name: str, obs_dim: int, act_dim: int, num_tasks: int, cfg: Mapping[str, Any], device: str, seed: int
) -> ContinualLearner:
    """Build the learner called `name` (hypercrl, hypercrl_noreg, finetune, single, multitask, coreset, ewc, si)."""
    if name not in _CLASSES:
        raise UserError(
            f"learner={name!r} is unknown{close_matches(name, _CLASSES)}; use one of {', '.join(_CLASSES)}"
        )
    return _CLASSES[name](obs_dim, act_dim, num_tasks, cfg, device, seed)
