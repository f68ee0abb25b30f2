"""Does train_delta learn the delta a mismatch needs? ASAP's delta-action task on a known mismatch.

    python benchmarks/asap_delta.py [--mismatch kp065] [--seconds 20] [--steps 2000000] [--seed 0] [--delta-scale 0.5]
                                    [--data <delta dataset>] [--run <train_delta run>]
                                    [--policy policies/reference/go2_stand] [--out outputs/benchmarks/asap_delta]
                                    [--results benchmarks/results/asap_delta] [-- train overrides]

1. Record: `python -m robolearn.deploy backend=mujoco mismatch=<m>` runs the policy artifact (the
   shipped standing policy by default) on the Go2 target for --seconds with pushes every 0.5-1.5 s
   (up to 0.3 m/s), recording the deploy log and the target's truth; joined into the delta dataset
   (robolearn.sim2real.recordings).
2. Train: `python -m robolearn.train env=Go2DeltaAction-v0 agent=rsl_ppo` on it for --steps, with the
   ASAP pipeline's train_delta recipe (robolearn.asap.train_delta_overrides: 1024 envs, a fixed
   learning rate of 1e-3); overrides after -- change it (e.g. -- agent.n_envs=256).
3. Evaluate on every recorded start (horizon 4, deterministic): the replay's RMS joint position error
   and base position error in the nominal simulator with no delta, with the trained delta and, for
   mismatches of the motor gains only (kp065, gains_strength: where it is known), with the analytic
   delta (k_p - 1) (a - (q - q0) / s) + (1 - k_d) (kd / kp) qd / s, the action change that makes the
   nominal PD law give the target's torque (torque limits aside; -0.35 (a - (q - q0) / s) for kp065),
   or for a one-period delay (delay1) the action recorded the step before minus the action; for
   every mismatch with that previous_action delta (how much of it a one-period delay explains);
   and the trained delta's mean absolute distance to the analytic one against the zero delta's.
--data replays an existing delta dataset (e.g. an ASAP pipeline's collect/delta/data) instead of
recording; --run evaluates an existing train_delta run instead of training.
The figures go to <out>/summary.json and a table on stdout; --results copies the small files.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from locomotion_runs import machine_now

REPO = Path(__file__).resolve().parents[1]
HORIZON = 4


def record(out: Path, mismatch: str, seconds: float, policy: Path, seed: int) -> Path:
    log = out / "log"
    if not (log / "meta.json").is_file():
        cmd = [
            sys.executable,
            "-m",
            "robolearn.deploy",
            "robot=go2",
            f"policy={policy}",
            "backend=mujoco",
            f"mismatch={mismatch}",
            "settings.sim_pose=default",
            "autopolicy_s=0.5",
            f"duration_s={seconds}",
            "mujoco.push_interval_s=[0.5,1.5]",
            "mujoco.push_velocity=0.3",
            f"mujoco.seed={seed}",
            f"record.dir={log}",
            "keyboard=false",
            "status_every_s=0",
        ]
        subprocess.run(cmd, check=True, cwd=REPO)
    from robolearn.sim2real.recordings import write_delta_dataset

    return write_delta_dataset(log, log / "truth", out / "delta", overwrite=True)


def train(out: Path, data: Path, steps: int, seed: int, scale: float, extra: list[str]) -> Path:
    """The delta run in out/delta_run: trained once, reused only for the same training overrides."""
    from robolearn.asap import TrainDeltaSettings, ran_with, train_delta_overrides

    run = out / "delta_run"
    # The ASAP pipeline's train_delta recipe (its defaults: n_envs, learning rate), these steps and scale.
    settings = TrainDeltaSettings(steps=steps, horizon=HORIZON, delta_scale=scale)
    overrides = [
        *train_delta_overrides(settings, "go2", data, seed, run),
        "torch_threads=2",
        "eval.episodes=20",
        *extra,  # last: the user's overrides win
    ]
    if (run / "final").is_dir():
        if not ran_with(run, overrides):
            sys.exit(
                f"{run} was trained with other settings; give another --name (or delete it) to train these"
            )
        return run
    subprocess.run([sys.executable, "-m", "robolearn.train", *overrides], check=True, cwd=REPO)
    return run


def _edits(mismatch: str) -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load((REPO / "configs" / "mismatch" / f"{mismatch}.yaml").read_text())["edits"] or []


def analytic_gains(mismatch: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(kp scale, kd scale) per joint of a mismatch whose edits are motor gains (and torque limits,
    which the analytic delta ignores); None for any other."""
    from robolearn.deploy.mismatch import target_physics
    from robolearn.robots.registry import get_robot_spec

    edits = _edits(mismatch)
    if not edits or any(e["kind"] not in ("motor_kp", "motor_kd", "joint_torque_limit") for e in edits):
        return None
    target = target_physics(get_robot_spec("go2"), edits, name=mismatch)
    return target.kp_scale, target.kd_scale


def previous_action_delta(task: Any, scale: float) -> np.ndarray:
    """A one-period command delay's delta on the replaying DeltaActionTask: the action recorded the
    step before minus the action, in delta units, clipped to the delta's range."""
    return np.asarray(np.clip((task.previous_recorded - task.recorded_action) / scale, -1.0, 1.0))


def analytic_rule(mismatch: str, scale: float) -> Callable[[Any], np.ndarray] | None:
    """The delta that makes the nominal simulator replay a mismatch's recording, as a function of the
    replaying DeltaActionTask, where it is known: motor gains (the PD law's torque) or a one-period
    command delay (the action recorded the step before); None for any other mismatch."""
    gains = analytic_gains(mismatch)
    if gains is not None:
        kp_s, kd_s = gains

        def pd(task: Any) -> np.ndarray:
            spec, frame = task.robot_spec, task.backend.frame()
            s = spec.action_scale_array
            change = (kp_s - 1.0) * (task.recorded_action - (frame.joint_pos - spec.default_pos_array) / s)
            change += (1.0 - kd_s) * spec.kd_array * frame.joint_vel / (spec.kp_array * s)
            return np.asarray(np.clip(change / scale, -1.0, 1.0))

        return pd
    if _edits(mismatch) == [{"kind": "action_delay", "steps": 1}]:
        return lambda task: previous_action_delta(task, scale)
    return None


def evaluate(
    data: Path, run: Path | None, mismatch: str, scale: float, checkpoint: str = "best"
) -> dict[str, Any]:
    """Replay every recorded start for HORIZON steps with each delta; errors and delta distances."""
    from robolearn.agents.rsl_ppo import RslPolicy
    from robolearn.sim2real.delta_model import delta_actions, delta_settings
    from robolearn.sim2real.delta_task import DeltaActionTask
    from robolearn.sim2real.physics import replay_errors

    probe = DeltaActionTask(str(data), horizon=HORIZON, delta_scale=scale, tolerances_from_recording=False)
    starts = probe.starts.copy()
    probe.close()
    policy = None if run is None else RslPolicy.load(run / checkpoint / "model.zip")
    # The trained delta reads the inputs it was trained with (a run from before previous_action did not).
    previous = True if run is None else delta_settings(run).previous_action
    known = analytic_rule(mismatch, scale)

    def analytic(task: Any) -> np.ndarray:
        """The analytic delta of this step (zero where the mismatch's is not known)."""
        return np.zeros_like(task.recorded_action) if known is None else known(task)

    dist_trained: list[float] = []
    dist_zero: list[float] = []

    def trained(task: Any, obs: np.ndarray) -> np.ndarray:
        assert policy is not None
        delta = delta_actions(policy, obs)
        target = analytic(task)
        dist_trained.append(float(np.abs(delta - target).mean()))
        dist_zero.append(float(np.abs(target).mean()))
        return delta

    rules = {
        "zero": lambda task, obs: np.zeros_like(task.recorded_action),
        "trained": None if policy is None else trained,
        "analytic": None if known is None else (lambda task, obs: analytic(task)),
        # A one-period delay's delta, whatever the mismatch: how much of it a delay explains.
        "previous_action": lambda task, obs: previous_action_delta(task, scale),
    }
    rows: dict[str, Any] = {"starts": len(starts)}
    for name, rule in rules.items():
        if rule is None:
            continue
        err = replay_errors(
            data, starts, horizon=HORIZON, delta_scale=scale, delta_rule=rule, previous_action=previous
        )
        rows[name] = {"joint_pos_rms_rad": err.joint_pos_rms, "base_pos_m": err.base_pos}
    if dist_trained and known is not None:  # no distance to a delta that is not known
        rows["trained"]["mean_abs_distance_to_analytic"] = float(np.mean(dist_trained))
        rows["zero"]["mean_abs_distance_to_analytic"] = float(np.mean(dist_zero))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mismatch", default="kp065")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=None, help="train_delta steps (the pipeline's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--delta-scale", type=float, default=0.5, help="the delta's scale, trained and replayed"
    )
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "reference" / "go2_stand")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "asap_delta")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None, help="an existing delta dataset: no recording")
    parser.add_argument("--run", type=Path, default=None, help="an existing train_delta run: no training")
    parser.add_argument("--name", default=None, help="folder name under --out / --results")
    parser.add_argument(
        "--checkpoint",
        choices=("best", "final"),
        default="best",
        help="the delta model replayed (the pipeline's: best)",
    )
    parser.add_argument("extra", nargs="*", help="train overrides after --, e.g. -- agent.schedule=fixed")
    args = parser.parse_args()
    if args.steps is None:
        from robolearn.asap import TrainDeltaSettings

        args.steps = TrainDeltaSettings().steps
    out = args.out / (args.name or f"{args.mismatch}_seed{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = (
        args.data.resolve() if args.data else record(out, args.mismatch, args.seconds, args.policy, args.seed)
    )
    t1 = time.time()
    if args.run is not None:
        run: Path | None = args.run.resolve()
    else:
        run = (
            train(out, data, args.steps, args.seed, args.delta_scale, args.extra) if args.steps > 0 else None
        )
    t2 = time.time()
    if run is not None and (run / "config.yaml").is_file():  # a run replays with the scale it learnt
        from robolearn.sim2real.delta_model import delta_settings

        args.delta_scale = delta_settings(run).scale
    rows = evaluate(data, run, args.mismatch, args.delta_scale, args.checkpoint)
    summary = {
        "mismatch": args.mismatch,
        "seconds": args.seconds,
        "steps": args.steps,
        "seed": args.seed,
        "policy": None if args.data else str(args.policy),  # --data: the recording says whose it is
        "data": str(data),
        "horizon": HORIZON,
        "delta_scale": args.delta_scale,
        "checkpoint": args.checkpoint,
        "train_overrides": args.extra,
        "record_s": round(t1 - t0, 1),
        "train_s": round(t2 - t1, 1),
        "machine": {**machine_now(), "python": platform.python_version()},
        "results": rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"ASAP delta on mismatch {args.mismatch}, seed {args.seed}: {rows['starts']} recorded starts, horizon {HORIZON}"
    )
    print("| delta | joint position RMS (rad) | base position (m) | distance to analytic |")
    print("|---|---|---|---|")
    for name in ("zero", "trained", "analytic", "previous_action"):
        if name in rows:
            r = rows[name]
            dist = r.get("mean_abs_distance_to_analytic")
            print(
                f"| {name} | {r['joint_pos_rms_rad']:.4f} | {r['base_pos_m']:.4f} | {'' if dist is None else f'{dist:.3f}'} |"
            )
    if args.results is not None:
        dest = args.results / (args.name or f"{args.mismatch}_seed{args.seed}")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "summary.json", dest / "summary.json")
        if run is not None:
            for name in ("metrics.jsonl", "config.yaml"):
                if (run / name).is_file():
                    shutil.copy(run / name, dest / name)


if __name__ == "__main__":
    main()
