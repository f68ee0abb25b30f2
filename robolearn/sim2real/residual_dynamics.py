"""Delta dynamics, ASAP's residual-dynamics baseline: a learned correction of the simulator's next state.

Where ASAP learns a correction of the *action* with RL (robolearn.sim2real.delta_task), this baseline
learns one of the *state* by regression: from every recorded step of the target, the nominal
simulator is put in the recorded state and steps once with the recorded action; the difference
between the target's recorded next velocities and the simulator's (base linear velocity, world frame;
base angular velocity, body frame; joint velocities) is the residual, and an MLP learns it from the
state and the action (`residual_features`: the delta model's input, delta_observation, with the
previous action in its last_action slot, so a command delay is learnable).

Fine-tuning with it (`env.kwargs.residual_dynamics: {model: <model.pt>}` on a robot task): after each
control step the frozen model's residual is added to the simulator's velocities (positions follow
at the next step's integration), so the policy trains in the corrected simulator and deploys
without the model. Velocities only: a residual on positions would teleport bodies through contacts.

The model file is `robolearn-residual-dynamics` v1 (torch.save of a dict: schema, robot, sizes,
normalisers, the MLP's state_dict, the fit report).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.envs.backends.base import SimFrame
from robolearn.errors import UserError
from robolearn.robots.spec import RobotSpec
from robolearn.sim2real.delta_task import delta_observation

SCHEMA = "robolearn-residual-dynamics"
VERSION = 1
HIDDEN = (256, 256)


def residual_features(
    spec: RobotSpec, frame: SimFrame, rows: np.ndarray, previous: np.ndarray, action: np.ndarray
) -> np.ndarray:
    """(k, features) float32: the state of envs `rows`, the previous robot action and this one."""
    return delta_observation(spec, frame, rows, previous, action)


def split_residual(residual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base linear velocity (3), base angular velocity (3), joint velocities) of (k, 6 + nj) rows."""
    return residual[:, :3], residual[:, 3:6], residual[:, 6:]


def _mlp(n_in: int, n_out: int) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    width = n_in
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ELU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def residual_samples(dataset: Path | str, robot: str = "go2") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, residuals, stretch index) of every recorded step with a recorded next state."""
    from robolearn.envs.vector import BatchedVecEnv
    from robolearn.sim2real.delta_task import DeltaActionTask

    # Horizon 2, of which one step is taken: an episode of one step would end at that step and the
    # vector env would reset it before the next state could be read.
    probe = DeltaActionTask(str(dataset), robot=robot, horizon=2, tolerances_from_recording=False)
    starts = probe.starts.copy()
    probe.close()
    n = len(starts)
    task = DeltaActionTask(
        str(dataset), robot=robot, num_envs=n, backend="batch", horizon=2, tolerances_from_recording=False
    )
    venv = BatchedVecEnv(task)
    try:
        venv.seed(0)
        venv.reset()
        ids = np.arange(n)
        task.reset_to(ids, starts)
        spec = task.robot_spec
        before = task.backend.frame()
        x = residual_features(spec, before, ids, task.action_before_start(ids), task.recorded_action.copy())
        venv.step(np.zeros((n, spec.num_joints), dtype=np.float32))
        after = task.backend.frame()
        _qpos, qvel = task._recorded(ids, np.ones(n, dtype=np.int64))
        v = task._root_v
        recorded = np.concatenate(
            [qvel[:, v : v + 3], qvel[:, v + 3 : v + 6], qvel[:, task._joint_v]], axis=1
        )
        simulated = np.concatenate([after.root_lin_vel, after.root_ang_vel, after.joint_vel], axis=1)
    finally:
        venv.close()
    return x, recorded - simulated, starts[:, 0]


@dataclass
class ResidualFit:
    path: Path
    report: dict[str, Any]


def fit_residual(
    dataset: Path | str,
    out: Path,
    *,
    robot: str = "go2",
    epochs: int = 300,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    holdout: float = 0.2,
) -> ResidualFit:
    """Fit the residual MLP (MSE on normalised residuals, Adam) on the first 1 - holdout of the
    recorded steps, keep the epoch with the lowest held-out error (the last with holdout=0), and save
    the model to `out`. The report gives the share of each part's variance explained on the steps fitted
    and on the held-out ones."""
    import torch

    torch.manual_seed(seed)
    x, y, _ = residual_samples(dataset, robot)
    n = len(x)
    if not 0.0 <= holdout < 1.0:
        raise UserError(f"holdout={holdout} must be a share in [0, 1), e.g. 0.2")
    cut = max(1, round(n * (1.0 - holdout)))
    if holdout > 0 and n - cut < 8:
        raise UserError(
            f"{dataset}: {n} recorded steps are too few to hold out {holdout:.0%} for validation; record longer"
        )
    x_mean, x_std = x[:cut].mean(0), x[:cut].std(0) + 1e-6
    y_mean, y_std = y[:cut].mean(0), y[:cut].std(0) + 1e-6
    xt = torch.as_tensor((x - x_mean) / x_std, dtype=torch.float32)
    yt = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32)
    net = _mlp(x.shape[1], y.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, dict[str, Any] | None, int] = (float("inf"), None, -1)
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(cut, generator=gen).split(batch):
            loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            # No held-out steps (holdout=0): the last epoch is kept.
            val = float(torch.nn.functional.mse_loss(net(xt[cut:]), yt[cut:])) if cut < n else -float(epoch)
        if val < best[0]:
            best = (val, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
    assert best[1] is not None
    net.load_state_dict(best[1])
    with torch.no_grad():
        pred = net(xt).numpy() * y_std + y_mean
    report = {
        "samples": int(n),
        "train": int(cut),
        "held_out": int(n - cut),
        "best_epoch": int(best[2]),
        "epochs": int(epochs),
        "held_out_mse_normalised": best[0] if cut < n else None,
        "variance_explained_train": _explained(y[:cut], pred[:cut]),
        "variance_explained_held_out": _explained(y[cut:], pred[cut:]) if cut < n else None,
        "residual_rms": {
            "base_lin_vel": float(np.sqrt(np.square(y[:, :3]).mean())),
            "base_ang_vel": float(np.sqrt(np.square(y[:, 3:6]).mean())),
            "joint_vel": float(np.sqrt(np.square(y[:, 6:]).mean())),
        },
    }
    import io

    from robolearn.utils.io import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(
        {
            "schema": SCHEMA,
            "version": VERSION,
            "robot": robot,
            "n_in": int(x.shape[1]),
            "n_out": int(y.shape[1]),
            "hidden": list(HIDDEN),
            "x_mean": x_mean,
            "x_std": x_std,
            "y_mean": y_mean,
            "y_std": y_std,
            "state_dict": net.state_dict(),
            "report": report,
        },
        buffer,
    )
    out = Path(out)
    atomic_write_bytes(out, buffer.getvalue())
    return ResidualFit(out, report)


def _explained(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Share of each part's variance the prediction explains (1 - SSE / SST; below 0: worse than the mean)."""
    out = {}
    for name, cols in (
        ("base_lin_vel", slice(0, 3)),
        ("base_ang_vel", slice(3, 6)),
        ("joint_vel", slice(6, None)),
    ):
        total = float(np.square(y[:, cols] - y[:, cols].mean(0)).sum())
        left = float(np.square(y[:, cols] - pred[:, cols]).sum())
        out[name] = 1.0 - left / total if total > 0 else 0.0
    return out


class FrozenResidual:
    """A fitted residual model, evaluated on the simulator's state before each control step."""

    def __init__(self, path: Path, blob: Mapping[str, Any]) -> None:
        import torch

        self.path = path
        self.net = _mlp(int(blob["n_in"]), int(blob["n_out"]))
        self.net.load_state_dict(blob["state_dict"])
        self.net.eval()
        self.x_mean, self.x_std = np.asarray(blob["x_mean"]), np.asarray(blob["x_std"])
        self.y_mean, self.y_std = np.asarray(blob["y_mean"]), np.asarray(blob["y_std"])
        self._torch = torch

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any], spec: RobotSpec) -> FrozenResidual:
        """Load {model: <model.pt>} for a task on `spec`; one-line errors for a wrong file or robot."""
        unknown = sorted(set(options) - {"model"})
        if unknown:
            raise UserError(f"residual_dynamics.{unknown[0]} is not an option; options: model")
        if not options.get("model"):
            raise UserError(
                "residual_dynamics.model is missing: give a fitted model.pt (robolearn.asap stage=train_dynamics)"
            )
        path = Path(str(options["model"])).expanduser()
        if not path.is_file():
            raise UserError(f"residual_dynamics.model={path} does not exist")
        import torch

        try:
            blob = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise UserError(
                f"residual_dynamics.model={path} is not a residual model ({type(err).__name__})"
            ) from None
        if not isinstance(blob, dict) or blob.get("schema") != SCHEMA:
            raise UserError(f"residual_dynamics.model={path} is not a {SCHEMA} file")
        if int(blob.get("version", 0)) != VERSION:
            raise UserError(
                f"residual_dynamics.model={path} is {SCHEMA} v{blob.get('version')}; this robolearn reads v{VERSION}"
            )
        if blob.get("robot") != spec.name:
            raise UserError(
                f"residual_dynamics.model={path} was fitted on the {blob.get('robot')}, not the {spec.name}"
            )
        if int(blob["n_out"]) != 6 + spec.num_joints:
            raise UserError(
                f"residual_dynamics.model={path} predicts {blob['n_out']} values, not {6 + spec.num_joints}"
            )
        return cls(path, blob)

    def __call__(
        self, spec: RobotSpec, frame: SimFrame, previous: np.ndarray, action: np.ndarray
    ) -> np.ndarray:
        """(N, 6 + nj) velocity residuals for every env of the frame."""
        rows = np.arange(len(action))
        x = (residual_features(spec, frame, rows, previous, action) - self.x_mean) / self.x_std
        with self._torch.no_grad():
            y = self.net(self._torch.as_tensor(x, dtype=self._torch.float32)).numpy()
        return np.asarray(y * self.y_std + self.y_mean, dtype=np.float64)
