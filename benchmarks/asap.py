"""ASAP against its baselines on the Go2: the paper's claim, rehearsed sim-to-sim (issue 22).

    python benchmarks/asap.py [--mismatches gains_strength friction_mass_delay] [--seeds 0 1 2]
                              [--methods nominal dr sysid delta_dynamics asap asap_gated oracle] [--finetune-steps 2000000]
                              [--delta-steps 2000000] [--rounds 1] [--pretrain outputs/benchmarks/go2_walk/trot_history/seed_0]
                              [--out outputs/benchmarks/asap] [--results benchmarks/results/asap]

For each mismatch and seed, one `python -m robolearn.asap stage=all` pipeline (robolearn/asap.py)
on the same pretrained walker: collect 20 s over loopback DDS against the sim bridge playing the
target, train the delta-action model, fit SysID, fine-tune every method for the same number of steps
from the same checkpoint, and evaluate all of them on the target (closed loop: velocity and yaw-rate
tracking over four commands, falls; open loop: each method's simulator replaying the recording).
Arms: vanilla (the pretrained policy), nominal (the same fine-tuning budget with no alignment: the
control for "more training"), dr (wider randomisation), sysid, delta_dynamics (a learnt residual of
the next velocities), asap, asap_gated (asap's delta faded out away from the recorded states: our
addition, robolearn/sim2real/support.py), oracle (the target's physics). The nominal and dr arms read neither the
target nor the recording: a seed's second mismatch row copies them from its first (finetune.reuse,
matched on the whole training command; training is deterministic for a command). --rounds R > 1
adds ASAP's later rounds (rounds.count, robolearn/asap.py: record the fine-tuned policy again, refit
the delta on every recording, fine-tune on): arms asap_round2..R, added to a finished row by running
its pipeline again (every finished stage is kept).

A finished (mismatch, seed) is skipped, so the sweep resumes after a kill, on a fresh machine too
once --results holds its small files (evaluate/results.json, the SysID fit, every run's
metrics.jsonl and config.yaml). The pretrained walker is not committed: rebuild it with
`python benchmarks/go2_walk.py recipe=trot_history --seeds 0 --steps 8736768` (issue 16's run 10,
29 min on 2 cores; it reproduces the shipped policies/reference/go2_walk actor bit for bit).

The seed is the pipeline's (the recording's pushes, the delta model's and every fine-tuning run's
seed); the pretrained policy is the same for every seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from locomotion_runs import finish_machine, machine_now

from robolearn.asap import TrainDeltaSettings, asap_arm, asap_round
from robolearn.config.validate import hydra_value

REPO = Path(__file__).resolve().parents[1]
ARMS = ("vanilla", "nominal", "dr", "sysid", "delta_dynamics", "asap", "asap_gated", "oracle")


def asap_family(arm: str) -> bool:
    """ASAP's own arms (asap, its later rounds, asap_gated): not baselines of one another."""
    return bool(asap_round(arm)) or arm == "asap_gated"


def arms_of(results: list[dict[str, Any]]) -> list[str]:
    """ARMS, then ASAP's later rounds (asap_round2, ...) in the order of their round."""
    later = {arm for r in results for arm in r["closed_loop"] if asap_round(arm) > 1}
    return [*ARMS, *sorted(later, key=asap_round)]


def missing_rounds(result: dict[str, Any], rounds: int) -> bool:
    return any(asap_arm(r) not in result["closed_loop"] for r in range(2, rounds + 1))


def run_pipeline(args: argparse.Namespace, mismatch: str, seed: int, out: Path) -> dict[str, Any]:
    results = out / "evaluate" / "results.json"
    finished = json.loads(results.read_text()) if results.is_file() else None
    if finished is not None and not missing_rounds(finished, args.rounds):
        return dict(finished)
    cmd = [
        sys.executable,
        "-m",
        "robolearn.asap",
        "stage=all",
        "robot=go2",
        f"mismatch={mismatch}",
        f"seed={seed}",
        f"methods=[{','.join(args.methods)}]",
        f"pretrain.run={args.pretrain.resolve()}",
        f"out={out}",
        f"finetune.steps={args.finetune_steps}",
        f"train_delta.steps={args.delta_steps}",
        f"rounds.count={args.rounds}",
        "collect.rt_priority=40",  # SCHED_FIFO where permitted (root): the recording's timing as a robot's
        # This seed's other mismatch rows: their nominal and dr arms are this row's (same command).
        f"finetune.reuse={hydra_value([str(p) for p in sorted(out.parent.glob(f'*_seed{seed}')) if p != out])}",
    ]
    print("$ " + " ".join(cmd[1:]), flush=True)
    adding = finished is not None  # a finished row gets later rounds: its first wall time is kept
    wall_file = out / "evaluate" / "wall.json"
    walls = json.loads(wall_file.read_text()) if adding and wall_file.is_file() else {}
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=REPO)
    result = dict(json.loads(results.read_text()))
    walls[f"rounds_{args.rounds}_added_wall_s" if adding else "wall_s"] = round(time.time() - t0, 1)
    wall_file.write_text(json.dumps(walls))
    return {**result, **walls}


def copy_small_files(out: Path, dest: Path) -> None:
    """The files a later session needs to rebuild the tables, never checkpoints or recordings."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in (
        "evaluate/results.json",
        "evaluate/wall.json",
        "sysid/fit.json",
        "train_dynamics/report.json",
        *(f"finetune/{arm}/reused.json" for arm in ARMS),
        *(str(p.relative_to(out)) for p in sorted(out.glob("rounds/r*/collect/delta/data/metadata.json"))),
        "pretrain/check.json",
        "manifest.json",
    ):
        if (out / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / rel, dest / rel)
    runs = {"train_delta": out / "train_delta"}
    runs.update({f"rounds/{p.parent.name}/train_delta": p for p in sorted(out.glob("rounds/r*/train_delta"))})
    runs.update({f"finetune/{p.name}": p / "run" for p in sorted((out / "finetune").glob("*")) if p.is_dir()})
    for name, run in runs.items():
        for rel in ("metrics.jsonl", "config.yaml", "summary.json"):
            if (run / rel).is_file():
                (dest / name).mkdir(parents=True, exist_ok=True)
                shutil.copy(run / rel, dest / name / rel)
    meta = out / "collect" / "delta" / "data" / "metadata.json"
    if meta.is_file():
        (dest / "collect").mkdir(parents=True, exist_ok=True)
        shutil.copy(meta, dest / "collect" / "metadata.json")


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mean_text(values: list[float | None], digits: int = 3) -> str:
    """Mean of the values there are ('-' for none): an episode that fell before the settle time has none."""
    kept = [v for v in values if v is not None]
    return _num(float(np.mean(kept)) if kept else None, digits)


def _beats_every_baseline(closed: dict[str, Any], asap: str = "asap") -> bool:
    """ASAP's arm `asap` falls no more often and tracks better (velocity RMS over the episodes that
    have one) than every baseline: every arm but the oracle and ASAP's own (asap_family); a missing
    error counts as infinite."""
    mine = closed[asap]
    mine_lin = mine["lin_vel_rms"] if mine["lin_vel_rms"] is not None else float("inf")
    for arm, row in closed.items():
        if arm == "oracle" or asap_family(arm):
            continue
        theirs = row["lin_vel_rms"] if row["lin_vel_rms"] is not None else float("inf")
        if mine["falls"] > row["falls"] or not mine_lin < theirs:
            return False
    return True


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Per mismatch: each arm's closed-loop errors (mean over seeds, with the per-seed values) and its
    simulator's open-loop replay error."""
    lines: list[str] = []
    for mismatch, runs in results.items():
        seeds = [r["seed"] for r in runs]
        lines += [
            f"mismatch {mismatch}, seeds {seeds}",
            "",
            "| arm | lin vel RMS (m/s), mean [per seed] | yaw rate RMS (rad/s) | falls | replay joint RMS (rad) |",
            "|---|---|---|---|---|",
        ]
        for arm in arms_of(runs):
            rows = [r["closed_loop"][arm] for r in runs if arm in r["closed_loop"]]
            if not rows:
                continue
            lin = [row["lin_vel_rms"] for row in rows]
            yaw = [row["yaw_rate_rms"] for row in rows]
            falls = sum(row["falls"] for row in rows)
            episodes = sum(row["episodes"] for row in rows)
            # Round 1's recording, every row; asap_gated's simulator is asap's away from the gate's edge.
            sim = "nominal" if arm in ("vanilla", "nominal", "dr") else arm
            replay = [r["open_loop"][sim]["joint_pos_rms"] for r in runs if sim in r.get("open_loop", {})]
            lines.append(
                f"| {arm} | {_mean_text(lin)} [{', '.join(_num(v) for v in lin)}] | {_mean_text(yaw)} |"
                f" {falls}/{episodes} | {_mean_text(replay, 4)} |"
            )
        lines.append("")
        for asap in (a for a in arms_of(runs) if asap_family(a)):
            claim = [_beats_every_baseline(r["closed_loop"], asap) for r in runs if asap in r["closed_loop"]]
            if claim:
                lines.append(
                    f"{asap}: at least as few falls and a lower velocity error than every baseline (not"
                    f" the oracle): {sum(claim)} of {len(claim)} seeds"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mismatches", nargs="+", default=["gains_strength", "friction_mass_delay"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["nominal", "dr", "sysid", "delta_dynamics", "asap", "oracle", "asap_gated"],
    )
    parser.add_argument("--finetune-steps", type=int, default=2_000_000)
    parser.add_argument("--delta-steps", type=int, default=TrainDeltaSettings().steps)
    parser.add_argument(
        "--rounds", type=int, default=1, help="ASAP passes (rounds.count); > 1 adds asap_round<r>"
    )
    parser.add_argument(
        "--pretrain",
        type=Path,
        default=REPO / "outputs" / "benchmarks" / "go2_walk" / "trot_history" / "seed_0",
    )
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "asap")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    if args.rounds < 1 or (args.rounds > 1 and "asap" not in args.methods):
        sys.exit(
            f"--rounds {args.rounds} must be 1, or more with asap among --methods ({' '.join(args.methods)})"
        )
    machine = machine_now()
    results: dict[str, list[dict[str, Any]]] = {}
    for mismatch in args.mismatches:
        for seed in args.seeds:
            name = f"{mismatch}_seed{seed}"
            committed = None if args.results is None else args.results / name / "evaluate" / "results.json"
            earlier = (
                json.loads(committed.read_text()) if committed is not None and committed.is_file() else None
            )
            if earlier is not None and not (args.out / name).is_dir():
                if missing_rounds(earlier, args.rounds):  # would record and train the whole row again
                    sys.exit(
                        f"{name} finished in an earlier session without ASAP's round {args.rounds}, and"
                        f" {args.out / name} (its checkpoints and recordings, needed to add rounds) is not"
                        " here; run it without --rounds, or rerun the row into an empty --results"
                    )
                result = dict(earlier)  # finished in an earlier session
            else:
                if not (args.pretrain / "config.yaml").is_file():
                    sys.exit(
                        f"{args.pretrain} is not a run directory: train the walker first with"
                        " python benchmarks/go2_walk.py recipe=trot_history --seeds 0 --steps 8736768"
                    )
                result = run_pipeline(args, mismatch, seed, (args.out / name).resolve())
                if args.results is not None:
                    copy_small_files(args.out / name, args.results / name)
            results.setdefault(mismatch, []).append(result)
            print(f"{name}: done", flush=True)
    finish_machine(machine)
    text = table(results)
    print(text)
    summary = {
        "machine": machine,
        "finetune_steps": args.finetune_steps,
        "delta_steps": args.delta_steps,
        "rounds": args.rounds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "summary.json").write_text(json.dumps({**summary, "results": results}, indent=2))


if __name__ == "__main__":
    main()
