"""`python -m robolearn.offline dataset=<name or path> algo=<mopo|mobile> filter=<none|morec>`: offline MBRL.

Trains (or loads, `model=`) a reward-predicting dynamics ensemble on an offline dataset, then SAC on
real and model data with MOPO's or MOBILE's uncertainty penalty, optionally with MOREC's
reward-consistent step filter, and evaluates in the real env with D4RL-style normalised scores
(robolearn.mbrl.offline, docs/offline.md).

Examples:
    python -m robolearn.offline dataset=robolearn/hopper/medium-v0 algo=mopo
    python -m robolearn.offline dataset=robolearn/hopper/medium-v0 algo=mobile model=<run dir> seed=1
    python -m robolearn.offline -m dataset=robolearn/hopper/medium-v0 algo=mopo,mobile seed=0,1,2
    python -m robolearn.offline resume=<run dir>
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

from robolearn.threads import apply_thread_policy

apply_thread_policy()

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from robolearn.cli import loop_verb, verb_help
from robolearn.config.schema import register_schemas
from robolearn.errors import UserError

VERB = "offline"
FILTERS = ("none", "morec")
_KNOWN_TOP = {
    "dataset",
    "algo",
    "filter",
    "seed",
    "steps",
    "model",
    "device",
    "torch_threads",
    "resume",
    "dynamics",
    "sac",
    "loop",
    "logger",
    "method",
    "env",
}
_ALGO_KEYS = {
    "name",
    "penalty_coef",
    "rollout_length",
    "default_penalty_coef",
    "default_rollout_length",
    "real_ratio",
    "num_samples",
    "num_critics",
    "deterministic_backup",
    "target_q_min",
    "per_dataset",
}
_PER_DATASET_KEYS = {"penalty_coef", "rollout_length", "real_ratio", "auto_alpha"}


def dataset_key(dataset_id: str | None) -> str | None:
    """The per-dataset table key of a minari id: robolearn/hopper/medium-replay-v0 -> hopper-medium-replay."""
    if not dataset_id:
        return None
    parts = dataset_id.split("/")
    if len(parts) < 2:
        return None
    kind = re.sub(r"-v\d+$", "", parts[-1])
    return f"{parts[-2].lower()}-{kind}"


def _require_int(cfg: DictConfig, key: str, low: int) -> None:
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UserError(f"{key}={value} is out of range; use an integer >= {low}")


def complete_config(cfg: DictConfig) -> tuple[DictConfig, Any]:
    """Validate `cfg` (one-line errors), load the dataset and check it against its env, and fill the
    per-dataset settings (penalty weight, rollout length) and the report labels. Returns (config, dataset)."""
    from robolearn.datasets import load_dataset
    from robolearn.mbrl.offline.loop import ALGOS, dataset_dims, make_env

    unknown = sorted({str(k) for k in cfg} - _KNOWN_TOP)
    if unknown:
        raise UserError(f"unknown config key {unknown[0]}; keys here: {', '.join(sorted(_KNOWN_TOP))}")
    if OmegaConf.is_missing(cfg, "dataset") or not cfg.get("dataset"):
        raise UserError(
            "no dataset given; pass dataset=<minari id or folder>, e.g. dataset=robolearn/hopper/medium-v0"
        )
    _require_int(cfg, "seed", 0)
    _require_int(cfg, "steps", 1)
    _require_int(cfg, "torch_threads", 1)
    if cfg.get("device") not in ("cpu", "cuda", "auto"):
        raise UserError(f"device={cfg.get('device')} is not allowed; choose one of cpu, cuda, auto")
    algo = str(OmegaConf.select(cfg, "algo.name", default=None))
    if algo not in ALGOS:
        raise UserError(f"algo={algo} is not known; choose one of {', '.join(ALGOS)}")
    bad = sorted({str(k) for k in cfg.algo} - _ALGO_KEYS)
    if bad:
        raise UserError(f"unknown algo setting algo.{bad[0]}; settings: {', '.join(sorted(_ALGO_KEYS))}")
    filt = str(OmegaConf.select(cfg, "filter.name", default=None))
    if filt not in FILTERS:
        raise UserError(f"filter={filt} is not known; choose one of {', '.join(FILTERS)}")
    if filt == "morec":
        morec_entry_points()
    for key in ("dynamics", "sac", "loop"):
        for sub, value in (cfg.get(key) or {}).items():
            if value is None and key != "dynamics" and sub != "target_entropy":
                raise UserError(f"{key}.{sub} is null; give it a value")

    dataset = load_dataset(str(cfg.dataset))
    dataset_dims(dataset)  # flat Box spaces
    make_env(dataset).close()  # the env exists and its spaces match the dataset's, before any work
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    assert isinstance(out, DictConfig)
    ds_key = dataset_key(dataset.dataset_id)
    table = OmegaConf.to_container(out.algo.per_dataset, resolve=True) if out.algo.get("per_dataset") else {}
    assert isinstance(table, dict)
    entry = table.get(ds_key, {}) if ds_key else {}
    assert isinstance(entry, dict)
    bad = sorted(set(entry) - _PER_DATASET_KEYS)
    if bad:
        raise UserError(
            f"algo.per_dataset.{ds_key}.{bad[0]} is not a per-dataset setting; use {sorted(_PER_DATASET_KEYS)}"
        )
    # A filter may carry its own per-algorithm, per-dataset weights (MOREC's tables): they win.
    by_algo = OmegaConf.select(out, f"filter.penalty_coef_by_algo.{algo}", default=None)
    filter_coef = by_algo.get(ds_key) if by_algo is not None and ds_key else None
    with open_dict(out):
        if out.algo.penalty_coef is None and filter_coef is not None:
            out.algo.penalty_coef = float(filter_coef)
        if out.algo.penalty_coef is None:
            out.algo.penalty_coef = float(entry.get("penalty_coef", out.algo.default_penalty_coef))
        if out.algo.rollout_length is None:
            out.algo.rollout_length = int(entry.get("rollout_length", out.algo.default_rollout_length))
        if "real_ratio" in entry:
            out.algo.real_ratio = float(entry["real_ratio"])
        if "auto_alpha" in entry:
            out.sac.auto_alpha = bool(entry["auto_alpha"])
        if out.method.get("name") is None:
            out.method.name = algo if filt == "none" else f"{filt}-{algo}"
        if out.env.get("id") is None:
            out.env.id = dataset.dataset_id or str(cfg.dataset)
    if float(out.algo.penalty_coef) < 0:
        raise UserError(f"algo.penalty_coef={out.algo.penalty_coef} must be >= 0")
    if int(out.algo.rollout_length) < 1:
        raise UserError(f"algo.rollout_length={out.algo.rollout_length} must be >= 1")
    if not 0.0 <= float(out.algo.real_ratio) <= 1.0:
        raise UserError(f"algo.real_ratio={out.algo.real_ratio} must be in [0, 1]")
    settings_of(out)  # unknown or bad loop/sac/dynamics settings fail here
    if out.get("model") is not None:
        from robolearn.mbrl.offline.loop import dataset_dims, load_dynamics

        obs_dim, act_dim = dataset_dims(dataset)
        load_dynamics(str(out.model), obs_dim, act_dim, "cpu")
    return out, dataset


def morec_entry_points() -> tuple[Any, Any]:
    """MOREC's (load_or_learn_dynamics_reward, make_morec_filter), or a one-line error when not installed."""
    import importlib

    try:
        morec = importlib.import_module("robolearn.mbrl.offline.morec")
    except ModuleNotFoundError:
        raise UserError(
            "filter=morec is not available in this version (robolearn/mbrl/offline/morec.py is missing); use filter=none"
        ) from None
    try:
        return morec.load_or_learn_dynamics_reward, morec.make_morec_filter
    except AttributeError as exc:
        raise UserError(f"filter=morec is not available: {exc}; use filter=none") from None


def settings_of(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """(OfflineSettings, SACConfig, DynamicsSettings) of a completed config."""
    from robolearn.mbrl.offline.loop import DynamicsSettings, OfflineSettings
    from robolearn.mbrl.offline.sac import SACConfig

    loop = OmegaConf.to_container(cfg.loop, resolve=True)
    assert isinstance(loop, dict)
    filt = cfg.filter
    length = int(cfg.algo.rollout_length)
    if filt.name != "none":
        # The filter's own rollout schedule (MOREC: longer rollouts from fewer starts) wins over the loop's.
        if filt.get("rollout_length") is not None:
            length = int(filt.rollout_length)
        if filt.get("rollout_batch") is not None:
            loop["rollout_batch"] = int(filt.rollout_batch)
        on_reject = str(filt.get("on_reject") or "drop")
        if on_reject not in ("drop", "terminal"):
            raise UserError(f"filter.on_reject={on_reject} is not known; choose drop or terminal")
        loop["reject_as_terminal"] = on_reject == "terminal"
    try:
        settings = OfflineSettings(
            algo=str(cfg.algo.name),
            steps=int(cfg.steps),
            penalty_coef=float(cfg.algo.penalty_coef),
            rollout_length=length,
            real_ratio=float(cfg.algo.real_ratio),
            mobile_samples=int(cfg.algo.get("num_samples") or 10),
            samples_per_member=int(filt.get("samples_per_member") or 1),
            **loop,  # type: ignore[arg-type]
        )
    except TypeError as exc:
        raise UserError(f"bad loop setting: {exc}; see configs/offline.yaml") from None
    for name in (
        "batch_size",
        "rollout_every",
        "rollout_batch",
        "retain_epochs",
        "eval_every",
        "log_every",
        "checkpoint_every",
    ):
        if int(getattr(settings, name)) < 1:
            raise UserError(f"loop.{name}={getattr(settings, name)} must be >= 1")
    if settings.eval_episodes < 1:
        raise UserError(f"loop.eval_episodes={settings.eval_episodes} must be >= 1")
    sac = OmegaConf.to_container(cfg.sac, resolve=True)
    assert isinstance(sac, dict)
    sac.update(
        num_critics=int(cfg.algo.num_critics),
        deterministic_backup=bool(cfg.algo.deterministic_backup),
        target_q_min=cfg.algo.target_q_min,
    )
    sac_cfg = SACConfig.from_mapping(sac)  # type: ignore[arg-type]
    dyn = OmegaConf.to_container(cfg.dynamics, resolve=True)
    assert isinstance(dyn, dict)
    dynamics = DynamicsSettings.from_mapping(dyn)  # type: ignore[arg-type]
    if not 1 <= dynamics.elites <= dynamics.members:
        raise UserError(
            f"dynamics.elites={dynamics.elites} must be between 1 and dynamics.members={dynamics.members}"
        )
    return settings, sac_cfg, dynamics


def validate_offline_config(cfg: DictConfig) -> None:
    """The command-line check: everything complete_config checks."""
    complete_config(cfg)


def offline_job(cfg: DictConfig, run_dir: Path, command: str, multirun: bool = False) -> dict[str, Any]:
    """One offline run (a Hydra task): validate, train or load the dynamics, run SAC in a LoopRun."""
    from robolearn.runs.loop import run_loop_job

    def job() -> dict[str, Any]:
        import torch

        from robolearn.mbrl.offline.loop import (
            DYNAMICS_FILE,
            POLICY_FILE,
            OfflineLoop,
            _flat_arrays,
            dataset_dims,
            load_dynamics,
            train_dynamics,
        )
        from robolearn.runs.loop import LoopRun
        from robolearn.runs.trainer import resolve_device
        from robolearn.utils.seeding import seed_everything

        full, dataset = complete_config(cfg)
        torch.set_num_threads(int(full.torch_threads))
        settings, sac_cfg, dyn_settings = settings_of(full)
        with LoopRun(full, run_dir, command, total=settings.steps, unit="gradient steps") as run:
            if run.completed is not None:
                return run.completed
            seed_everything(int(full.seed))
            device = resolve_device(str(full.device))
            saved_model = run.run.root / DYNAMICS_FILE
            obs_dim, act_dim = dataset_dims(dataset)
            if full.model is not None:
                model = load_dynamics(str(full.model), obs_dim, act_dim, device)
                run.note(f"dynamics loaded from {full.model}")
            elif saved_model.is_file():
                model = load_dynamics(saved_model, obs_dim, act_dim, device)  # resumed: trained before
            else:
                run.note(f"training the dynamics ensemble on {dataset.total_steps} transitions")
                model, info = train_dynamics(_flat_arrays(dataset), dyn_settings, int(full.seed), device)
                model.save(saved_model)
                run.log(0, {f"dynamics/{k}": v for k, v in info.items()})
            model.eval()
            step_filter = None
            if full.filter.name == "morec":
                load_or_learn, make_filter = morec_entry_points()
                reward_path = full.filter.get("reward_path") or (run.run.root / "dynamics_reward.pt")
                dyn_reward = load_or_learn(
                    dataset, full.filter, Path(str(reward_path)), seed=int(full.seed), device=device
                )
                step_filter = make_filter(dyn_reward, full.filter)
            loop = OfflineLoop(
                settings, sac_cfg, dataset, model, seed=int(full.seed), device=device, step_filter=step_filter
            )
            state = run.resume_state()  # last: it restores the global RNGs
            if state is not None:
                loop.load_state_dict(state)
                run.note(f"resumed at gradient step {loop.step}")
            try:
                while loop.step < settings.steps:
                    logs = loop.iterate()
                    if logs:
                        run.log(loop.step, logs)
                    ret = loop.last_eval.get("eval/mean_return") if "eval/mean_return" in logs else None
                    run.progress(loop.step, eval_return=ret)
                    if loop.step % settings.checkpoint_every == 0 and loop.step < settings.steps:
                        run.checkpoint(loop.step, loop.state_dict())
                    run.stop_point(loop.step, loop.state_dict)
                # iterate() evaluates at the last step; a run resumed at its end has that evaluation saved.
                final = loop.last_eval or loop.evaluate(settings.eval_episodes)
                loop.save_policy(run.run.root / POLICY_FILE)
            finally:
                loop.close()
            summary = dict(final)
            summary["steps"] = settings.steps
            summary["offline/dataset"] = dataset.dataset_id or str(full.dataset)
            summary["offline/algo"] = str(full.algo.name)
            summary["offline/filter"] = str(full.filter.name)
            summary["offline/penalty_coef"] = float(full.algo.penalty_coef)
            summary["offline/rollout_length"] = settings.rollout_length
            summary["offline/elites"] = [int(i) for i in model.elites.tolist()]
            return run.finish(summary)

    summary = run_loop_job(VERB, job, run_dir, multirun)
    if summary.get("eval/mean_return") is not None:
        score = summary.get("eval/normalized_score")
        print(
            f"{summary.get('offline/algo')} (filter {summary.get('offline/filter')}) on {summary.get('offline/dataset')} "
            f"seed {cfg.seed}: return {summary['eval/mean_return']:.1f} +- {summary['eval/std_return']:.1f}"
            + (f", normalised score {score:.1f}" if score is not None else "")
            + f" in {summary['wall_time_s']:.0f} s -> {run_dir}",
            flush=True,
        )
    return summary


HELP = verb_help(
    VERB,
    "dataset=<name or path> [algo=mopo|mobile] [filter=none|morec] [key=value ...]",
    "Offline model-based RL on a Minari dataset: a reward-predicting dynamics ensemble (7 members,\n"
    "5 elites), then SAC on real + model rollouts with MOPO's (Yu et al. 2020) or MOBILE's (Sun et al.\n"
    "2023) uncertainty penalty, optionally MOREC's reward-consistent filter (Luo et al. 2024). Writes a run\n"
    "directory (config.yaml, metrics.jsonl, summary.json with eval/normalized_score, dynamics.pt,\n"
    "policy.pt, checkpoints/, tb/). Ctrl-C saves a checkpoint and prints the resume= command. docs/offline.md.",
    [
        ("dataset", "a minari id (robolearn/hopper/medium-v0) or a dataset folder (required)"),
        ("algo", "mopo | mobile (configs/algo/<name>.yaml; per-dataset penalty weights and rollout lengths)"),
        ("filter", "none | morec (configs/filter/<name>.yaml)"),
        ("seed", "the run's seed (default: 0)"),
        ("steps", "SAC gradient steps (default: 100000)"),
        ("model", "a saved ensemble: a robolearn.offline run directory or its dynamics.pt (skips training)"),
        ("algo.<key>", "penalty_coef, rollout_length, real_ratio, ... (null: the per-dataset table)"),
        ("dynamics.<key>", "members, elites, hidden, lr, max_epochs, max_steps, ..."),
        ("sac.<key>", "hidden, actor_lr, critic_lr, gamma, tau, auto_alpha, ..."),
        (
            "loop.<key>",
            "batch_size, rollout_every, rollout_batch, retain_epochs, eval_every, eval_episodes, ...",
        ),
        ("torch_threads", "torch CPU threads (default: 1)"),
        ("device", "cpu | cuda | auto (default: cpu)"),
        ("resume", "a run directory to continue (steps=N extends it)"),
        (
            "hydra.run.dir",
            "where the run directory goes (default: outputs/<date>/<time>_offline_<algo>_<filter>)",
        ),
    ],
    [
        "python -m robolearn.offline dataset=robolearn/hopper/medium-v0 algo=mopo seed=1",
        "python -m robolearn.offline dataset=robolearn/hopper/medium-v0 algo=mobile model=<mopo run dir>",
        "python -m robolearn.offline -m dataset=robolearn/hopper/medium-v0 algo=mopo,mobile seed=0,1,2",
        "python -m robolearn.offline resume=<run dir>",
    ],
)


def _recorded_config(cfg: DictConfig) -> DictConfig:
    """The config a run directory records: the composed one completed from the algo/filter tables."""
    return complete_config(cfg)[0]


# Console entry point (robolearn-offline).
main = loop_verb(
    VERB, VERB, HELP, offline_job, validate_offline_config, resolve=_recorded_config, setup=register_schemas
)

if __name__ == "__main__":
    main()
