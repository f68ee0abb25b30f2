"""Physics parameters a training task can simulate: ASAP's oracle and SysID baselines, and replay errors.

ASAP's baselines fine-tune the pretrained policy in a simulator that knows more about the target:
- the oracle trains on the target's true physics (`oracle_physics`: the mismatch's model edits into an
  edited MJCF, its motor gains, torque limits and delay into the task's randomization fields: fixed
  values, or the recipe's ranges centred on them);
- SysID fits a small family of global physical parameters (`PhysicsParams`: applied Kp and Kd scales,
  torque-limit scale, added base mass, ground friction, joint friction, command delay) to recordings
  of the target by replaying the recorded actions from the recorded states (`replay_errors`) and
  minimising the error (`fit_sysid`, Nelder-Mead per delay), and trains on the fit.
Both become a training run's overrides with `training_overrides`: the recipe's own domain
randomisation is kept and centred on the new physics (its friction range scaled by the friction, its
mass range shifted by the added mass, ...), so a baseline differs from the recipe only in what it
knows about the target.

The same replay (`replay_errors`) scores a simulator's alignment open loop: the nominal one, the
nominal one with ASAP's delta model, a SysID fit, or the true target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import UserError


@dataclass(frozen=True)
class PhysicsParams:
    """Global physical parameters relative to the nominal robot (1 / 0 = nominal).

    kp_scale, kd_scale: the gains the motors apply, as a share of the commanded ones;
    torque_scale: the motors' torque limit, as a share of the spec's;
    added_mass: kg on the base; friction: scale of every geom's sliding friction;
    joint_friction: scale of every joint's frictionloss; delay: control periods between a command
    and the motors.
    """

    kp_scale: float = 1.0
    kd_scale: float = 1.0
    torque_scale: float = 1.0
    added_mass: float = 0.0
    friction: float = 1.0
    joint_friction: float = 1.0
    delay: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def randomization(self, recipe: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The training task's randomization with this physics at the centre of the recipe's ranges.

        The task applies kp = spec kp x kp_scale x motor_strength (kd likewise) and a torque limit of
        spec limit x motor_strength, so motor_strength carries torque_scale and the gain scales are
        divided by it."""
        base = dict(recipe or {})
        out = dict(base)

        def scaled(key: str, value: float) -> None:
            lo, hi = base.get(key) or (1.0, 1.0)
            if value != 1.0 or key in base:
                out[key] = [float(lo) * value, float(hi) * value]

        scaled("motor_strength", self.torque_scale)
        scaled("kp_scale", self.kp_scale / self.torque_scale)
        scaled("kd_scale", self.kd_scale / self.torque_scale)
        scaled("friction", self.friction)
        scaled("joint_friction", self.joint_friction)
        if self.added_mass != 0.0 or "added_base_mass" in base:
            lo, hi = base.get("added_base_mass") or (0.0, 0.0)
            out["added_base_mass"] = [float(lo) + self.added_mass, float(hi) + self.added_mass]
        if self.delay != 0 or "action_delay" in base:
            lo, hi = base.get("action_delay") or (0, 0)
            out["action_delay"] = [int(lo) + self.delay, int(hi) + self.delay]
        return out


@dataclass(frozen=True)
class TrainingPhysics:
    """What a training run needs to simulate some physics: an MJCF (None: the robot's own) and the
    parameters its task's randomization carries."""

    params: PhysicsParams
    model_path: Path | None = None

    def overrides(self, recipe: Mapping[str, Any] | None) -> list[str]:
        """robolearn.train overrides: env.kwargs.randomization (the recipe's, centred) and model_path."""
        from robolearn.config.validate import hydra_value

        out = [f"++env.kwargs.randomization={hydra_value(self.params.randomization(recipe))}"]
        if self.model_path is not None:
            out.append(f"++env.kwargs.model_path={self.model_path}")
        return out


def oracle_physics(
    robot: str, edits: Sequence[Any], out_dir: Path, model: str | None = None
) -> TrainingPhysics:
    """The target's true physics for a training task: its model edits in an edited copy of the MJCF
    (written under out_dir) and its motor side as fixed randomization values. A motor-side mismatch
    that differs between joints has no such form and is refused with the joint named."""
    from robolearn.deploy.mismatch import target_physics
    from robolearn.envs.edits import write_edited_model
    from robolearn.robots.model import default_model_path
    from robolearn.robots.registry import get_robot_spec

    spec = get_robot_spec(robot)
    target = target_physics(spec, edits, model, name="oracle")
    values: dict[str, float] = {}
    for name, array in (
        ("kp_scale", target.kp_scale),
        ("kd_scale", target.kd_scale),
        ("torque_scale", target.torque_limit / spec.torque_limit_array),
    ):
        if not np.allclose(array, array[0]):
            idx = int(np.argmax(np.abs(array - array[0])))
            hint = (
                "give joint_torque_limit as a scale (a value in N m differs from the spec's per-joint limits)"
                if name == "torque_scale"
                else "state the mismatch's motor edits with joint: '*'"
            )
            raise UserError(
                f"the oracle needs one {name} for every joint, but {spec.joint_names[idx]} has"
                f" {float(array[idx]):.3g} and {spec.joint_names[0]} {float(array[0]):.3g}; {hint}"
            )
        values[name] = float(array[0])
    delay = target.delay_s / spec.control_dt
    if abs(delay - round(delay)) > 1e-6:
        raise UserError(
            f"the oracle simulates whole control periods of delay; {target.delay_s} s is not a multiple of"
            f" the {robot}'s {spec.control_dt} s"
        )
    path = None
    if target.model_edits:
        source = Path(model) if model else default_model_path(spec)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = write_edited_model(source, target.model_edits, out_dir)
    return TrainingPhysics(PhysicsParams(**values, delay=round(delay)), path)


# -- open-loop replay ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayError:
    """Mean over recorded starts and horizon steps of the RMS joint position error (rad) and the base
    position error (m) of a simulator replaying the target's recorded actions."""

    joint_pos_rms: float
    base_pos: float
    starts: int

    def score(self, reference: ReplayError) -> float:
        """The SysID objective: both errors as a share of the nominal simulator's."""
        return self.joint_pos_rms / reference.joint_pos_rms + self.base_pos / reference.base_pos


def replay_starts(dataset: Path | str, horizon: int, limit: int | None = None, seed: int = 0) -> np.ndarray:
    """(stretch, step) rows of every recorded start with `horizon` steps after it; at most `limit`,
    drawn evenly with `seed`."""
    from robolearn.sim2real.delta_task import DeltaActionTask

    probe = DeltaActionTask(str(dataset), horizon=horizon, tolerances_from_recording=False)
    starts = probe.starts.copy()
    probe.close()
    if limit is not None and len(starts) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(starts), size=limit, replace=False))
        starts = starts[pick]
    return starts


def replay_errors(
    dataset: Path | str,
    starts: np.ndarray,
    *,
    horizon: int,
    physics: TrainingPhysics | None = None,
    delta_run: Path | None = None,
    checkpoint: str = "final",
    delta_scale: float = 0.5,
    delta_joints: list[str] | None = None,
    residual: Path | None = None,
    robot: str = "go2",
    delta_rule: Callable[[Any, np.ndarray], np.ndarray] | None = None,
    previous_action: bool = True,
) -> ReplayError:
    """Replay each start's recorded actions for `horizon` steps in the given physics (None: nominal),
    plus the delta model of `delta_run` (ASAP's aligned simulator; its `checkpoint`, final or best,
    applied with the scale, joints and inputs it was trained with) or the residual-dynamics model
    `residual` (the delta-dynamics baseline's) when given. `delta_rule(task, obs)` gives the (starts,
    joints) delta of each step in place of a delta run (a benchmark's analytic delta), applied with
    delta_scale and delta_joints; the task is the replaying DeltaActionTask, obs its delta observation
    (with the previous recorded action when previous_action)."""
    if delta_rule is not None and delta_run is not None:
        raise UserError("replay_errors takes delta_run or delta_rule, not both")
    if delta_run is not None:
        from robolearn.sim2real.delta_model import delta_settings

        delta_scale, delta_joints, previous_action = delta_settings(Path(delta_run))
    from robolearn.envs.vector import BatchedVecEnv
    from robolearn.sim2real.delta_task import DeltaActionTask

    n = len(starts)
    params = physics.params if physics is not None else PhysicsParams()
    task = DeltaActionTask(
        str(dataset),
        robot=robot,
        num_envs=n,
        backend="batch",
        horizon=horizon,
        delta_scale=delta_scale,
        delta_joints=delta_joints,
        previous_action=previous_action,
        tolerances_from_recording=False,  # no reward is read
        # No replay ends early: a candidate far from the target drifts, and that is its error.
        max_base_error=float("inf"),
        model_path=None if physics is None or physics.model_path is None else str(physics.model_path),
        randomization=params.randomization() or None,
        residual_dynamics=None if residual is None else {"model": str(residual)},
    )
    if delta_run is not None:
        from robolearn.agents.rsl_ppo import RslPolicy
        from robolearn.sim2real.delta_model import delta_actions

        policy = RslPolicy.load(Path(delta_run) / checkpoint / "model.zip")

        def delta_rule(_task: Any, obs: np.ndarray) -> np.ndarray:
            return delta_actions(policy, obs)

    venv = BatchedVecEnv(task)
    try:
        venv.seed(0)
        venv.reset()
        task.reset_to(np.arange(n), starts)
        obs = task.observe(task.backend.frame())
        joint, base = [], []
        for _ in range(horizon):
            if delta_rule is None:
                delta = np.zeros((n, task.robot_spec.num_joints))
            else:
                delta = np.clip(delta_rule(task, obs), -1.0, 1.0)
            venv.step(delta.astype(np.float32))
            obs = task.observe(task.backend.frame())  # no env ends before `horizon` (no drift limit)
            joint.append(task.last_metrics["joint_pos_error"].mean())
            base.append(task.last_metrics["base_pos_error"].mean())
    finally:
        venv.close()
    return ReplayError(float(np.mean(joint)), float(np.mean(base)), n)


# -- SysID -----------------------------------------------------------------------------------------
# The fitted family and its bounds: wide enough for the shipped mismatches and the recipe's ranges.
SYSID_BOUNDS: dict[str, tuple[float, float]] = {
    "kp_scale": (0.3, 1.5),
    "kd_scale": (0.3, 2.0),
    "torque_scale": (0.4, 1.2),
    "added_mass": (-2.0, 5.0),
    "friction": (0.2, 2.0),
    "joint_friction": (0.0, 4.0),
}
SYSID_DELAYS = (0, 1, 2)


def fit_sysid(
    dataset: Path | str,
    *,
    horizon: int = 4,
    starts: int = 384,
    max_evals: int = 80,
    delays: Sequence[int] = SYSID_DELAYS,
    seed: int = 0,
    robot: str = "go2",
    log: Any = print,
) -> tuple[PhysicsParams, dict[str, Any]]:
    """Fit PhysicsParams to a delta dataset: for each delay, Nelder-Mead from the nominal robot over
    the continuous parameters (clipped to SYSID_BOUNDS), minimising the replay error as a share of
    the nominal simulator's (ReplayError.score). Returns the best and a report of the search."""
    from scipy.optimize import minimize

    rows = replay_starts(dataset, horizon, starts, seed)
    names = list(SYSID_BOUNDS)
    nominal = replay_errors(dataset, rows, horizon=horizon, robot=robot)
    lo = np.array([SYSID_BOUNDS[k][0] for k in names])
    hi = np.array([SYSID_BOUNDS[k][1] for k in names])
    start = np.array([getattr(PhysicsParams(), k) for k in names], dtype=np.float64)
    span = hi - lo
    trials: list[dict[str, Any]] = []

    def params_of(z: np.ndarray, delay: int) -> PhysicsParams:
        x = np.clip(start + z * span, lo, hi)
        return PhysicsParams(**{k: float(v) for k, v in zip(names, x, strict=True)}, delay=int(delay))

    best: tuple[float, PhysicsParams, ReplayError] | None = None
    for delay in delays:

        def objective(z: np.ndarray, delay: int = delay) -> float:
            p = params_of(z, delay)
            err = replay_errors(dataset, rows, horizon=horizon, physics=TrainingPhysics(p), robot=robot)
            score = err.score(nominal)
            # Leaving the box costs: Nelder-Mead sees a slope back in rather than a flat clip.
            outside = float(
                np.sum(np.maximum(0.0, np.abs(start + z * span - np.clip(start + z * span, lo, hi)) / span))
            )
            trials.append(
                {**p.as_dict(), "score": score, "joint_pos_rms": err.joint_pos_rms, "base_pos": err.base_pos}
            )
            return score + outside

        z0 = np.zeros(len(names))
        simplex = np.vstack([z0, *(np.eye(len(names)) * 0.15)])
        result = minimize(
            objective,
            z0,
            method="Nelder-Mead",
            options={"maxfev": int(max_evals), "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4},
        )
        p = params_of(result.x, delay)
        err = replay_errors(dataset, rows, horizon=horizon, physics=TrainingPhysics(p), robot=robot)
        log(
            f"sysid: delay {delay}: score {err.score(nominal):.3f} (nominal 2.000) after {result.nfev}"
            f" replays: {', '.join(f'{k}={getattr(p, k):.3g}' for k in names)}"
        )
        if best is None or err.score(nominal) < best[0]:
            best = (err.score(nominal), p, err)
    assert best is not None
    report = {
        "params": best[1].as_dict(),
        "score": best[0],
        "replay": {"joint_pos_rms": best[2].joint_pos_rms, "base_pos": best[2].base_pos},
        "nominal_replay": {"joint_pos_rms": nominal.joint_pos_rms, "base_pos": nominal.base_pos},
        "starts": len(rows),
        "horizon": int(horizon),
        "evaluations": len(trials),
        "bounds": {k: list(v) for k, v in SYSID_BOUNDS.items()},
        "trials": trials,
    }
    return best[1], report


def params_from_dict(values: Mapping[str, Any]) -> PhysicsParams:
    """PhysicsParams from a report's dict (unknown keys refused)."""
    known = {f.name for f in fields(PhysicsParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"physics parameters {unknown} are not PhysicsParams fields: {sorted(known)}")
    out = {k: (int(v) if k == "delay" else float(v)) for k, v in values.items()}
    if any(not math.isfinite(float(v)) for v in out.values()):
        raise UserError(f"physics parameters {dict(values)} must be finite")
    return PhysicsParams(**out)  # type: ignore[arg-type]
