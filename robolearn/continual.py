"""`python -m robolearn.continual sequence=<name> learner=<name> [key=value ...]`: continual MBRL.

Runs a continual model-based RL loop (robolearn.mbrl.continual.loop) over a task sequence
(configs/sequence/<name>.yaml) with one continual learner (configs/learner/<name>.yaml: hypercrl,
hypercrl_noreg, finetune, single, multitask, coreset, ewc, si), writing a resumable run directory
whose summary.json holds the T x T return and prediction-error matrices, retention and forward
transfer (docs/hypercrl.md).

Examples:
    python -m robolearn.continual                                    # HyperCRL on the pendulum sequence
    python -m robolearn.continual sequence=halfcheetah_body learner=finetune seed=1
    python -m robolearn.continual -m learner=hypercrl,finetune seed=0,1,2 hydra.sweep.dir=sweeps/crl
    python -m robolearn.continual resume=<run dir>
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

# Before anything loads torch: OpenMP reads its wait policy once, when it is loaded (robolearn/threads.py).
from robolearn.threads import apply_thread_policy

apply_thread_policy()

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from robolearn.cli import loop_verb, verb_help
from robolearn.config.schema import register_schemas
from robolearn.errors import UserError
from robolearn.resources import configs_dir

VERB = "continual"
# Keys of continual.yaml's `loop` and `model` nodes left null there: filled from the sequence's
# settings file (configs/loop/<sequence>.yaml, else configs/loop/<env id of its first task>.yaml).
SETTINGS_NODES = ("loop", "model")
_KNOWN_TOP = {
    "sequence",
    "sequence_file",
    "learner",
    "loop",
    "model",
    "seed",
    "device",
    "torch_threads",
    "resume",
    "baseline",
    "logger",
    "method",
    "env",
}


def sequence_of(cfg: DictConfig) -> Any:
    """The validated Sequence of a config's `sequence` node (one-line errors naming the field)."""
    from robolearn.mbrl.sequences import parse_sequence

    raw = OmegaConf.to_container(cfg.sequence, resolve=True)
    if not isinstance(raw, dict):
        raise UserError(
            f"sequence={raw} is not a sequence; choose a shipped name or give sequence_file=<yaml>"
        )
    return parse_sequence(raw, str(raw.get("name") or "sequence"))


def settings_file(sequence_name: str, env_id: str) -> Path | None:
    """The loop settings for a sequence: its own file, else its env's (None when neither exists)."""
    folder = configs_dir() / "loop"
    for name in (sequence_name, env_id):
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def complete_config(cfg: DictConfig) -> DictConfig:
    """Validate `cfg` and fill the null loop/model settings from the sequence's settings file.

    Loads (and so validates) the sequence first, so a bad sequence fails before any work.
    """
    from robolearn.mbrl.sequences import load_sequence

    unknown = sorted({str(k) for k in cfg} - _KNOWN_TOP)
    if unknown:
        raise UserError(f"unknown config key {unknown[0]}; keys here: {', '.join(sorted(_KNOWN_TOP))}")
    seed = cfg.get("seed")
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed={seed} is out of range; use an integer >= 0")
    threads = cfg.get("torch_threads")
    if not isinstance(threads, int) or threads < 1:
        raise UserError(f"torch_threads={threads} is out of range; use an integer >= 1")
    if cfg.get("device") not in ("cpu", "cuda", "auto"):
        raise UserError(f"device={cfg.get('device')} is not allowed; choose one of cpu, cuda, auto")
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    assert isinstance(out, DictConfig)
    if out.get("sequence_file") is not None:
        # A user's own file: its content replaces the composed sequence, so the run saves it.
        loaded = load_sequence(str(out.sequence_file))
        with open_dict(out):
            out.sequence = loaded.to_dict()
    sequence = sequence_of(out)
    from robolearn.mbrl.envfns import env_functions

    for task in sequence.tasks:
        env_functions(task.env_id)  # MPC needs the env's torch reward: fail now, not after the random steps
    path = settings_file(sequence.name, sequence.tasks[0].env_id)
    if path is not None:
        defaults = OmegaConf.load(path)
        with open_dict(out):
            for node in SETTINGS_NODES:
                given = OmegaConf.select(out, node, default=None) or {}
                base = OmegaConf.select(defaults, node, default=None) or {}
                for key, value in base.items():
                    if given.get(str(key)) is None:
                        OmegaConf.update(out, f"{node}.{key}", value, force_add=True)
    from robolearn.mbrl.continual.loop import LoopSettings

    loop = OmegaConf.to_container(out.loop, resolve=True)
    assert isinstance(loop, dict)
    if any(v is None for v in loop.values()) and path is None:
        raise UserError(
            f"sequence {sequence.name} has no loop settings (configs/loop/{sequence.name}.yaml or "
            f"configs/loop/{sequence.tasks[0].env_id}.yaml); add one or give every loop.<key>"
        )
    LoopSettings.from_mapping(loop)  # type: ignore[arg-type]
    baseline = out.get("baseline") or {}
    single = baseline.get("single")
    if single is not None:
        _single_returns(str(single), len(sequence.tasks))
    return out


def validate_continual_config(cfg: DictConfig) -> None:
    """The command-line check: everything complete_config checks."""
    complete_config(cfg)


def _single_returns(run_dir: str, num_tasks: int) -> np.ndarray:
    """Returns right after learning each task (the diagonal) from a finished `single` run."""
    from robolearn.mbrl.continual.loop import matrix_from_json
    from robolearn.runs.layout import existing_run_dir

    run = existing_run_dir(run_dir, key="baseline.single")
    summary = run.read_summary()
    if summary is None or "continual/returns" not in summary:
        raise UserError(
            f"baseline.single={run_dir} has no finished continual run (summary.json with continual/returns); "
            "run learner=single first"
        )
    matrix = matrix_from_json(summary["continual/returns"])
    if matrix.shape != (num_tasks, num_tasks):
        raise UserError(
            f"baseline.single={run_dir} has {matrix.shape[0]} tasks, this sequence {num_tasks}; "
            "use a single run of the same sequence"
        )
    return matrix


def continual_summary(
    returns: np.ndarray,
    pred_error: np.ndarray,
    single: np.ndarray | None,
    eval_episodes: int,
    reference: np.ndarray | None = None,
) -> dict[str, Any]:
    """summary.json's figures: the final row as eval/*, the matrices and the continual metrics."""
    from robolearn.mbrl.continual.loop import finite_or_none, matrix_to_json
    from robolearn.mbrl.continual.metrics import forward_transfer, retention, summarize

    final = returns[-1]
    out: dict[str, Any] = {
        "eval/mean_return": float(np.mean(final)),
        "eval/std_return": float(np.std(final)),
        "eval/episodes": int(eval_episodes * len(final)),
        "eval/returns": [float(v) for v in final],
        "continual/returns": matrix_to_json(returns),
        "continual/pred_error": matrix_to_json(pred_error),
        "continual/retention": finite_or_none(np.asarray(retention(returns, reference), dtype=np.float64)),
        "continual/reference": finite_or_none(reference) if reference is not None else None,
    }
    if single is not None:
        out["continual/forward_transfer"] = finite_or_none(
            np.asarray(forward_transfer(returns, single, reference), dtype=np.float64)
        )
    for key, value in summarize(returns, pred_error, single, reference).items():
        name = key if key.startswith("continual/") else f"continual/{key}"
        out[name] = finite_or_none(value)
    return out


def continual_job(cfg: DictConfig, run_dir: Path, command: str, multirun: bool = False) -> dict[str, Any]:
    """One continual run (a Hydra task): validate, run the loop in a LoopRun, return its summary."""
    from robolearn.runs.loop import run_loop_job

    def job() -> dict[str, Any]:
        import torch

        from robolearn.mbrl.continual.learners import make_learner
        from robolearn.mbrl.continual.loop import ContinualLoop, LoopSettings
        from robolearn.mbrl.envfns import env_functions
        from robolearn.runs.loop import LoopRun
        from robolearn.runs.trainer import resolve_device
        from robolearn.utils.seeding import seed_everything

        full = complete_config(cfg)
        torch.set_num_threads(int(full.torch_threads))
        sequence = sequence_of(full)
        settings = LoopSettings.from_mapping(OmegaConf.to_container(full.loop, resolve=True))  # type: ignore[arg-type]
        num_tasks = len(sequence.tasks)
        single = None
        if full.baseline.single is not None:
            single = _single_returns(str(full.baseline.single), num_tasks)
        total = num_tasks * settings.steps_per_task
        with LoopRun(full, run_dir, command, total=total, unit="env steps") as run:
            if run.completed is not None:
                return run.completed
            seed_everything(int(full.seed))
            device = resolve_device(str(full.device))
            loop = ContinualLoop(
                settings,
                num_tasks,
                learner=None,
                make_env=lambda t: sequence.make_env(t),
                env_functions=lambda t: env_functions(sequence.tasks[t].env_id),
                make_planner=lambda space: make_planner(settings, space, device),
                seed=int(full.seed),
            )
            learner_cfg: dict[str, Any] = {
                str(k): v
                for k, v in OmegaConf.to_container(full.learner, resolve=True).items()  # type: ignore[union-attr]
            }
            learner_cfg["model"] = OmegaConf.to_container(full.model, resolve=True)
            loop.learner = make_learner(
                str(full.learner.name),
                loop.obs_dim,
                loop.act_dim,
                num_tasks,
                learner_cfg,
                device,
                int(full.seed),
            )
            state = run.resume_state()  # last: it restores the global RNGs
            if state is not None:
                loop.load_state_dict(state)
                run.note(f"resumed at task {loop.task}, step {loop.global_step}")
            try:
                loop.run(run)
            finally:
                loop.close()
            if str(full.learner.name) == "single":
                single = loop.returns
            summary = continual_summary(
                loop.returns, loop.pred_error, single, settings.eval_episodes, loop.reference
            )
            summary["steps"] = total
            return run.finish(summary)

    summary = run_loop_job(VERB, job, run_dir, multirun)
    if summary.get("eval/mean_return") is not None:
        print(
            f"{cfg.learner.name} on {_sequence_label(cfg)} seed {cfg.seed}: final returns "
            + ", ".join(f"{r:.1f}" for r in summary["eval/returns"])
            + f" (mean {summary['eval/mean_return']:.1f}); retention of earlier tasks "
            + (
                ", ".join(
                    "-" if r is None else f"{r:.2f}" for r in summary.get("continual/retention", [])[:-1]
                )
                or "-"
            )
            + f" in {summary['wall_time_s']:.0f} s -> {run_dir}",
            flush=True,
        )
    return summary


def _sequence_label(cfg: DictConfig) -> str:
    """The sequence's name, or its file when the run used sequence_file."""
    if cfg.get("sequence_file") is not None:
        return str(cfg.sequence_file)
    return str(OmegaConf.select(cfg, "sequence.name", default="?"))


def make_planner(settings: Any, space: Any, device: str) -> Any:
    """A fresh CEM or MPPI planner over the env's action box with the loop's sizes."""
    import torch

    from robolearn.mbrl.planners import CEMPlanner, MPPIPlanner

    low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
    if settings.planner == "mppi":
        return MPPIPlanner(
            low,
            high,
            horizon=settings.horizon,
            samples=settings.samples,
            iterations=settings.iterations,
            device=device,
        )
    return CEMPlanner(
        low,
        high,
        horizon=settings.horizon,
        samples=settings.samples,
        elites=settings.elites,
        iterations=settings.iterations,
        device=device,
    )


HELP = verb_help(
    VERB,
    "[sequence=<name>] [learner=<name>] [key=value ...]",
    "Continual model-based RL over a task sequence (HyperCRL, Huang et al. IROS 2021): per task,\n"
    "random steps, then MPC acting with periodic dynamics training; after each task every task seen\n"
    "so far is evaluated (MPC return, held-out one-step error). Writes a run directory (config.yaml,\n"
    "metrics.jsonl, summary.json with continual/returns, continual/pred_error, continual/retention;\n"
    "checkpoints/, tb/). Ctrl-C saves a checkpoint and prints the resume= command. docs/hypercrl.md.",
    [
        (
            "sequence",
            "a shipped task sequence: configs/sequence/<name>.yaml (pendulum, halfcheetah_body, ...)",
        ),
        ("sequence_file", "a sequence yaml of your own (replaces the sequence; docs/hypercrl.md)"),
        ("learner", "hypercrl | hypercrl_noreg | finetune | single | multitask | coreset | ewc | si"),
        ("seed", "the run's seed (default: 0)"),
        (
            "loop.<key>",
            "random_steps, mpc_steps, update_every, horizon, samples, elites, iterations, ... "
            "(default: configs/loop/<sequence>.yaml)",
        ),
        ("model.<key>", "dynamics MLP sizes and training (default: configs/loop/<sequence>.yaml)"),
        ("learner.<key>", "the learner's settings (configs/learner/<name>.yaml), e.g. learner.beta=0.05"),
        ("baseline.single", "a finished learner=single run of the same sequence, for forward transfer"),
        ("torch_threads", "torch CPU threads (default: 1)"),
        ("device", "cpu | cuda | auto (default: cpu)"),
        ("logger.progress", "auto | bar | lines | none"),
        ("resume", "a run directory to continue"),
        (
            "hydra.run.dir",
            "where the run directory goes (default: outputs/<date>/<time>_continual_<learner>_<sequence>)",
        ),
    ],
    [
        "python -m robolearn.continual sequence=pendulum learner=hypercrl seed=1",
        "python -m robolearn.continual -m learner=hypercrl,finetune,single seed=0,1,2 hydra.sweep.dir=sweeps/crl",
        "python -m robolearn.continual resume=<run dir>",
    ],
)


# Console entry point (robolearn-continual).
main = loop_verb(
    VERB,
    VERB,
    HELP,
    continual_job,
    validate_continual_config,
    resolve=complete_config,
    setup=register_schemas,
)

if __name__ == "__main__":
    main()
