"""Inverse-dynamics pretraining vs the other objectives, and IDM labelling, at a CPU budget.

    python benchmarks/imitation_pretrain.py [--seeds 0,1,2] [--demos 1,2,5] [--objectives id,bc,contrastive,contrastive_noact,forward,none]
        [--pretrain-steps 1000] [--finetune-steps 1000] [--part all|pretrain|label] [--out outputs/bench_imitation_pretrain]

The paper's protocol (Brandfonbrener, Nachum, Bruna, NeurIPS 2023, Sec. 5; their sweeps/): pretrain an
encoder on many point-mass demos, one hidden goal each (pointmass_pixels split=pretrain), then clone a
NEW goal from n demos of it (split=finetune, one context) with a frozen encoder + BC head, and count
rollout successes on that goal; "none" trains encoder and head from scratch on the same n demos.
Seed s uses the s-th finetuning goal and training seed s (the paper: 10 goals x 5 seeds). Pixels only
(encoder.keys=[pixels]), as the paper's point mass.

IDM labelling (VPT, Baker et al. 2022): per seed, 40 demos of one new goal; the first 3 keep their
actions (labelled), the other 37 are treated as action-free; a non-causal IDM (frames t-1..t+1, state
observations) trained on the 3 labels them; BC from scratch on (a) the 3 labelled, (b) the 37 pseudo-
labelled, (c) the 37 with their true actions.

Every run is a run directory under --out (LoopRun: a finished run is skipped, so the benchmark resumes);
each finished run also leaves one small JSON row in benchmarks/results/imitation/pretrain/rows/, and the
tables (mean success with 95% stratified-bootstrap CIs over seeds, robolearn.report.stats) go to
benchmarks/results/imitation/pretrain/results.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering; mujoco reads it at its first import

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "imitation" / "pretrain"

# CPU sizes (the paper's: conv 32-64-128-256 strides 2-2-1-1, 256 keypoints, 10k steps at batch 256).
ENCODER = [
    "encoder.conv_channels=[16,32,32]",
    "encoder.conv_strides=[2,2,2]",
    "encoder.keypoints=32",
    "encoder.keys=[pixels]",
]
STATE_ENCODER = ["encoder.keys=[state]", "encoder.state_hidden=[64,64]"]
LABELLED, LABEL_DEMOS = 3, 40


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def collect_once(out: Path, overrides: list[str]) -> Path:
    """robolearn.imitation.collect in-process, skipped when the dataset is there."""
    from robolearn.config.validate import compose_config as compose_root
    from robolearn.imitation.collect import collect

    if not (out / "data" / "metadata.json").is_file():
        collect(
            compose_root("imitation/collect", [*overrides, f"out={out}"]),
            command="benchmarks/imitation_pretrain.py",
        )
    return out


def split_dataset(source: Path, first: int, labelled: Path, rest: Path) -> None:
    """Episodes [0, first) to `labelled`, the others to `rest` (both keep their true actions)."""
    from robolearn.datasets import load_dataset, write_dataset

    if (labelled / "data" / "metadata.json").is_file() and (rest / "data" / "metadata.json").is_file():
        return
    data = load_dataset(source)
    for out, episodes in ((labelled, data.episodes[:first]), (rest, data.episodes[first:])):
        write_dataset(
            out,
            episodes,
            dataset_id=data.dataset_id,
            observation_space=data.observation_space,
            action_space=data.action_space,
            provenance={**data.provenance, "split_of": str(source), "demos": len(episodes)},
            overwrite=True,
        )


def run_verb(verb: str, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """One pretrain / finetune / label run in this process (a finished one is read back, not rerun)."""
    from robolearn.imitation import finetune, label, pretrain
    from robolearn.imitation.verbs import compose_config

    job = {"pretrain": pretrain.pretrain_job, "finetune": finetune.finetune_job, "label": label.label_job}[
        verb
    ]
    cfg = compose_config(
        verb, [*overrides, "logger.progress=none", "logger.tensorboard=false", "torch_threads=1"]
    )
    command = "python -m robolearn.imitation." + verb + " " + " ".join(overrides)
    return job(cfg, run_dir, command)


def write_row(name: str, row: dict[str, Any]) -> None:
    """One finished run's figures as a small committed file."""
    from robolearn.utils.io import atomic_write_json

    atomic_write_json(RESULTS / "rows" / f"{name}.json", row)


def pretrain_part(args: argparse.Namespace, out: Path) -> None:
    """Pretrain each objective once, finetune each on every (seed, demos) cell.

    pointmass_pixels keeps its first run's names; another task (reacher: state observations, the
    paper's state-encoder "mlp" backbone at 256x256) prefixes its datasets, runs and rows with its name."""
    data = out / "data"
    task = args.task
    short, prefix, encoder = ("pm", "", ENCODER) if task == "pointmass_pixels" else (task, f"{task}_", [])
    pre = collect_once(
        data / f"{short}_pretrain",
        [f"task={task}", f"demos={args.pretrain_demos}", "split=pretrain", "seed=0"],
    )
    encoders: dict[str, Path] = {}
    for objective in args.objectives:
        run = out / "pretrain" / f"{prefix}{objective}"
        _log(f"pretrain {objective}")
        summary = run_verb(
            "pretrain",
            [
                f"objective={objective}",
                f"data={pre}",
                f"steps={args.pretrain_steps}",
                "batch_size=64",
                "seed=0",
                *encoder,
            ],
            run,
        )
        write_row(
            f"pretrain_{prefix}{objective}",
            {"task": task}
            | {
                k: summary.get(k)
                for k in (
                    "pretrain/objective",
                    "pretrain/heldout_loss",
                    "pretrain/loss",
                    "steps",
                    "wall_time_s",
                )
            },
        )
        encoders[objective] = run
    for seed in args.seeds:
        ft = collect_once(
            data / f"{short}_finetune_{seed}",
            [
                f"task={task}",
                f"demos={max(args.demos)}",
                "split=finetune",
                "contexts=1",
                f"seed={100 + seed}",
            ],
        )
        for demos in args.demos:
            for objective, enc in encoders.items():
                name = f"finetune_{prefix}{objective}_{demos}demos_seed{seed}"
                _log(name)
                summary = run_verb(
                    "finetune",
                    [
                        f"encoder={enc}",
                        f"data={ft}",
                        f"finetune.demos={demos}",
                        f"steps={args.finetune_steps}",
                        "batch_size=64",
                        f"seed={seed}",
                        f"eval.episodes={args.eval_episodes}",
                        f"eval.seed={1000 + seed}",
                    ],
                    out / "finetune" / name,
                )
                write_row(name, _row(summary, task=task, objective=objective, demos=demos, seed=seed))


def label_part(args: argparse.Namespace, out: Path) -> None:
    """Per seed: an IDM labels the new goal's other demos; BC on labelled / pseudo-labelled / truly labelled.

    --idm-source labelled: the IDM learns from the new goal's --labelled demos (VPT's small labelled set);
    pretrain: from the 200 pretraining demos of other goals (dynamics do not depend on the goal)."""
    data = out / "data"
    pre = collect_once(
        data / "pm_pretrain",
        ["task=pointmass_pixels", f"demos={args.pretrain_demos}", "split=pretrain", "seed=0"],
    )
    scratch = out / "pretrain" / "none_state"
    run_verb("pretrain", ["objective=none", f"data={pre}", *STATE_ENCODER], scratch)
    n = int(args.labelled)
    setting = f"{args.idm_source}{n}"
    tag = "" if setting == "labelled3" else f"_{setting}"  # the first setting run keeps its names
    for seed in args.seeds:
        source = collect_once(
            data / f"pm_label_{seed}",
            [
                "task=pointmass_pixels",
                f"demos={LABEL_DEMOS}",
                "split=finetune",
                "contexts=1",
                f"seed={200 + seed}",
            ],
        )
        suffix = "" if n == 3 else str(n)
        labelled, rest = data / f"pm_label_{seed}_labelled{suffix}", data / f"pm_label_{seed}_rest{suffix}"
        split_dataset(source, n, labelled, rest)
        pseudo = data / f"pm_label_{seed}_pseudo{tag}"
        idm_data = pre if args.idm_source == "pretrain" else labelled
        _log(f"label seed {seed} ({setting})")
        summary = run_verb(
            "label",
            [
                f"labeled={idm_data}",
                f"unlabeled={rest}",
                f"out={pseudo}",
                "overwrite=true",
                f"steps={args.label_steps}",
                "heldout_fraction=0",
                f"seed={seed}",
                *STATE_ENCODER,
            ],
            out / "label" / f"idm{tag}_seed{seed}",
        )
        write_row(
            f"idm{tag}_seed{seed}",
            {
                "seed": seed,
                "setting": setting,
                **{k: summary.get(k) for k in summary if k.startswith("label/")},
            },
        )
        for arm, dataset in (("labelled_only", labelled), ("pseudo_labels", pseudo), ("true_labels", rest)):
            name = f"bc_{arm}{tag}_seed{seed}"
            _log(name)
            summary = run_verb(
                "finetune",
                [
                    f"encoder={scratch}",
                    f"data={dataset}",
                    f"steps={args.finetune_steps}",
                    "batch_size=64",
                    f"seed={seed}",
                    f"eval.episodes={args.eval_episodes}",
                    f"eval.seed={1000 + seed}",
                ],
                out / "label_bc" / name,
            )
            write_row(name, _row(summary, arm=arm, seed=seed, setting=setting))


def _row(summary: dict[str, Any], **labels: Any) -> dict[str, Any]:
    keep = (
        "eval/success_rate",
        "eval/mean_return",
        "eval/episodes",
        "finetune/demos",
        "finetune/freeze",
        "wall_time_s",
    )
    return {**labels, **{k: summary.get(k) for k in keep}}


def _interval(values: list[float]) -> dict[str, float]:
    from robolearn.report.stats import aggregate_mean, interval_estimate, score_set

    est = interval_estimate(
        aggregate_mean, score_set([np.asarray(values, dtype=np.float64)]), reps=2000, seed=0
    )
    return {"mean": est.point, "low": est.low, "high": est.high, "n": len(values)}


def _improvement(x: list[float], y: list[float]) -> dict[str, float]:
    from robolearn.report.stats import interval_estimate, probability_of_improvement, score_set

    est = interval_estimate(
        probability_of_improvement,
        score_set([np.asarray(x, dtype=np.float64)]),
        score_set([np.asarray(y, dtype=np.float64)]),
        reps=2000,
        seed=0,
    )
    return {"p": est.point, "low": est.low, "high": est.high}


def tables() -> dict[str, Any]:
    """Aggregate the rows into the results tables (markdown + json)."""
    from robolearn.utils.io import atomic_write_json, atomic_write_text
    from robolearn.utils.sysinfo import cpu_info

    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / "rows").glob("*.json"))]
    finetune = [r for r in rows if "objective" in r and r.get("eval/success_rate") is not None]
    bc = [r for r in rows if "arm" in r and r.get("eval/success_rate") is not None]
    idm = [r for r in rows if "label/pseudo_vs_true_mse" in r]
    pre = [r for r in rows if "pretrain/objective" in r]
    out: dict[str, Any] = {"cpu": cpu_info(), "finetune": {}, "improvement_over_none": {}, "labelling": {}}
    lines: list[str] = []
    tasks = sorted(
        {r.get("task", "pointmass_pixels") for r in finetune}, key=lambda t: t != "pointmass_pixels"
    )
    for task in tasks:
        rows_task = [r for r in finetune if r.get("task", "pointmass_pixels") == task]
        key = "" if task == "pointmass_pixels" else f"{task}/"
        kind = "pixels" if task == "pointmass_pixels" else "state"
        lines += [
            f"## Finetuning success on a new goal ({task}, {kind}; frozen encoder + BC head; none = from scratch)",
            "",
        ]
        demos_list = sorted({r["demos"] for r in rows_task})
        objectives = [
            o
            for o in ("id", "bc", "contrastive", "contrastive_noact", "forward", "none")
            if any(r["objective"] == o for r in rows_task)
        ]
        lines.append("| objective | " + " | ".join(f"{d} demos" for d in demos_list) + " |")
        lines.append("|---|" + "---|" * len(demos_list))
        for obj in objectives:
            cells = []
            for d in demos_list:
                vals = [
                    r["eval/success_rate"] for r in rows_task if r["objective"] == obj and r["demos"] == d
                ]
                if not vals:
                    cells.append("-")
                    continue
                est = _interval(vals)
                out["finetune"][f"{key}{obj}/{d}"] = {**est, "values": vals}
                cells.append(f"{est['mean']:.2f} [{est['low']:.2f}, {est['high']:.2f}] (n={est['n']})")
            lines.append(f"| {obj} | " + " | ".join(cells) + " |")
        lines += ["", "P(objective > none) per demo count, 95% CI (stratified bootstrap over seeds):", ""]
        for obj in objectives:
            if obj == "none":
                continue
            for d in demos_list:
                x = [r["eval/success_rate"] for r in rows_task if r["objective"] == obj and r["demos"] == d]
                y = [
                    r["eval/success_rate"] for r in rows_task if r["objective"] == "none" and r["demos"] == d
                ]
                if x and y:
                    imp = _improvement(x, y)
                    out["improvement_over_none"][f"{key}{obj}/{d}"] = imp
                    lines.append(
                        f"- {obj}, {d} demos: P = {imp['p']:.2f} [{imp['low']:.2f}, {imp['high']:.2f}]"
                    )
        lines.append("")
    if pre:
        lines += ["| task | pretraining | held-out loss | wall time (s) |", "|---|---|---|---|"]
        for r in pre:
            loss = r.get("pretrain/heldout_loss")
            lines.append(
                f"| {r.get('task', 'pointmass_pixels')} | {r['pretrain/objective']} | "
                f"{'-' if loss is None else f'{loss:.4f}'} | {r.get('wall_time_s') or 0:.0f} |"
            )
    for setting in sorted({r.get("setting", "labelled3") for r in bc + idm}):
        rows_bc = [r for r in bc if r.get("setting", "labelled3") == setting]
        rows_idm = [r for r in idm if r.get("setting", "labelled3") == setting]
        source = "pretraining demos of other goals" if setting.startswith("pretrain") else "labelled demos"
        n = int("".join(ch for ch in setting if ch.isdigit()))
        lines += [
            "",
            f"## IDM labelling, setting {setting}: IDM trained on the {source}; {n} labelled demo(s) of the new goal,",
            f"{LABEL_DEMOS - n} action-free ones labelled by the IDM; BC from scratch (state observations)",
            "",
            "| BC data | success |",
            "|---|---|",
        ]
        res: dict[str, Any] = {}
        for arm in ("labelled_only", "pseudo_labels", "true_labels"):
            vals = [r["eval/success_rate"] for r in rows_bc if r["arm"] == arm]
            if vals:
                est = _interval(vals)
                res[arm] = {**est, "values": vals}
                lines.append(
                    f"| {arm} | {est['mean']:.2f} [{est['low']:.2f}, {est['high']:.2f}] (n={est['n']}) |"
                )
        x = [r["eval/success_rate"] for r in rows_bc if r["arm"] == "pseudo_labels"]
        y = [r["eval/success_rate"] for r in rows_bc if r["arm"] == "labelled_only"]
        if x and y:
            imp = _improvement(x, y)
            res["p_pseudo_over_labelled"] = imp
            lines += [
                "",
                f"P(pseudo-labels > labelled only) = {imp['p']:.2f} [{imp['low']:.2f}, {imp['high']:.2f}]",
            ]
        if rows_idm:
            mse = [r["label/pseudo_vs_true_mse"] for r in rows_idm]
            base = [r["label/true_mean_baseline_mse"] for r in rows_idm]
            res["pseudo_vs_true_mse"] = mse
            lines += [
                "",
                f"pseudo-label MSE vs the ignored true actions, per seed: {', '.join(f'{m:.4f}' for m in mse)} "
                f"(predicting the mean action: {', '.join(f'{b:.4f}' for b in base)})",
            ]
        out["labelling"][setting] = res
    lines += ["", f"Machine: {cpu_info()}, torch threads 1, shared with other jobs (2 cores, load 6-8)."]
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "results.md", text)
    atomic_write_json(RESULTS / "results.json", out)
    print(text)
    return out


def main() -> None:
    """Run the parts asked for, then write the tables."""
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--demos", default="1,2,5")
    parser.add_argument("--objectives", default="id,bc,contrastive,contrastive_noact,forward,none")
    parser.add_argument("--pretrain-demos", type=int, default=200)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--label-steps", type=int, default=1500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument(
        "--task", default="pointmass_pixels", help="pretrain part: pointmass_pixels | reacher"
    )
    parser.add_argument("--labelled", type=int, default=LABELLED, help="labelled demos of the new goal")
    parser.add_argument("--idm-source", choices=("labelled", "pretrain"), default="labelled")
    parser.add_argument("--part", choices=("all", "pretrain", "label", "tables"), default="all")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_imitation_pretrain"))
    parser.add_argument("--results", default=str(RESULTS), help="where rows/ and results.{md,json} go")
    args = parser.parse_args()
    RESULTS = Path(args.results)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.demos = [int(d) for d in args.demos.split(",")]
    args.objectives = args.objectives.split(",")
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.part in ("all", "label"):
        label_part(args, out)
    if args.part in ("all", "pretrain"):
        pretrain_part(args, out)
    tables()


if __name__ == "__main__":
    main()
