"""MOREC (Luo et al., ICLR 2024) on our own datasets: generalisation, filter cost, and offline RL scores.

    python benchmarks/morec.py prep --dataset robolearn/hopper/medium-v0 [--seed 0]
    python benchmarks/morec.py generalisation --dataset robolearn/hopper/medium-v0 --ood robolearn/hopper/expert-v0
    python benchmarks/morec.py throughput --dataset robolearn/hopper/medium-v0
    python benchmarks/morec.py sweep --dataset robolearn/hopper/medium-v0 [--seeds 3] [--steps 20000]
    python benchmarks/morec.py summary [--results benchmarks/results/morec]

prep: trains the dynamics ensemble (robolearn.mbrl.offline.loop.train_dynamics, the loop's own settings,
  epochs capped by --model-epochs) and learns the dynamics reward (configs/filter/morec.yaml `learn`) once per
  dataset, into <out>/prep/<dataset>/{dynamics.pt, dynamics_reward.pt}; every later part reuses them.
generalisation (the paper's section 5.1 question, on held-out out-of-distribution (s, a) pairs, e.g. the expert
  data for a model trained on medium): per pair, the next-state error of (a) the MOREC choice among
  elites x samples candidates, (b) one random elite's sample (MOPO/MBPO's transition), (c) the elites' mean;
  then 50-step open-loop rollouts along the OOD episodes' own actions, each method feeding its own
  predictions back; errors are RMSEs in units of the training data's per-dimension state std, with 95%
  bootstrap intervals over pairs / segments.
throughput: seconds per (rollout x model step) of robolearn.mbrl.offline.rollout.rollout with and without the
  filter (same model, same policy, same starts; the filter's threshold set below every reward so both
  step the same inputs), alternating repeats, median ratio. Goal (issue 21): <= 2x.
sweep: MOPO, MOREC-MOPO, MOBILE, MOREC-MOBILE x seeds through `python -m robolearn.offline`, one run
  directory per (algo, filter, seed) under <out>/runs/<dataset>/, sharing the prepared ensemble and dynamics
  reward (model=, filter.reward_path=). A run with summary.json is skipped, one with a checkpoint resumed, so
  an interrupted sweep continues. Each finished run's config.yaml, summary.json and metrics.jsonl are
  copied to --results (committed: benchmarks/results/morec/).
summary: IQM and mean normalised score per (dataset, method) with 95% stratified-bootstrap intervals
  (robolearn.report.stats, rliable's estimators) and P(MOREC-X > X); writes <results>/summary.md/json.
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
import torch
from omegaconf import OmegaConf

from robolearn.datasets import OfflineDataset, load_dataset
from robolearn.mbrl.models import EnsembleDynamics
from robolearn.mbrl.offline.loop import DynamicsSettings, train_dynamics
from robolearn.mbrl.offline.morec import (
    DynamicsReward,
    FilterSettings,
    auc,
    load_or_learn_dynamics_reward,
    make_morec_filter,
    score_to_reward,
    select_candidates,
)
from robolearn.mbrl.offline.rollout import ModelBuffer, rollout, termination_fn
from robolearn.utils.io import atomic_write_json, atomic_write_text
from robolearn.utils.sysinfo import cpu_info, package_versions

ROOT = Path(__file__).resolve().parents[1]
FILTER_YAML = ROOT / "configs" / "filter" / "morec.yaml"
DEFAULT_OUT = Path("outputs/benchmarks/morec")
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "morec"
METHODS = (("mopo", "none"), ("mopo", "morec"), ("mobile", "none"), ("mobile", "morec"))
KEEP_FILES = ("config.yaml", "summary.json", "metrics.jsonl")


def _flat_arrays(ds: OfflineDataset) -> dict[str, np.ndarray]:
    """The dataset's transitions as flat float32 arrays (Box observations)."""
    t = ds.transitions()
    n = len(t)
    return {
        "obs": np.asarray(t.observations, dtype=np.float32).reshape(n, -1),
        "act": np.asarray(t.actions, dtype=np.float32).reshape(n, -1),
        "rew": np.asarray(t.rewards, dtype=np.float32),
        "next_obs": np.asarray(t.next_observations, dtype=np.float32).reshape(n, -1),
        "done": np.asarray(t.terminations, dtype=np.float32),
    }


def slug(name: str) -> str:
    """A folder name for a dataset id or path."""
    return str(name).strip("/").replace("/", "_")


def prep_dir(out: Path, dataset: str) -> Path:
    """Where the prepared ensemble and dynamics reward of a dataset live."""
    return out / "prep" / slug(dataset)


def filter_cfg(overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/filter/morec.yaml with dotted overrides (e.g. learn.rounds=500)."""
    cfg = OmegaConf.load(FILTER_YAML)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def prep(args: argparse.Namespace) -> tuple[Path, Path]:
    """Train (or reuse) the ensemble and learn (or reuse) the dynamics reward for one dataset."""
    torch.set_num_threads(1)
    where = prep_dir(args.out, args.dataset)
    where.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(args.dataset)
    model_path, reward_path = where / "dynamics.pt", where / "dynamics_reward.pt"
    info: dict[str, Any] = {"dataset": args.dataset, "transitions": ds.total_steps, "seed": args.seed}
    if not model_path.is_file():
        t0 = time.perf_counter()
        settings = DynamicsSettings(max_epochs=args.model_epochs, max_steps=args.model_steps)
        model, fit = train_dynamics(_flat_arrays(ds), settings, args.seed, "cpu")
        model.save(model_path)
        info["dynamics"] = {
            **fit,
            "seconds": time.perf_counter() - t0,
            "max_epochs": args.model_epochs,
            "max_steps": args.model_steps,
        }
        print(f"dynamics: {info['dynamics']}", flush=True)
    if not reward_path.is_file():
        cfg = filter_cfg(args.set)
        reward = load_or_learn_dynamics_reward(ds, cfg, reward_path, seed=args.seed, device="cpu")
        info["dynamics_reward"] = reward.info
        info["learn"] = cfg["learn"]
        print(f"dynamics reward: {reward.info}", flush=True)
    old = where / "prep.json"
    if old.is_file():
        info = {**json.loads(old.read_text()), **info}
    atomic_write_json(old, info)
    return model_path, reward_path


def _load_prepared(args: argparse.Namespace) -> tuple[OfflineDataset, EnsembleDynamics, DynamicsReward]:
    model_path, reward_path = prep(args)
    return load_dataset(args.dataset), EnsembleDynamics.load(model_path), DynamicsReward.load(reward_path)


def _mean_ci(values: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> dict[str, float]:
    """Mean and its 95% percentile-bootstrap interval."""
    v = np.asarray(values, dtype=np.float64)
    boots = v[rng.integers(0, len(v), size=(reps, len(v)))].mean(1)
    return {
        "mean": float(v.mean()),
        "low": float(np.quantile(boots, 0.025)),
        "high": float(np.quantile(boots, 0.975)),
        "n": len(v),
    }


class Predictors:
    """The three ways to pick a next state from the ensemble, in raw units."""

    def __init__(
        self, model: EnsembleDynamics, reward: DynamicsReward, samples: int, gen: torch.Generator
    ) -> None:
        self.model, self.reward, self.samples, self.gen = model, reward, samples, gen
        self.settings = FilterSettings()  # max selection, official threshold

    @torch.no_grad()
    def step(
        self, obs: dict[str, torch.Tensor], act: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Next states per method from per-method current states; also the chosen filter reward [B]."""
        m = self.model
        o_dim, e = m.obs_dim, m.elites
        out: dict[str, torch.Tensor] = {}
        mean, _ = m.predict_members(obs["mean"], act)
        out["mean"] = mean[e, :, :o_dim].mean(0)
        mean, std = m.predict_members(obs["random"], act)
        pick = e[torch.randint(len(e), (len(act),), generator=self.gen)]
        rows = torch.arange(len(act))
        noise = torch.randn(mean.shape[1:], generator=self.gen)
        out["random"] = (mean[pick, rows] + std[pick, rows] * noise)[:, :o_dim]
        mean, std = m.predict_members(obs["morec"], act)
        mu, sd = mean[e][..., :o_dim], std[e][..., :o_dim]
        noise = torch.randn((len(e), self.samples, *mu.shape[1:]), generator=self.gen)
        cand = (mu.unsqueeze(1) + sd.unsqueeze(1) * noise).flatten(0, 1)  # [K, B, o]
        score = self.reward.score(obs["morec"].unsqueeze(0), act.unsqueeze(0), cand)
        nxt, _, _, chosen = select_candidates(score, cand, torch.zeros(cand.shape[:2]), self.settings)
        out["morec"] = nxt
        return out, score_to_reward(chosen)


def generalisation(args: argparse.Namespace) -> dict[str, Any]:
    """One-step and 50-step open-loop errors on OOD pairs: MOREC choice vs random elite sample vs elites' mean."""
    torch.set_num_threads(1)
    train, model, reward = _load_prepared(args)
    ood = load_dataset(args.ood)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    scale = torch.as_tensor(_flat_arrays(train)["obs"].std(0)).clamp_min(1e-6)
    pred = Predictors(model, reward, args.samples, gen)
    methods = ("morec", "random", "mean")

    def rmse(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return (((x - y) / scale) ** 2).mean(-1).sqrt().numpy()

    # One step, on random OOD transitions.
    flat = _flat_arrays(ood)
    idx = rng.choice(len(flat["obs"]), size=min(args.pairs, len(flat["obs"])), replace=False)
    o, a, n = (torch.as_tensor(flat[k][idx]) for k in ("obs", "act", "next_obs"))
    nxt, chosen_r = pred.step({k: o for k in methods}, a)
    one = {k: _mean_ci(rmse(nxt[k], n), rng) for k in methods}
    paired = {
        "morec_vs_random": _mean_ci(rmse(nxt["morec"], n) - rmse(nxt["random"], n), rng),
        "morec_vs_mean": _mean_ci(rmse(nxt["morec"], n) - rmse(nxt["mean"], n), rng),
    }
    below = float((chosen_r < FilterSettings().threshold).float().mean())
    true_r = reward.reward(o, a, n)
    # Does the reward generalise out of distribution: true OOD transitions vs the model's random samples.
    ood_auc = auc(true_r, reward.reward(o, a, nxt["random"]))
    print(f"one-step OOD RMSE (state-std units): {json.dumps(one)}", flush=True)

    # Open loop along OOD episodes: the data's actions, each method on its own predictions.
    h = args.horizon
    starts = [
        (ei, t0)
        for ei, ep in enumerate(ood.episodes)
        if ep.steps >= h
        for t0 in range(0, ep.steps - h + 1, h)
    ]
    if not starts:
        raise SystemExit(f"{args.ood}: no episode has {h} steps; lower --horizon")
    pick = rng.choice(len(starts), size=min(args.segments, len(starts)), replace=False)
    segs = [starts[i] for i in pick]
    obs_true = torch.stack(
        [
            torch.as_tensor(np.asarray(ood.episodes[ei].observations[t0 : t0 + h + 1], dtype=np.float32))
            for ei, t0 in segs
        ],
        1,
    )  # [h+1, S, o]
    acts = torch.stack(
        [
            torch.as_tensor(np.asarray(ood.episodes[ei].actions[t0 : t0 + h], dtype=np.float32))
            for ei, t0 in segs
        ],
        1,
    )
    state = {k: obs_true[0] for k in methods}
    curves = {k: np.zeros((h, len(segs))) for k in methods}
    for t in range(h):
        state, _ = pred.step(state, acts[t])
        for k in methods:
            curves[k][t] = rmse(state[k], obs_true[t + 1])
    marks = sorted({1, 10, 25, h} & set(range(1, h + 1)))
    compounding = {k: {f"h{m}": _mean_ci(curves[k][m - 1], rng) for m in marks} for k in methods}
    compounding_mean = {k: _mean_ci(curves[k].mean(0), rng) for k in methods}
    result = {
        "dataset": args.dataset,
        "ood": args.ood,
        "pairs": len(idx),
        "samples_per_member": args.samples,
        "elites": len(model.elites),
        "one_step_rmse": one,
        "one_step_paired_difference": paired,
        "filter_below_threshold_fraction": below,
        "true_transition_reward_mean": float(true_r.mean()),
        "auc_true_vs_random_sample": ood_auc,
        "true_transition_below_threshold_fraction": float(
            (true_r < FilterSettings().threshold).float().mean()
        ),
        "open_loop_segments": len(segs),
        "open_loop_horizon": h,
        "open_loop_rmse": compounding,
        "open_loop_rmse_mean_over_steps": compounding_mean,
        "open_loop_curve_mean": {k: [float(x) for x in curves[k].mean(1)] for k in methods},
    }
    _write(args, f"generalisation_{slug(args.dataset)}__{slug(args.ood)}.json", result)
    return result


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Model rollout cost with and without the filter, same inputs, alternating repeats."""
    torch.set_num_threads(args.threads)
    from robolearn.mbrl.offline.sac import SAC, SACConfig

    ds, model, reward = _load_prepared(args)
    flat = _flat_arrays(ds)
    torch.manual_seed(args.seed)
    sac = SAC(model.obs_dim, model.act_dim, SACConfig(), torch.device("cpu"))
    starts = torch.as_tensor(
        flat["obs"][np.random.default_rng(args.seed).integers(0, len(flat["obs"]), args.batch)]
    )
    box = ds.action_space
    low = torch.as_tensor(box.low, dtype=torch.float32)  # type: ignore[attr-defined]
    high = torch.as_tensor(box.high, dtype=torch.float32)  # type: ignore[attr-defined]
    done_fn = termination_fn(ds.env_id, dict(ds.env_kwargs or {}), model.obs_dim)
    keep_all = make_morec_filter(reward, {"threshold": -1e9})
    times: dict[str, list[float]] = {"none": [], "morec": []}
    steps: dict[str, list[int]] = {"none": [], "morec": []}
    for _ in range(args.repeats):
        for mode in ("none", "morec"):
            buf = ModelBuffer(args.batch * args.horizon, model.obs_dim, model.act_dim)
            t0 = time.perf_counter()
            stats = rollout(
                model,
                lambda o: sac.act(o),
                starts,
                args.horizon,
                buf,
                act_scale=(low, high),
                done_fn=done_fn,
                step_filter=keep_all if mode == "morec" else None,
                samples_per_member=args.samples,
            )
            times[mode].append(time.perf_counter() - t0)
            steps[mode].append(stats.transitions + stats.filtered)
    per = {m: [t / s for t, s in zip(times[m], steps[m], strict=True)] for m in times}
    ratios = [f / n for f, n in zip(per["morec"], per["none"], strict=True)]
    result = {
        "dataset": args.dataset,
        "batch": args.batch,
        "horizon": args.horizon,
        "samples_per_member": args.samples,
        "candidates": len(model.elites) * args.samples,
        "discriminators": reward.count,
        "torch_threads": args.threads,
        "us_per_model_step_none": float(np.median(per["none"])) * 1e6,
        "us_per_model_step_morec": float(np.median(per["morec"])) * 1e6,
        "ratio_median": float(np.median(ratios)),
        "ratios": ratios,
        "model_steps": steps,
        "goal": "ratio <= 2",
    }
    print(json.dumps(result, indent=1), flush=True)
    _write(args, f"throughput_{slug(args.dataset)}.json", result)
    return result


def _run_one(
    args: argparse.Namespace, algo: str, filt: str, seed: int, model_path: Path, reward_path: Path
) -> Path:
    run_dir = (args.out / "runs" / slug(args.dataset) / f"{algo}_{filt}_seed{seed}").resolve()
    if (run_dir / "summary.json").is_file():
        return run_dir
    over = [
        f"dataset={args.dataset}",
        f"algo={algo}",
        f"filter={filt}",
        f"seed={seed}",
        f"steps={args.steps}",
        f"model={model_path.resolve()}",
        f"loop.eval_every={args.eval_every}",
        f"loop.eval_episodes={args.eval_episodes}",
        f"loop.log_every={min(1000, args.eval_every)}",
        f"loop.checkpoint_every={args.eval_every}",
        f"loop.rollout_batch={args.rollout_batch}",
        "logger.progress=none",
        "torch_threads=1",
    ]
    if filt == "morec":
        over += [
            f"filter.reward_path={reward_path.resolve()}",
            f"filter.rollout_batch={args.morec_rollout_batch}",
        ]
        if args.morec_rollout_length is not None:
            over.append(f"filter.rollout_length={args.morec_rollout_length}")
    if run_dir.exists() and any(run_dir.glob("checkpoints*")):
        over = [f"resume={run_dir}"]
    else:
        over.append(f"hydra.run.dir={run_dir}")
    cmd = [sys.executable, "-m", "robolearn.offline", *over]
    print("$ python -m robolearn.offline", " ".join(over), flush=True)
    subprocess.run(cmd, check=False)
    return run_dir


def sweep(args: argparse.Namespace) -> None:
    """Every (algo, filter, seed) run, resumable; finished runs' small files copied to --results."""
    from concurrent.futures import ThreadPoolExecutor

    model_path, reward_path = prep(args)
    todo = [
        (algo, filt, seed)
        for seed in range(args.seeds)
        for algo, filt in METHODS
        if not args.only or f"{algo}_{filt}" in args.only
    ]

    def one(job: tuple[str, str, int]) -> None:
        run_dir = _run_one(args, *job, model_path, reward_path)
        if (run_dir / "summary.json").is_file():
            dest = args.results / "runs" / slug(args.dataset) / run_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            for name in KEEP_FILES:
                if (run_dir / name).is_file():
                    shutil.copy2(run_dir / name, dest / name)

    # Runs are separate processes (one torch thread each): --jobs of them at a time.
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, todo))


def _method(algo: str, filt: str) -> str:
    return algo.upper() if filt == "none" else f"MOREC-{algo.upper()}"


def summary(args: argparse.Namespace) -> dict[str, Any]:
    """Normalised-score IQM/mean with 95% bootstrap intervals per dataset and method, P(MOREC-X > X)."""
    from robolearn.report.stats import (
        aggregate_iqm,
        aggregate_mean,
        interval_estimate,
        probability_of_improvement,
        score_set,
    )

    scores: dict[str, dict[str, list[float]]] = {}
    for summ in sorted((args.results / "runs").glob("*/*/summary.json")):
        data = json.loads(summ.read_text())
        name = summ.parent.name  # <algo>_<filter>_seed<s>
        algo, filt, _ = name.split("_")
        value = data.get("eval/normalized_score")
        if value is None:
            continue
        scores.setdefault(summ.parent.parent.name, {}).setdefault(_method(algo, filt), []).append(
            float(value)
        )
    rows: list[dict[str, Any]] = []
    for ds, per in sorted(scores.items()):
        for method, vals in sorted(per.items()):
            row: dict[str, Any] = {"dataset": ds, "method": method, "n": len(vals), "scores": vals}
            if len(vals) >= 2:
                for key, agg in (("iqm", aggregate_iqm), ("mean", aggregate_mean)):
                    est = interval_estimate(agg, score_set([vals]))
                    row[key] = {"point": est.point, "low": est.low, "high": est.high}
            rows.append(row)
        for algo in ("MOPO", "MOBILE"):
            x, y = per.get(f"MOREC-{algo}"), per.get(algo)
            if x and y and len(x) >= 2 and len(y) >= 2:
                est = interval_estimate(probability_of_improvement, score_set([x]), score_set([y]))
                rows.append(
                    {
                        "dataset": ds,
                        "method": f"P(MOREC-{algo} > {algo})",
                        "p": [est.point, est.low, est.high],
                    }
                )
    lines = [
        "| dataset | method | runs | IQM [95% CI] | mean [95% CI] | scores |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "p" in r:
            p = r["p"]
            lines.append(f"| {r['dataset']} | {r['method']} | | {p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}] | | |")
            continue

        def fmt(e: dict[str, float] | None) -> str:
            return "n/a" if e is None else f"{e['point']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"

        shown = ", ".join(f"{v:.1f}" for v in r["scores"])
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['n']} | {fmt(r.get('iqm'))} | {fmt(r.get('mean'))} | {shown} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    _plot_generalisation(args.results)
    out = {"rows": rows, "machine": cpu_info(), "versions": package_versions()}
    atomic_write_json(args.results / "summary.json", out)
    atomic_write_text(args.results / "summary.md", text)
    return out


def _plot_generalisation(results: Path) -> None:
    """One PNG per generalisation JSON: the open-loop error curve of each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for path in sorted(results.glob("generalisation_*.json")):
        data = json.loads(path.read_text())
        fig, ax = plt.subplots(figsize=(5, 3.4))
        labels = {"morec": "MOREC choice", "random": "random elite sample", "mean": "elites' mean"}
        for key, label in labels.items():
            curve = data["open_loop_curve_mean"][key]
            ax.plot(range(1, len(curve) + 1), curve, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("open-loop step")
        ax.set_ylabel("RMSE (training-state std units)")
        ax.set_title(f"{Path(data['dataset']).name} model on {Path(data['ood']).name} (s, a)", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path.with_suffix(".png"), dpi=110)
        plt.close(fig)


def _write(args: argparse.Namespace, name: str, result: dict[str, Any]) -> None:
    result = {**result, "machine": cpu_info(), "versions": package_versions(), "command": " ".join(sys.argv)}
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / name, result)


def main() -> None:
    """Parse the sub-command and run it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", required=True, help="minari id or dataset folder (the training data)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=Path, default=DEFAULT_OUT)
        p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
        p.add_argument(
            "--model-epochs", type=int, default=30, help="cap on the ensemble's epochs (loop default 100)"
        )
        p.add_argument("--model-steps", type=int, default=None, help="cap on the ensemble's gradient steps")
        p.add_argument("--set", nargs="*", default=[], help="filter config overrides, e.g. learn.rounds=2000")
        p.add_argument("--samples", type=int, default=2, help="samples per elite (official 2)")

    p = sub.add_parser("prep")
    common(p)
    p = sub.add_parser("generalisation")
    common(p)
    p.add_argument(
        "--ood", required=True, help="dataset whose (s, a) pairs are out of the training distribution"
    )
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--segments", type=int, default=200)
    p.add_argument("--horizon", type=int, default=50)
    p = sub.add_parser("throughput")
    common(p)
    p.add_argument("--batch", type=int, default=2000, help="rollouts per round (official MOREC 2000)")
    p.add_argument("--horizon", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("sweep")
    common(p)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument(
        "--rollout-batch", type=int, default=5000, help="MOPO/MOBILE starts per round (paper 50000)"
    )
    p.add_argument("--morec-rollout-batch", type=int, default=500, help="MOREC starts per round (paper 2000)")
    p.add_argument("--morec-rollout-length", type=int, default=None, help="override MOREC's 100")
    p.add_argument("--only", nargs="*", default=[], help="e.g. mopo_none mopo_morec")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p = sub.add_parser("summary")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args()
    {
        "prep": prep,
        "generalisation": generalisation,
        "throughput": throughput,
        "sweep": sweep,
        "summary": summary,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
