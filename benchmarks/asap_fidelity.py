"""How faithful is each training simulator in closed loop? A policy's tracking per command in the
nominal simulator and the nominal simulator plus an ASAP delta model, beside the target's (issue 22).

    python benchmarks/asap_fidelity.py <ASAP pipeline out folder> [--policy <rsl_ppo checkpoint dir>]
                                       [--delta <train_delta run> ...] [--seconds 10] [--envs 4] [--support]

The replay error (evaluate's open loop) says how well a simulator reproduces the recording from the
recorded states; this says how it behaves when a policy drives it, which is what fine-tuning
exploits. Each simulator is the fine-tuning task of the pipeline's nominal arm (its config.yaml)
without randomisation, curriculum or standing commands, holding each of evaluate.commands for
--seconds (the first 2 s not scored, as evaluate's settle_s); the figures are the RMS errors of the
body-frame planar velocity (m/s) and yaw rate (rad/s), as evaluate measures them on the target.
--policy defaults to the pretrained walker (pretrain.run's final checkpoint); give
<out>/finetune/asap/run/final for the fine-tuned one. --delta defaults to <out>/train_delta (its best
checkpoint). The target's figures for the same policy are in <out>/evaluate/results.json.

--support adds how far from the recording the policy goes (robolearn/sim2real/support.py, the
asap_gated arm's gate): the distance of every visited state to the nearest recorded one, in units of
the recording's typical spacing, and the mean gate under finetune.support's near and far, on each
evaluated command (deterministic, as above) and on fine-tuning's own distribution (the nominal arm's
task as it trains: its commands, randomisation and exploration noise, actions sampled), in each
simulator (the nominal one and each --delta's, ungated: where an asap policy was fine-tuned).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from robolearn.agents.rsl_ppo import RslPolicy
from robolearn.envs.tasks import TASKS
from robolearn.envs.tasks.rotations import quat_rotate_inverse_rows
from robolearn.envs.tasks.velocity import VelocityTask
from robolearn.envs.vector import BatchedVecEnv
from robolearn.utils.io import atomic_write_json

SETTLE_S = 2.0


def track(
    kwargs: dict[str, Any], policy: Any, command: tuple[float, float, float], seconds: float, envs: int
) -> tuple[float, float]:
    """(planar velocity RMS error, yaw rate RMS error) of the policy holding `command` in the task."""
    kw = {
        **kwargs,
        "command_ranges": {
            "lin_vel_x": [command[0], command[0]],
            "lin_vel_y": [command[1], command[1]],
            "ang_vel_z": [command[2], command[2]],
        },
    }
    task = VelocityTask(num_envs=envs, **kw)
    venv = BatchedVecEnv(task)
    lin: list[np.ndarray] = []
    yaw: list[np.ndarray] = []
    try:
        venv.seed(100)
        obs = venv.reset()
        dt = task.robot_spec.control_dt
        for step in range(round(seconds / dt)):
            action = np.asarray(policy.predict(obs, deterministic=True)[0], dtype=np.float32)
            obs, _, _, _ = venv.step(action)
            if step * dt >= SETTLE_S:
                frame = task.backend.frame()
                v = quat_rotate_inverse_rows(frame.root_quat, frame.root_lin_vel)
                w = frame.root_ang_vel  # body frame already (SimFrame)
                lin.append(np.sum((v[:, :2] - np.asarray(command[:2])) ** 2, axis=1))
                yaw.append((w[:, 2] - command[2]) ** 2)
    finally:
        venv.close()
    return float(np.sqrt(np.mean(lin))), float(np.sqrt(np.mean(yaw)))


def support_profile(
    kwargs: dict[str, Any],
    policy: Any,
    support: Any,
    near_far: tuple[float, float],
    seconds: float,
    envs: int,
    deterministic: bool,
) -> dict[str, float]:
    """Quantiles of the visited states' distance to the recording and the mean support gate."""
    from robolearn.sim2real.support import frame_features, support_gate

    task = VelocityTask(num_envs=envs, **kwargs)
    venv = BatchedVecEnv(task)
    dist: list[np.ndarray] = []
    try:
        venv.seed(100)
        obs = venv.reset()
        default = task.robot_spec.default_pos_array
        for _ in range(round(seconds / task.robot_spec.control_dt)):
            action = np.asarray(policy.predict(obs, deterministic=deterministic)[0], dtype=np.float32)
            dist.append(support.distance(frame_features(task.backend.frame(), default)))
            obs, _, _, _ = venv.step(action)
    finally:
        venv.close()
    d = np.concatenate(dist)
    q50, q90, q99 = np.quantile(d, [0.5, 0.9, 0.99])
    gate = float(support_gate(d, *near_far).mean())
    return {"q50": float(q50), "q90": float(q90), "q99": float(q99), "gate_mean": gate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an ASAP pipeline out folder (finished through finetune)")
    parser.add_argument("--policy", type=Path, default=None, help="an rsl_ppo checkpoint folder (model.zip)")
    parser.add_argument(
        "--delta", type=Path, nargs="*", default=None, help="train_delta runs (best checkpoint)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--results", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--support", action="store_true", help="also the distances to the recording")
    args = parser.parse_args()
    out = args.out.resolve()
    nominal_config = out / "finetune" / "nominal" / "run" / "config.yaml"
    if nominal_config.is_file():
        nominal_run = OmegaConf.load(nominal_config)
        init_from = Path(str(nominal_run.agent.init_from))
    else:  # before the nominal arm trains: the pretrain run's own task (the nominal arm adds nothing to it)
        init_from = Path(json.loads((out / "pretrain" / "check.json").read_text())["run"])
        nominal_run = OmegaConf.load(init_from / "config.yaml")
    kwargs: dict[str, Any] = {
        **TASKS[str(nominal_run.env.id)].kwargs,
        **OmegaConf.to_container(nominal_run.env.kwargs, resolve=True),  # type: ignore[dict-item]
    }
    training_kwargs = dict(kwargs)  # the nominal arm's fine-tuning task as it trains
    for key in ("command_curriculum", "randomization", "delta_action"):
        kwargs.pop(key, None)
    kwargs["standing_fraction"] = 0.0
    policy_dir = args.policy or init_from / "final"
    policy = RslPolicy.load(policy_dir / "model.zip")
    target = out / "evaluate" / "results.json"
    closed = json.loads(target.read_text())["closed_loop"] if target.is_file() else {}
    if "vanilla" in closed:  # the commands evaluate held on the target
        commands = [tuple(float(v) for v in c["command"]) for c in closed["vanilla"]["commands"]]
    else:
        from robolearn.asap import EvaluateSettings

        commands = [tuple(float(v) for v in c) for c in EvaluateSettings().commands]
    deltas = args.delta if args.delta is not None else [out / "train_delta"]
    sims: dict[str, dict[str, Any]] = {"nominal": {}}
    for d in deltas:
        sims[f"delta {d}"] = {"delta_action": {"run": str(d.resolve()), "checkpoint": "best"}}
    results: dict[str, Any] = {"policy": str(policy_dir), "commands": [list(c) for c in commands], "sims": {}}
    print(f"policy {policy_dir}; commands {commands}; lin vel / yaw rate RMS per command")
    for name, extra in sims.items():
        errs = [track({**kwargs, **extra}, policy, c, args.seconds, args.envs) for c in commands]  # type: ignore[arg-type]
        results["sims"][name] = errs
        print(
            f"{name}: "
            + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in errs)
            + f"; mean lin {np.mean([e[0] for e in errs]):.3f}"
        )
    for arm, row in closed.items():
        cells = ", ".join(f"{c['lin_vel_rms']:.3f}/{c['yaw_rate_rms']:.3f}" for c in row["commands"])
        print(f"target, {arm} policy: {cells}; mean lin {row['lin_vel_rms']:.3f}")
    results["target"] = {arm: row["commands"] for arm, row in closed.items()}
    if args.support:
        from robolearn.asap import FinetuneSettings
        from robolearn.sim2real.recordings import load_delta_dataset
        from robolearn.sim2real.support import RecordingSupport, check_support_options

        gate = check_support_options(FinetuneSettings().support, "finetune.support")
        spec_default = VelocityTask(num_envs=1, **kwargs).robot_spec.default_pos_array
        segments, prov = load_delta_dataset(out / "collect" / "delta" / "data", "go2")
        support = RecordingSupport.from_segments(segments, prov["layout"], spec_default)
        spacing = np.quantile(support.recorded_spacing, [0.5, 0.9, 0.99])
        print(
            f"support: recorded held-out spacing q50/q90/q99 {spacing.round(2).tolist()}; gate near/far {gate}"
        )
        profiles: dict[str, dict[str, float]] = {}
        for sim, extra in sims.items():  # in each simulator the policy can be fine-tuned in
            for c in commands:
                ranges = {"lin_vel_x": [c[0], c[0]], "lin_vel_y": [c[1], c[1]], "ang_vel_z": [c[2], c[2]]}
                profiles[f"{sim}, command {list(c)}"] = support_profile(
                    {**kwargs, **extra, "command_ranges": ranges},
                    policy,
                    support,
                    gate,
                    args.seconds,
                    args.envs,
                    True,
                )
            profiles[f"{sim}, fine-tuning distribution"] = support_profile(
                {**training_kwargs, **extra}, policy, support, gate, args.seconds, max(args.envs, 64), False
            )
        for name, p in profiles.items():
            print(
                f"support, {name}: distance q50 {p['q50']:.2f} q90 {p['q90']:.2f} q99 {p['q99']:.2f};"
                f" mean gate {p['gate_mean']:.2f}"
            )
        results["support"] = {"spacing": spacing.tolist(), "near_far": list(gate), "profiles": profiles}
    if args.results is not None:
        atomic_write_json(args.results, results)


if __name__ == "__main__":
    main()
