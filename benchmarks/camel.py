"""CAMEL-TD3 vs TD3: the paper's claims with the statistics, at two budgets.

    python benchmarks/camel.py --budget 100k [--max-minutes M] [--report-only]     # issue 20's design
    python benchmarks/camel.py [--seeds 5] [--steps 20000] [--jobs 2]               # the 20k history

--budget 100k (docs/camel.md, "The 100k benchmark"): Hopper-v5 (6 seeds), Walker2d-v5 and Ant-v5
(3 seeds each), 100,000 env steps per run, eps 1 -> 0 over the first 40%, learning_starts 5000 for
every arm. Arms: td3; camel (method.prior=best); camel_expert (the mask centred on a TD3 expert the
benchmark trains once per env, --expert-steps, in a fixed folder); camel_negated (the best prior with
its action negated, written under <results-dir>/priors/); on Hopper the masked_replay ablation
camel_raw and camel_drop (skipped with a note while the method config has no masked_replay key).

A simple job queue runs `python -m robolearn.train` two at a time (--jobs), one torch thread each,
each run in a fixed folder <out>/runs/<env>/<arm>/seed_<n>, so a killed sweep resumes: a run whose
small files (summary.json, metrics.jsonl, config.yaml) are under <results-dir>/<env>/<arm>/seed_<n>/
is done and never re-run, a finished run folder has its small files copied there, a half-done one
continues with resume=<run dir>. --max-minutes M stops launching runs after M minutes (the running
ones finish, or with --at-deadline checkpoint are stopped with a checkpoint). The tables are rebuilt
from the small files alone (<results-dir>/camel_100k.md and .json, curve_<env>.png), so a later
session on a fresh machine continues the sweep or, with --report-only, only rebuilds the tables.

Metrics: primary, the area under the training-return curve (SB3's rollout/ep_rew_mean, the agent
as it acts, mask and exploration noise included; trapezoids over env steps divided by the run's
steps, so the AUC is the curve's mean height); second, the final deterministic evaluation of the
standalone actor (summary.json's eval/mean_return); also the evaluation curve's AUC. IQM and 95%
stratified-bootstrap intervals from robolearn.report.stats, P(arm > TD3), the issue's claim held or
lost with its interval, the masked_replay ablation on Hopper and the time each env took.

--budget 20k (the default, kept as history): Hydra sweeps through `python -m robolearn.train`
(local launcher, fixed sweep dirs, so an interrupted benchmark resumes where it stopped), then:
  * per env: IQM final return, IQM area under the curve of the deterministic evaluation of the
    standalone actor, of the deterministic agent acting through its mask while eps > 0
    (method.eval_mask; the standalone actor after), and of the training-episode return curve (the
    agent as it acts, mask and exploration noise included), with 95% stratified-bootstrap CIs, and
    P(CAMEL > TD3) on the three AUCs (a "better" claim holds when all three intervals lie above
    0.5, "not worse" when all three reach 0.5);
  * the claims, each reported as held or lost: CAMEL better on Hopper and Ant; not worse on
    Walker2d (weak prior); with a negated (bad) prior Pendulum still reaches >= -400 once eps is 0;
    MountainCarContinuous as the fast sanity case;
  * wall-clock per env step of CAMEL-TD3 vs TD3, timed side by side in this process;
  * the full report (tables, curves, HTML) from `python -m robolearn.report` over all runs.
Writes <out>/camel.md and <out>/camel.json and prints the markdown.

Both modes use the RL Zoo's TD3 values for each env except learning_starts (20k: 1000, since the
zoo's 10k would spend half the budget on uniform random actions; 100k: 5000) and 256-256 networks
(the TD3 authors' current implementation; the zoo's 400-300 costs twice the compute); CAMEL uses
method.radius=0.3, and at 20k method.eps_fraction=0.5 and the env's best shipped prior (a negated
one for Pendulum).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from robolearn.errors import UserError, report_user_errors
from robolearn.report.collect import Run, collect
from robolearn.report.stats import (
    aggregate_iqm,
    interval_estimate,
    probability_of_improvement,
    score_set,
    trim_mean,
)
from robolearn.runs.metrics import read_metrics
from robolearn.utils.sysinfo import cpu_info, package_versions

MUJOCO = ["Hopper-v5", "Ant-v5", "Walker2d-v5"]
COMMON = [
    "agent=td3",
    "agent.learning_starts=1000",
    "agent.policy_kwargs.net_arch=[256,256]",
    "eval.episodes=5",
    "logger.progress=none",
]
CAMEL = ["method=camel", "method.radius=0.3", "method.eps_fraction=0.5", "method.eval_mask=true"]


def sweep(out: Path, name: str, args: list[str], jobs: int) -> None:
    """Run (or resume) one Hydra sweep into out/runs/<name>."""
    cmd = [
        sys.executable,
        "-m",
        "robolearn.train",
        "-m",
        *args,
        f"hydra.sweep.dir={out / 'runs' / name}",
        "hydra/launcher=local",
        f"hydra.launcher.n_jobs={jobs}",
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=False)


def _auc(run: Run) -> float:
    """Mean deterministic evaluation return of the standalone actor over training."""
    return float(np.mean(run.eval_returns)) if run.eval_returns else float("nan")


def _train_auc(run: Run) -> float:
    """Mean training-episode return (the agent as it acts: mask and exploration noise included,
    SB3's 100-episode running mean) over training, as CleanRL-style learning curves plot it."""
    rows = read_metrics(run.path / "metrics.jsonl")
    values = [float(r["rollout/ep_rew_mean"]) for r in rows if "rollout/ep_rew_mean" in r]
    return float(np.mean(values)) if values else float("nan")


def _masked_auc(run: Run) -> float:
    """Mean deterministic evaluation return of the agent as it acts: through the mask while eps > 0
    (CAMEL's eval/masked/mean_return), the standalone actor after (and always, for TD3)."""
    rows = read_metrics(run.path / "metrics.jsonl")
    values = [
        float(r.get("eval/masked/mean_return", r["eval/mean_return"]))
        for r in rows
        if "eval/mean_return" in r
    ]
    return float(np.mean(values)) if values else float("nan")


def _per_method(runs: list[Run], env: str) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for run in runs:
        if run.env_id == env:
            out.setdefault(run.method, []).append(run)
    return out


def _estimate(values: list[float]) -> dict[str, float]:
    est = interval_estimate(aggregate_iqm, score_set([values]))
    return {"iqm": est.point, "low": est.low, "high": est.high, "n": len(values)}


def summarise(runs: list[Run], env: str) -> dict[str, Any]:
    """Final-return and AUC estimates per method, and P(CAMEL > TD3) on AUC, for one env."""
    methods = _per_method(runs, env)
    row: dict[str, Any] = {"env": env}
    for method, rs in sorted(methods.items()):
        row[method] = {
            "final": _estimate([r.final_return for r in rs]),
            "auc": _estimate([_auc(r) for r in rs]),
            "train_auc": _estimate([_train_auc(r) for r in rs]),
            "masked_auc": _estimate([_masked_auc(r) for r in rs]),
        }
    if "camel-td3" in methods and "td3" in methods:
        for key, fn in (
            ("p_improve_auc", _auc),
            ("p_improve_train_auc", _train_auc),
            ("p_improve_masked_auc", _masked_auc),
        ):
            x = score_set([[fn(r) for r in methods["camel-td3"]]])
            y = score_set([[fn(r) for r in methods["td3"]]])
            est = interval_estimate(probability_of_improvement, x, y)
            row[key] = {"point": est.point, "low": est.low, "high": est.high}
    return row


def time_per_step(steps: int, rounds: int) -> dict[str, Any]:
    """Seconds per env step of TD3 and CAMEL-TD3 on Hopper-v5, alternating rounds in this process."""
    from robolearn.agents import build_agent
    from robolearn.config.validate import compose_config
    from robolearn.envs import make_vec_env
    from robolearn.methods import configure_method, method_algorithm

    timings: dict[str, list[float]] = {"td3": [], "camel-td3": []}
    models = {}
    for label, extra in (("td3", []), ("camel-td3", CAMEL)):
        cfg = compose_config("train", ["env=Hopper-v5", *COMMON, *extra, f"steps={10**9}"])
        venv = make_vec_env(cfg.env, n_envs=1, seed=0)
        algorithm, kwargs = method_algorithm(cfg)
        model = build_agent(cfg.agent, venv, seed=0, device="cpu", algorithm=algorithm, **kwargs)
        configure_method(cfg, model, venv)
        model.learn(total_timesteps=1500)  # past learning_starts: every step now trains
        models[label] = model
    for _ in range(rounds):
        for label, model in models.items():
            start = time.perf_counter()
            model.learn(total_timesteps=steps, reset_num_timesteps=False)
            timings[label].append((time.perf_counter() - start) / steps)
    ratios = [c / t for c, t in zip(timings["camel-td3"], timings["td3"], strict=True)]
    return {
        "td3_s_per_step": float(np.median(timings["td3"])),
        "camel_s_per_step": float(np.median(timings["camel-td3"])),
        "ratio": float(np.median(ratios)),
        "ratios": ratios,
        "note": "eps stays near 1 here (total steps 1e9), so every step is masked: the worst case",
    }


# ----------------------------------------------------------------------------------------------------
# --budget 100k: issue 20's design, a resumable job queue over `python -m robolearn.train`
# ----------------------------------------------------------------------------------------------------

RESULTS_DIR = Path(__file__).resolve().parent / "results" / "camel"
SMALL_FILES = ("summary.json", "metrics.jsonl", "config.yaml")
ENVS_100K = ("Hopper-v5", "Walker2d-v5", "Ant-v5")
ABLATION_ENV = "Hopper-v5"
EXPERT_SEED = 100  # apart from the arms' seeds 0..n-1
TRAIN_RETURN = "rollout/ep_rew_mean"
EVAL_RETURN = "eval/mean_return"
ARMS = ("td3", "camel", "camel_expert", "camel_negated", "camel_raw", "camel_drop")
ABLATION_ARMS = ("camel", "camel_raw", "camel_drop")  # masked_replay = mapped (the default), raw, drop
# (env, kind): "better" holds when P(CAMEL > TD3)'s interval lies above 0.5, "not worse" when it reaches 0.5.
CLAIM_PARTS = (("Hopper-v5", "better"), ("Ant-v5", "better"), ("Walker2d-v5", "not worse"))
CLAIM_TEXT = "CAMEL improves sample efficiency over TD3 on Hopper and Ant and is not worse on Walker2d"


@dataclass(frozen=True)
class Budget:
    """The settings every arm of the 100k benchmark shares."""

    steps: int = 100_000
    learning_starts: int = 5000
    eps_fraction: float = 0.4
    radius: float = 0.3
    expert_steps: int = 300_000
    eval_episodes: int = 10

    def common(self, steps: int) -> list[str]:
        """Overrides of every run (TD3 and CAMEL alike) of `steps` env steps."""
        return [
            f"steps={steps}",
            "agent=td3",
            f"agent.learning_starts={self.learning_starts}",
            "agent.policy_kwargs.net_arch=[256,256]",
            f"eval.every={max(steps // 20, 1)}",
            f"eval.episodes={self.eval_episodes}",
            f"checkpoint.every={max(steps // 10, 1)}",
            "torch_threads=1",
            "logger.progress=lines",
            "logger.progress_every_s=120",
        ]

    def camel(self) -> list[str]:
        """Overrides of every CAMEL arm."""
        return [
            "method=camel",
            f"method.radius={self.radius}",
            f"method.eps_fraction={self.eps_fraction}",
            "method.eval_mask=true",
        ]


@dataclass(frozen=True)
class Arm:
    """One arm: its overrides beyond Budget.common, and what it needs before it can run."""

    name: str
    overrides: tuple[str, ...] = ()
    needs_expert: bool = False
    option: str | None = None  # a method key the arm sets; skipped while the method config lacks it


@dataclass(frozen=True)
class Job:
    """One training run in its fixed folder, with the folder its small files are copied to."""

    env: str
    arm: str
    seed: int
    steps: int
    overrides: tuple[str, ...]
    run_dir: Path
    result_dir: Path
    needs_expert: bool = False

    @property
    def label(self) -> str:
        """env/arm/seed_n, as the logs and the results folder name it."""
        return f"{self.env}/{self.arm}/seed_{self.seed}" if self.arm != "expert" else f"{self.env}/expert"


def arms_for(env: str, budget: Budget, expert_dir: Path, negated_prior: Path | None) -> list[Arm]:
    """The arms run on `env` (the masked_replay ablation only on Hopper)."""
    camel = budget.camel()
    arms = [
        Arm("td3"),
        Arm("camel", (*camel, "method.prior=best")),
        Arm("camel_expert", (*camel, f"method.prior=expert:{expert_dir}"), needs_expert=True),
    ]
    if negated_prior is not None:
        arms.append(Arm("camel_negated", (*camel, f"method.prior={negated_prior}")))
    if env == ABLATION_ENV:
        for mode in ("raw", "drop"):
            arms.append(
                Arm(
                    f"camel_{mode}",
                    (*camel, "method.prior=best", f"method.masked_replay={mode}"),
                    option="masked_replay",
                )
            )
    return arms


def method_keys() -> set[str]:
    """The keys method=camel accepts today (H1's masked_replay arrives with robolearn/config/schema.py)."""
    from robolearn.config.validate import compose_config

    cfg = compose_config("train", ["env=Hopper-v5", "agent=td3", "method=camel"])
    return {str(k) for k in cfg.method}


def _completed(summary_path: Path, steps: int) -> bool:
    """A summary.json of a run that completed at least `steps` env steps."""
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return summary.get("status") == "completed" and int(summary.get("steps", 0)) >= steps


def run_state(job: Job) -> str:
    """What the sweep does with a job: 'done' (its small files are in the results: never re-run),
    'finished' (its run folder completed: copy the small files), 'resume' (a half-done run folder:
    resume=<run dir>) or 'new'."""
    if _completed(job.result_dir / "summary.json", job.steps):
        return "done"
    if _completed(job.run_dir / "summary.json", job.steps):
        return "finished"
    if (job.run_dir / "config.yaml").is_file():
        return "resume"
    return "new"


def copy_small_files(run_dir: Path, result_dir: Path) -> list[str]:
    """Copy a finished run's small files into the results (summary.json last, since its presence is
    what marks the run as done)."""
    result_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in sorted(SMALL_FILES, key=lambda n: n == "summary.json"):
        src = run_dir / name
        if src.is_file():
            tmp = result_dir / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, result_dir / name)
            copied.append(name)
    return copied


def job_command(job: Job) -> list[str]:
    """The training command: resume=<run dir> for a half-done run, the full overrides otherwise."""
    base = [sys.executable, "-m", "robolearn.train"]
    if run_state(job) == "resume":
        return [*base, f"resume={job.run_dir}", f"steps={job.steps}", "logger.progress=lines"]
    return [*base, f"env={job.env}", f"seed={job.seed}", *job.overrides, f"hydra.run.dir={job.run_dir}"]


def write_negated_prior(env: str, out_root: Path) -> Path:
    """The env's best prior with its action negated, as a prior file of its own under out_root (the
    generalisation of Pendulum's hand-written pendulum_negated): the base program's policy becomes
    base_policy and a new policy returns its negation. Negation mirrors the action about the centre
    of the bounds only when they are symmetric, so other bounds are refused."""
    from robolearn.llm.checker import check_source
    from robolearn.llm.priors import find_prior, prior_code, prior_path, write_prior
    from robolearn.llm.screen import action_bounds, make_env
    from robolearn.methods.camel_prior import best_prior_name

    base = find_prior(best_prior_name(env), env)
    probe_env = make_env(env, base.env_kwargs)
    low, high = action_bounds(probe_env)
    probe_env.close()
    if not np.allclose(low, -high):
        raise UserError(f"camel_negated: {env}'s action bounds are not symmetric; negation would leave them")
    code, renamed = re.subn(r"^def policy\(", "def base_policy(", prior_code(base), flags=re.M)
    if renamed != 1 or "base_policy" in prior_code(base):
        raise UserError(f"camel_negated: cannot wrap {base.path} (expected one top-level def policy)")
    if not re.search(r"^import numpy as np$", code, flags=re.M):
        code = "import numpy as np\n" + code
    code += "\n\ndef policy(obs):\n    return -1.0 * np.asarray(base_policy(obs), dtype=np.float64)\n"
    reasons = check_source(code)
    if reasons:
        raise UserError(f"camel_negated: the negated {base.name} fails the checker: {reasons[0]}")
    name = f"{base.name}_negated"
    path = prior_path(out_root, env, name)
    header = {
        "robolearn-prior": "1",
        "env": env,
        "name": name,
        "origin": "generated",
        "label": f"deliberately bad (known-bad prior for benchmarks): {base.name} with its action negated,"
        " written by benchmarks/camel.py from the shipped prior",
        "model": base.header["model"],
        "prompt_sha256": base.header["prompt_sha256"],
        "created": time.strftime("%Y-%m-%d", time.gmtime()),
        "negated_from": str(base.name),
    }
    if base.header.get("env_kwargs"):
        header["env_kwargs"] = base.header["env_kwargs"]
    if path.is_file():
        from robolearn.llm.priors import read_prior

        if prior_code(read_prior(path)).strip() == code.strip():
            return path  # keep the existing file (and its date)
    return write_prior(path, header, code)


def plan_jobs(
    envs: Sequence[str],
    seeds: dict[str, int],
    budget: Budget,
    out: Path,
    results: Path,
    negated: dict[str, Path | None],
    known_keys: set[str],
) -> tuple[list[Job], list[str]]:
    """Every job of the sweep, seed-major (each seed's arms side by side, so a sweep cut short still
    compares arms on the same seeds), and a note for each arm skipped for a missing method key."""
    notes: list[str] = []
    by_seed: list[Job] = []
    for env in envs:
        for arm in arms_for(env, budget, out / "experts" / env, negated.get(env)):
            if arm.option is not None and arm.option not in known_keys:
                notes.append(
                    f"{env}/{arm.name}: skipped, method=camel has no {arm.option} option yet"
                    " (configs/method/camel.yaml / CamelConfig)"
                )
                continue
            for seed in range(seeds[env]):
                by_seed.append(
                    Job(
                        env=env,
                        arm=arm.name,
                        seed=seed,
                        steps=budget.steps,
                        overrides=(*budget.common(budget.steps), *arm.overrides),
                        run_dir=out / "runs" / env / arm.name / f"seed_{seed}",
                        result_dir=results / env / arm.name / f"seed_{seed}",
                        needs_expert=arm.needs_expert,
                    )
                )
    by_seed.sort(key=lambda j: (j.seed, envs.index(j.env), ARMS.index(j.arm)))
    return by_seed, notes


def expert_job(env: str, budget: Budget, out: Path, results: Path) -> Job:
    """The env's TD3 expert (trained once, reused by every camel_expert run)."""
    return Job(
        env=env,
        arm="expert",
        seed=EXPERT_SEED,
        steps=budget.expert_steps,
        overrides=tuple(budget.common(budget.expert_steps)),
        run_dir=out / "experts" / env,
        result_dir=results / env / "expert",
    )


def jobs_to_run(jobs: list[Job], experts: dict[str, Job]) -> list[Job]:
    """The queue: each env's expert first when a camel_expert run still needs it (its model is read
    from the run folder, so a fresh machine trains it again, with the same seed and settings), then
    the jobs not done yet, in order."""
    pending = [j for j in jobs if run_state(j) != "done"]
    needed = [
        experts[env]
        for env in experts
        if any(j.needs_expert and j.env == env for j in pending)
        and not _completed(experts[env].run_dir / "summary.json", experts[env].steps)
    ]
    return [*needed, *pending]


def _expert_ready(job: Job, experts: dict[str, Job]) -> bool:
    expert = experts.get(job.env)
    return not job.needs_expert or (
        expert is not None and _completed(expert.run_dir / "summary.json", expert.steps)
    )


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen[bytes]
    log: TextIO
    started: float


@dataclass
class QueueOutcome:
    """What one call of run_queue did."""

    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


def _finish(job: Job, outcome: QueueOutcome, code: int | None) -> None:
    if _completed(job.run_dir / "summary.json", job.steps):
        if job.arm == "expert" and (job.result_dir / "summary.json").is_file():
            # Retrained on another machine: the same seed need not give a bit-identical expert.
            old = json.loads((job.result_dir / "summary.json").read_text(encoding="utf-8"))
            new = json.loads((job.run_dir / "summary.json").read_text(encoding="utf-8"))
            if old.get(EVAL_RETURN) != new.get(EVAL_RETURN):
                print(
                    f"note: {job.label} retrained: final return {new.get(EVAL_RETURN)}, the results held"
                    f" {old.get(EVAL_RETURN)}; the results now hold the new expert's files",
                    flush=True,
                )
        copy_small_files(job.run_dir, job.result_dir)
        outcome.finished.append(job.label)
        print(f"done: {job.label} -> {job.result_dir}", flush=True)
    elif code in (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGTERM, -signal.SIGINT):
        outcome.stopped.append(job.label)
        print(f"stopped with a checkpoint: {job.label} (the next sweep resumes it)", flush=True)
    else:
        error = job.run_dir / "error.txt"
        reason = error.read_text().strip().splitlines()[-1] if error.is_file() else f"exit code {code}"
        outcome.failed.append(f"{job.label}: {reason}")
        print(f"FAILED: {job.label}: {reason} (log: {job.run_dir}.log)", flush=True)


def run_queue(
    queue: list[Job],
    experts: dict[str, Job],
    n_jobs: int,
    max_minutes: float | None,
    at_deadline: str,
) -> QueueOutcome:
    """Run the queue, n_jobs at a time: a job starts when a slot is free and (camel_expert) its
    env's expert is ready; past max_minutes nothing new starts and, with at_deadline=checkpoint, the
    running jobs are stopped with a checkpoint. SIGINT/SIGTERM stop the runs with a checkpoint."""
    outcome = QueueOutcome()
    pending = list(queue)
    running: list[_Running] = []
    started = time.monotonic()
    deadline = started + max_minutes * 60 if max_minutes is not None else math.inf
    stopping = {"asked": False, "sent": False}

    def ask_stop(signum: int, _frame: Any) -> None:
        print(f"{signal.Signals(signum).name}: stopping the running jobs with a checkpoint", flush=True)
        stopping["asked"] = True
        for r in running:
            r.proc.send_signal(signal.SIGTERM)
        stopping["sent"] = True

    previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while pending or running:
            for r in list(running):
                code = r.proc.poll()
                if code is None:
                    continue
                r.log.close()
                running.remove(r)
                minutes = (time.monotonic() - r.started) / 60
                print(f"[{minutes:.1f} min] ", end="", flush=True)
                _finish(r.job, outcome, code)
            past = time.monotonic() >= deadline
            if past and at_deadline == "checkpoint" and not stopping["sent"] and running:
                print("--max-minutes reached: stopping the running jobs with a checkpoint", flush=True)
                for r in running:
                    r.proc.send_signal(signal.SIGTERM)
                stopping["sent"] = True
            if not (past or stopping["asked"]):
                while len(running) < n_jobs:
                    ready = next((j for j in pending if _expert_ready(j, experts)), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    running.append(_launch(ready))
            if not running:
                break  # the rest is past the deadline, asked to stop, or waits on a failed expert
            time.sleep(1.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    outcome.not_started = [j.label for j in pending]
    return outcome


def _launch(job: Job) -> _Running:
    state = run_state(job)
    cmd = job_command(job)
    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(f"{job.run_dir}.log", "a", encoding="utf-8")  # noqa: SIM115 (closed when the job ends)
    log.write(f"$ {' '.join(cmd[1:])}\n")
    log.flush()
    print(f"start ({state}): {job.label}", flush=True)
    # Its own session: a Ctrl-C on the terminal reaches the runs only through ask_stop, once.
    proc = subprocess.Popen(
        ["nice", "-n", "15", *cmd] if shutil.which("nice") else cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return _Running(job, proc, log, time.monotonic())


# -- the tables, from the small files alone ----------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One finished run as the results folder holds it."""

    env: str
    arm: str
    seed: int
    summary: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def steps(self) -> int:
        """Env steps the run trained for."""
        return int(self.summary["steps"])


def curve_auc(rows: list[dict[str, Any]], key: str, total_steps: int) -> float:
    """Area under a logged curve divided by total_steps (the curve's mean height over training):
    trapezoids between log points, the first value held back to step 0 and the last to total_steps."""
    points = sorted((int(r["step"]), float(r[key])) for r in rows if key in r and "step" in r)
    points = [(s, v) for s, v in points if math.isfinite(v)]
    if not points or total_steps <= 0:
        return float("nan")
    steps = [0, *(s for s, _ in points), max(total_steps, points[-1][0])]
    values = [points[0][1], *(v for _, v in points), points[-1][1]]
    area = sum((steps[i + 1] - steps[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(steps) - 1))
    return float(area / steps[-1])


def load_results(results: Path) -> list[Result]:
    """Every finished run under results/<env>/<arm>/seed_<n>/ (experts excluded)."""
    out = []
    for path in sorted(results.glob("*/*/seed_*/summary.json")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("status") != "completed":
            continue
        seed_dir = path.parent
        out.append(
            Result(
                env=seed_dir.parent.parent.name,
                arm=seed_dir.parent.name,
                seed=int(seed_dir.name.removeprefix("seed_")),
                summary=summary,
                rows=read_metrics(seed_dir / "metrics.jsonl"),
            )
        )
    return out


def _scores(runs: list[Result]) -> dict[str, list[float]]:
    return {
        "train_auc": [curve_auc(r.rows, TRAIN_RETURN, r.steps) for r in runs],
        "final": [float(r.summary[EVAL_RETURN]) for r in runs],
        "eval_auc": [curve_auc(r.rows, EVAL_RETURN, r.steps) for r in runs],
    }


def _p_improve(x: list[float], y: list[float]) -> dict[str, float]:
    est = interval_estimate(probability_of_improvement, score_set([x]), score_set([y]))
    return {"point": est.point, "low": est.low, "high": est.high}


def _prior_used(runs: list[Result]) -> str:
    """The prior file stems the arm's runs used (camel/prior_status: 'ok (<path>)' or 'ok (expert)')."""
    names = set()
    for r in runs:
        status = str(r.summary.get("camel/prior_status", ""))
        match = re.match(r"ok \((.*)\)$", status)
        names.add(Path(match.group(1)).stem if match else (status or "-"))
    return ", ".join(sorted(names))


def _env_order(env: str) -> tuple[int, str]:
    return (ENVS_100K.index(env) if env in ENVS_100K else len(ENVS_100K), env)


def build_tables(results: list[Result], expert_summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per env and arm: IQM [95% CI] of the three scores, P(arm > TD3), the claim, the ablation and
    the time each env took, all from the results' small files."""
    envs: dict[str, Any] = {}
    for env in sorted({r.env for r in results}, key=_env_order):
        by_arm: dict[str, list[Result]] = {}
        for r in results:
            if r.env == env:
                by_arm.setdefault(r.arm, []).append(r)
        arms: dict[str, Any] = {}
        scores = {arm: _scores(runs) for arm, runs in by_arm.items()}
        for arm in sorted(by_arm, key=lambda a: ARMS.index(a) if a in ARMS else len(ARMS)):
            runs = by_arm[arm]
            arms[arm] = {
                "n": len(runs),
                "seeds": sorted(r.seed for r in runs),
                "steps": sorted({r.steps for r in runs}),
                "prior": _prior_used(runs) if arm != "td3" else "-",
                **{k: _estimate(v) for k, v in scores[arm].items()},
                "wall_time_s": float(sum(float(r.summary.get("wall_time_s", 0.0)) for r in runs)),
            }
            if arm != "td3" and "td3" in scores:
                arms[arm]["p_vs_td3"] = {
                    k: _p_improve(scores[arm][k], scores["td3"][k]) for k in ("train_auc", "final")
                }
            if env == ABLATION_ENV and arm in ABLATION_ARMS[1:] and "camel" in scores:
                arms[arm]["p_vs_mapped"] = {
                    k: _p_improve(scores[arm][k], scores["camel"][k]) for k in ("train_auc", "final")
                }
        expert = expert_summaries.get(env)
        runs_s = sum(a["wall_time_s"] for a in arms.values())
        expert_s = float(expert.get("wall_time_s", 0.0)) if expert else 0.0
        envs[env] = {
            "arms": arms,
            "expert": {
                "steps": expert.get("steps"),
                "final": expert.get(EVAL_RETURN),
                "wall_time_s": expert_s,
            }
            if expert
            else None,
            "run_time_s": runs_s + expert_s,
        }
    claim_parts = []
    for env, kind in CLAIM_PARTS:
        camel = envs.get(env, {}).get("arms", {}).get("camel", {})
        p = camel.get("p_vs_td3", {}).get("train_auc")
        if p is None:
            claim_parts.append({"env": env, "kind": kind, "held": None, "p": None})
            continue
        held = p["low"] > 0.5 if kind == "better" else p["high"] >= 0.5
        claim_parts.append({"env": env, "kind": kind, "held": held, "p": p})
    decided = all(part["held"] is not None for part in claim_parts)
    return {
        "envs": envs,
        "claim": {
            "text": CLAIM_TEXT,
            "held": all(part["held"] for part in claim_parts) if decided else None,
            "parts": claim_parts,
        },
    }


def _cell(e: dict[str, float]) -> str:
    return f"{e['iqm']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"


def _p_cell(p: dict[str, float] | None) -> str:
    return f"{p['point']:.2f} [{p['low']:.2f}, {p['high']:.2f}]" if p else "-"


def render_tables(tables: dict[str, Any]) -> str:
    """The markdown of build_tables' result."""
    claim = tables["claim"]
    verdict = {True: "**held**", False: "**lost**", None: "not decided (runs missing)"}
    lines = [
        f'Claim: "{claim["text"]}": {verdict[claim["held"]]}.',
        "",
        "| part | held? | P(CAMEL > TD3), training-return AUC [95% CI] |",
        "|---|---|---|",
    ]
    for part in claim["parts"]:
        lines.append(f"| {part['kind']} on {part['env']} | {verdict[part['held']]} | {_p_cell(part['p'])} |")
    lines += [
        "",
        "IQM [95% stratified-bootstrap CI] over seeds. Training-return AUC: the mean height of the"
        " training-episode return curve over the run (primary); final: the standalone actor's"
        " deterministic evaluation at the end; eval AUC: the same evaluation's curve.",
        "",
        "| env | arm | n | training-return AUC | final eval return | eval AUC "
        "| P(> TD3) training AUC | P(> TD3) final | prior |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for env, row in tables["envs"].items():
        for arm, a in row["arms"].items():
            p = a.get("p_vs_td3", {})
            lines.append(
                f"| {env} | {arm} | {a['n']} | {_cell(a['train_auc'])} | {_cell(a['final'])} "
                f"| {_cell(a['eval_auc'])} | {_p_cell(p.get('train_auc'))} | {_p_cell(p.get('final'))} "
                f"| {a['prior']} |"
            )
    ablation = tables["envs"].get(ABLATION_ENV, {}).get("arms", {})
    if any(arm in ablation for arm in ABLATION_ARMS[1:]):
        lines += [
            "",
            f"masked_replay ablation on {ABLATION_ENV} (camel = mapped, the default):",
            "",
            "| masked_replay | n | training-return AUC | final eval return | P(> mapped) training AUC "
            "| P(> mapped) final |",
            "|---|---|---|---|---|---|",
        ]
        for arm in ABLATION_ARMS:
            if arm in ablation:
                a = ablation[arm]
                p = a.get("p_vs_mapped", {})
                mode = "mapped" if arm == "camel" else arm.removeprefix("camel_")
                lines.append(
                    f"| {mode} | {a['n']} | {_cell(a['train_auc'])} | {_cell(a['final'])} "
                    f"| {_p_cell(p.get('train_auc'))} | {_p_cell(p.get('final'))} |"
                )
    lines += [
        "",
        "| env | expert (TD3) final return | run time, all runs (sum) | at 2 runs at a time |",
        "|---|---|---|---|",
    ]
    for env, row in tables["envs"].items():
        expert = row["expert"]
        exp_text = f"{expert['final']:.1f} after {expert['steps']} steps" if expert else "-"
        hours = row["run_time_s"] / 3600
        lines.append(f"| {env} | {exp_text} | {hours:.2f} h | about {hours / 2:.2f} h |")
    return "\n".join(lines)


def plot_curves(results: list[Result], out: Path, points: int = 50) -> list[Path]:
    """curve_<env>.png: the training-return curve per arm, IQM over seeds on a common step grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for env in sorted({r.env for r in results}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for arm in ARMS:
            runs = [r for r in results if r.env == env and r.arm == arm]
            if not runs:
                continue
            curves = []
            grid = np.linspace(0, min(r.steps for r in runs), points)
            for r in runs:
                pts = sorted((int(x["step"]), float(x[TRAIN_RETURN])) for x in r.rows if TRAIN_RETURN in x)
                if pts:
                    curves.append(np.interp(grid, [s for s, _ in pts], [v for _, v in pts]))
            if curves:
                ax.plot(grid, trim_mean(np.stack(curves), 0.25, axis=0), label=f"{arm} (n={len(curves)})")
        ax.set_xlabel("env steps")
        ax.set_ylabel("training return (IQM over seeds)")
        ax.set_title(env)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"curve_{env}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def report_100k(results_dir: Path, write: bool = True) -> str:
    """Rebuild the tables from the small files under results_dir; write camel_100k.md/.json and
    the curves there; return the markdown."""
    results = load_results(results_dir)
    if not results:
        raise UserError(f"no finished runs under {results_dir}; run the sweep first (drop --report-only)")
    experts = {
        p.parent.parent.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(results_dir.glob("*/expert/summary.json"))
    }
    tables = build_tables(results, experts)
    text = render_tables(tables)
    if write:
        (results_dir / "camel_100k.md").write_text(text + "\n")
        (results_dir / "camel_100k.json").write_text(json.dumps(tables, indent=2, default=str) + "\n")
        plot_curves(results, results_dir)
    return text


def main_100k(args: argparse.Namespace) -> None:
    """The 100k sweep (or a slice of it), then the tables from the results folder."""
    results: Path = args.results_dir.resolve()
    if not args.report_only:
        out: Path = args.out.resolve()
        budget = Budget(
            steps=args.steps or 100_000,
            learning_starts=args.learning_starts,
            eps_fraction=args.eps_fraction,
            expert_steps=args.expert_steps,
        )
        seeds = {
            env: args.seeds or (args.hopper_seeds if env == "Hopper-v5" else args.other_seeds)
            for env in args.envs
        }
        negated: dict[str, Path | None] = {
            env: write_negated_prior(env, results / "priors") for env in args.envs
        }
        jobs, notes = plan_jobs(args.envs, seeds, budget, out, results, negated, method_keys())
        for note in notes:
            print("note:", note, flush=True)
        experts = {env: expert_job(env, budget, out, results) for env in args.envs}
        for job in [*experts.values(), *jobs]:
            if run_state(job) == "finished":  # a run that finished after the last copy
                copy_small_files(job.run_dir, job.result_dir)
        queue = jobs_to_run(jobs, experts)
        to_run = sum(j in queue for j in jobs)
        print(
            f"{len(jobs)} runs in the sweep: {len(jobs) - to_run} done, {to_run} to run"
            f" (and {len(queue) - to_run} experts)",
            flush=True,
        )
        outcome = run_queue(queue, experts, args.jobs, args.max_minutes, args.at_deadline)
        for expert in experts.values():
            if _completed(expert.run_dir / "summary.json", expert.steps) and run_state(expert) != "done":
                copy_small_files(expert.run_dir, expert.result_dir)
        print(
            f"this call: {len(outcome.finished)} finished, {len(outcome.stopped)} stopped with a checkpoint,"
            f" {len(outcome.failed)} failed, {len(outcome.not_started)} not started",
            flush=True,
        )
        for line in outcome.failed:
            print("  failed:", line, flush=True)
    print(report_100k(results_dir=results))


def main_20k(args: argparse.Namespace) -> None:
    """The 20k benchmark (history): the sweeps, the timing, the report; print and write the claims table."""
    out: Path = (args.out or Path("outputs/benchmarks/camel")).resolve()
    args.steps = args.steps or 20000
    seed_arg = "seed=" + ",".join(str(s) for s in range(args.seeds or 5))
    started = time.perf_counter()
    if not args.skip_train:
        mujoco = [seed_arg, f"steps={args.steps}", "eval.every=2000", "env=" + ",".join(MUJOCO), *COMMON]
        sweep(out, "td3_mujoco", mujoco, args.jobs)
        sweep(out, "camel_mujoco", [*mujoco, *CAMEL, "method.prior=best"], args.jobs)
        pend = [seed_arg, f"steps={args.pendulum_steps}", "eval.every=1500", "env=Pendulum-v1", *COMMON]
        sweep(out, "td3_pendulum", pend, args.jobs)
        sweep(out, "camel_pendulum_negated", [*pend, *CAMEL, "method.prior=pendulum_negated"], args.jobs)
        car = [seed_arg, f"steps={args.steps}", "eval.every=2000", "env=MountainCarContinuous-v0", *COMMON]
        sweep(out, "td3_mountaincar", car, args.jobs)
        sweep(out, "camel_mountaincar", [*car, *CAMEL, "method.prior=best"], args.jobs)
    train_minutes = (time.perf_counter() - started) / 60

    collection = collect([out / "runs"])
    runs = [run for group in collection.groups for run in group.runs]
    rows = [summarise(runs, env) for env in [*MUJOCO, "Pendulum-v1", "MountainCarContinuous-v0"]]
    timing = time_per_step(args.timing_steps, rounds=3)

    def p_text(row: dict[str, Any], key: str) -> str:
        p = row[key]
        return f"{p['point']:.2f} [{p['low']:.2f}, {p['high']:.2f}]"

    def compare(env: str, strict: bool) -> tuple[bool, str]:
        row = next(r for r in rows if r["env"] == env)
        if "p_improve_auc" not in row:
            return False, "missing runs"
        keys = ("p_improve_train_auc", "p_improve_auc", "p_improve_masked_auc")
        held = all(row[k]["low"] > 0.5 if strict else row[k]["high"] >= 0.5 for k in keys)
        text = (
            f"P(CAMEL > TD3): training-return AUC {p_text(row, keys[0])}, eval AUC {p_text(row, keys[1])}, "
            f"masked-eval AUC {p_text(row, keys[2])}"
        )
        return held, text

    def better(env: str) -> tuple[bool, str]:
        return compare(env, strict=True)

    def not_worse(env: str) -> tuple[bool, str]:
        return compare(env, strict=False)

    pend = next(r for r in rows if r["env"] == "Pendulum-v1").get("camel-td3", {}).get("final")
    claims = [
        ("CAMEL better than TD3 on Hopper-v5 (AUC)", *better("Hopper-v5")),
        ("CAMEL better than TD3 on Ant-v5 (AUC)", *better("Ant-v5")),
        ("CAMEL not worse than TD3 on Walker2d-v5 (AUC)", *not_worse("Walker2d-v5")),
        (
            "negated prior: Pendulum-v1 final IQM >= -400",
            pend is not None and pend["iqm"] >= -400,
            f"final IQM {pend['iqm']:.1f} [{pend['low']:.1f}, {pend['high']:.1f}]"
            if pend
            else "missing runs",
        ),
        ("CAMEL wall-clock per step <= 1.1x TD3", timing["ratio"] <= 1.1, f"ratio {timing['ratio']:.3f}"),
    ]
    cpu = cpu_info()
    budgets = sorted({(run.env_id, int(run.summary["steps"])) for run in runs})
    seeds = sorted({run.seed for run in runs if run.seed is not None})
    lines = [
        f"Machine: {cpu['model']}, {cpu['cores']} cores; seeds {seeds}; steps per env "
        + ", ".join(f"{env} {steps}" for env, steps in budgets)
        + (f"; sweeps took {train_minutes:.0f} min." if not args.skip_train else "."),
        "",
        "| claim | held? | measured |",
        "|---|---|---|",
        *[f"| {c} | {'held' if ok else 'LOST'} | {m} |" for c, ok, m in claims],
        "",
        "| env | method | final IQM [95% CI] | eval AUC IQM [95% CI] | masked-eval AUC IQM [95% CI] "
        "| training-return AUC IQM [95% CI] | n |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(e: dict[str, float]) -> str:
        return f"{e['iqm']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"

    for row in rows:
        for method in ("td3", "camel-td3"):
            if method in row:
                r = row[method]
                lines.append(
                    f"| {row['env']} | {method} | {cell(r['final'])} | {cell(r['auc'])} | {cell(r['masked_auc'])} "
                    f"| {cell(r['train_auc'])} | {r['final']['n']} |"
                )
    lines += [
        "",
        f"Time per env step on Hopper-v5 (training every step): TD3 {timing['td3_s_per_step'] * 1e3:.2f} ms, "
        f"CAMEL-TD3 {timing['camel_s_per_step'] * 1e3:.2f} ms, ratio {timing['ratio']:.3f} ({timing['note']}).",
    ]
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "camel.md").write_text(text + "\n")
    (out / "camel.json").write_text(
        json.dumps(
            {
                "claims": claims,
                "rows": rows,
                "timing": timing,
                "cpu": cpu,
                "versions": package_versions(),
                "args": vars(args),
            },
            indent=2,
            default=str,
        )
    )
    subprocess.run(
        [sys.executable, "-m", "robolearn.report", f"runs={out / 'runs'}", f"out={out / 'report'}"],
        check=False,
    )


def main() -> None:
    """Parse the arguments and run the chosen budget."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", choices=("20k", "100k"), default="20k", help="the design to run")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per env (20k: 5; 100k: every env)")
    parser.add_argument(
        "--steps", type=int, default=None, help="env steps per run (20k: 20000; 100k: 100000)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, default=None, help="run folders (big files)")
    g20 = parser.add_argument_group("--budget 20k")
    g20.add_argument("--pendulum-steps", type=int, default=15000)
    g20.add_argument("--timing-steps", type=int, default=1000)
    g20.add_argument("--skip-train", action="store_true", help="only aggregate existing runs")
    g100 = parser.add_argument_group("--budget 100k")
    g100.add_argument("--envs", nargs="+", default=list(ENVS_100K), choices=ENVS_100K)
    g100.add_argument("--hopper-seeds", type=int, default=6)
    g100.add_argument("--other-seeds", type=int, default=3, help="seeds on Walker2d-v5 and Ant-v5")
    g100.add_argument("--expert-steps", type=int, default=300_000, help="env steps of each TD3 expert")
    g100.add_argument("--learning-starts", type=int, default=5000)
    g100.add_argument("--eps-fraction", type=float, default=0.4)
    g100.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the small files go")
    g100.add_argument("--max-minutes", type=float, default=None, help="launch no run after M minutes")
    g100.add_argument(
        "--at-deadline",
        choices=("finish", "checkpoint"),
        default="finish",
        help="past --max-minutes: let the running runs finish, or stop them with a checkpoint",
    )
    g100.add_argument(
        "--report-only", action="store_true", help="only rebuild the tables from the small files"
    )
    args = parser.parse_args()
    if args.budget == "100k":
        args.out = args.out or Path("outputs/benchmarks/camel_100k")
        report_user_errors(main_100k)(args)
    else:
        main_20k(args)


if __name__ == "__main__":
    main()
