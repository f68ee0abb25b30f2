"""`python -m robolearn.imitation.collect task=<name> demos=<n> split=<pretrain|finetune> seed=<s> out=<dir or id>`.

Rolls out a task's expert on contexts of one split and writes the demonstrations as a Minari dataset
through robolearn.datasets: one episode per demo, the hidden context in infos["context"] (analysis only),
and how it was made (task, split, expert, its success rate, seeds, the command) in the provenance.

Examples:
    python -m robolearn.imitation.collect task=pointmass_pixels demos=200 split=pretrain out=data/pm_pre
    python -m robolearn.imitation.collect task=pointmass_pixels demos=10 split=finetune seed=1 out=data/pm_ft1
    python -m robolearn.imitation.collect task=bimodal demos=100 out=robolearn/imitation-bimodal/pretrain-v0
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from robolearn.cli import command_line, print_help_if_asked, verb_help
from robolearn.errors import UserError, report_user_errors

VERB = "imitation.collect"
CONFIG = "imitation/collect"
_KNOWN = {
    "task",
    "demos",
    "split",
    "seed",
    "out",
    "contexts",
    "expert",
    "expert_noise",
    "keep_failures",
    "overwrite",
}


def _int_at_least(cfg: DictConfig, key: str, low: int, allow_none: bool = False) -> None:
    value = cfg.get(key)
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UserError(f"{key}={value} is out of range; use an integer >= {low}")


def validate_collect_config(cfg: DictConfig) -> None:
    """One-line errors for everything collect would trip over, before any rollout."""
    from robolearn.imitation.tasks import SPLITS, TASKS

    unknown = sorted({str(k) for k in cfg} - _KNOWN)
    if unknown:
        raise UserError(f"unknown config key {unknown[0]}; keys here: {', '.join(sorted(_KNOWN))}")
    if cfg.get("task") not in TASKS:
        from robolearn.errors import close_matches

        raise UserError(
            f"task={cfg.get('task')} is not known{close_matches(str(cfg.get('task')), TASKS)}; "
            f"choose one of {', '.join(TASKS)}"
        )
    _int_at_least(cfg, "demos", 1)
    _int_at_least(cfg, "seed", 0)
    _int_at_least(cfg, "contexts", 1, allow_none=True)
    if cfg.get("split") not in SPLITS:
        raise UserError(f"split={cfg.get('split')} is not known; choose one of {', '.join(SPLITS)}")
    if OmegaConf.is_missing(cfg, "out") or not cfg.get("out"):
        raise UserError("no out given; pass out=<folder> or out=<namespace/name-v<N>> (a minari id)")
    contexts = cfg.get("contexts")
    if contexts is not None and contexts > cfg.demos:
        raise UserError(f"contexts={contexts} is more than demos={cfg.demos}; use contexts <= demos")
    noise = cfg.get("expert_noise")
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, int | float) or noise < 0):
        raise UserError(f"expert_noise={noise} is out of range; use a number >= 0 (action units)")
    if cfg.get("expert") is not None and cfg.task != "go2_command":
        raise UserError(f"expert= is for task=go2_command only; task {cfg.task} has a scripted expert")
    if cfg.task == "go2_command":
        if cfg.get("expert") is None:
            raise UserError(
                "task=go2_command needs expert=<policy artifact dir or run dir> (a walking policy)"
            )
        from robolearn.imitation.tasks import resolve_policy_artifact

        resolve_policy_artifact(str(cfg.expert))
    out = str(cfg.out)
    if is_minari_id(out):
        return
    if Path(out).suffix in (".hdf5", ".h5", ".json"):
        raise UserError(f"out={out} names a file; give a folder (data/ goes inside) or a minari id")


def is_minari_id(out: str) -> bool:
    """Whether robolearn.datasets reads `out` as a minari id (resolved under datasets_root()), not a folder."""
    from robolearn.datasets import dataset_dir

    return dataset_dir(out) != Path(out) / "data"


def task_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The task settings a command line changes (expert noise, the Go2 expert)."""
    out: dict[str, Any] = {}
    if cfg.get("expert_noise") is not None:
        out["expert_noise"] = float(cfg.expert_noise)
    if cfg.get("expert") is not None:
        out["expert_path"] = str(cfg.expert)
    return out


def demo_seeds(seed: int, index: int) -> tuple[int, int]:
    """(reset seed, expert seed) of demo `index`: fixed by the dataset seed, distinct across demos."""
    state = np.random.SeedSequence([seed, index, 1818]).generate_state(2)
    return int(state[0]), int(state[1])


def run_demo(task: Any, context: np.ndarray, reset_seed: int, expert_seed: int) -> Any:
    """One expert episode as a robolearn.datasets Episode (infos: context, success, per step)."""
    from robolearn.datasets import Episode

    env = task.make_env(context)
    try:
        obs, info = env.reset(seed=reset_seed)
        policy = task.expert(env, context, seed=expert_seed)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        successes = [bool(info.get("success", False))]
        tracking = [0.0]  # no step yet at the reset row
        done = False
        while not done:
            action = np.asarray(policy(obs), dtype=np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(bool(truncated))
            successes.append(bool(info.get("success", False)))
            tracking.append(float(info.get("tracking_error", 0.0)))
            done = bool(terminated or truncated)
    finally:
        env.close()
    if isinstance(observations[0], dict):
        stacked: Any = {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    else:
        stacked = np.stack(observations).astype(np.float32)
    steps = len(actions)
    ctx = np.repeat(np.asarray(context, dtype=np.float32)[None], steps + 1, axis=0)
    infos = {"context": ctx, "success": np.asarray(successes, dtype=bool)}
    if task.success_metric == "tracking_error":
        infos["tracking_error"] = np.asarray(tracking, dtype=np.float32)
    return Episode(
        observations=stacked,
        actions=np.stack(actions).astype(np.float32),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos=infos,
        seed=reset_seed,
    )


def dataset_id_for(out: str, task: str, split: str) -> str:
    """The minari id written: `out` itself when it is one, else robolearn/imitation-<task>/<split>-v0."""
    if is_minari_id(out):
        return out
    return f"robolearn/imitation-{task}/{split}-v0"


def collect(cfg: DictConfig, command: str = "") -> dict[str, Any]:
    """Collect the demos `cfg` asks for and write the dataset; returns a summary (path, success rate)."""
    from robolearn.datasets import write_dataset
    from robolearn.imitation.tasks import get_task

    validate_collect_config(cfg)
    task = get_task(str(cfg.task), **task_overrides(cfg))
    demos = int(cfg.demos)
    split = str(cfg.split)
    seed = int(cfg.seed)
    n_contexts = cfg.get("contexts")
    if n_contexts is None:
        n_contexts = demos if split == "pretrain" else 1
    contexts = task.sample_contexts(int(n_contexts), split, seed)
    keep_failures = bool(cfg.keep_failures)
    started = time.time()
    episodes: list[Any] = []
    tried = succeeded = 0
    max_tries = demos if keep_failures else 3 * demos
    while len(episodes) < demos and tried < max_tries:
        # Demos cycle through the contexts so each gets demos / contexts of them.
        context = contexts[tried % len(contexts)]
        reset_seed, expert_seed = demo_seeds(seed, tried)
        episode = run_demo(task, context, reset_seed, expert_seed)
        tried += 1
        success = bool(episode.infos["success"][-1])
        succeeded += success
        if success or keep_failures:
            episodes.append(episode)
    if len(episodes) < demos:
        raise UserError(
            f"the {task.name} expert succeeded in {succeeded} of {tried} tries, fewer than demos={demos}; "
            "lower demos, set keep_failures=true or lower expert_noise"
        )
    success_rate = succeeded / tried
    env = task.make_env(contexts[0])
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    settings: dict[str, Any] = asdict(task) if is_dataclass(task) and not isinstance(task, type) else {}
    expert = str(cfg.expert) if cfg.get("expert") is not None else f"scripted ({type(task).__name__}.expert)"
    provenance = {
        "task": task.name,
        "split": split,
        "context_dim": int(task.context_dim),
        "pixels": bool(task.pixels),
        "expert": expert,
        "expert_success_rate": float(success_rate),
        "expert_tries": int(tried),
        "demos": demos,
        "contexts": len(contexts),
        "keep_failures": keep_failures,
        "seed": seed,
        "command": command,
        "task_settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
    }
    if task.success_metric == "tracking_error":
        provenance["expert_tracking_error"] = float(
            np.mean([e.infos["tracking_error"][1:].mean() for e in episodes])
        )
    returns = [float(np.sum(e.rewards)) for e in episodes]
    path = write_dataset(
        str(cfg.out),
        episodes,
        dataset_id=dataset_id_for(str(cfg.out), task.name, split),
        observation_space=observation_space,
        action_space=action_space,
        author="robolearn.imitation.collect",
        description=(
            f"{demos} expert demos of {task.name} ({split} contexts, hidden context in infos['context'])"
        ),
        algorithm_name=expert,
        provenance=provenance,
        overwrite=bool(cfg.overwrite),
    )
    return {
        "path": str(path),
        "demos": demos,
        "steps": int(sum(e.steps for e in episodes)),
        "expert_success_rate": success_rate,
        "mean_return": float(np.mean(returns)),
        "seconds": time.time() - started,
    }


HELP = verb_help(
    VERB,
    "task=<name> demos=<n> split=<pretrain|finetune> seed=<s> out=<dir or minari id> [key=value ...]",
    "Expert demonstrations of a hidden-context task (issue 18): each demo's goal/target/command is a\n"
    "context the learner never observes (stored in infos['context'] for analysis). Pretraining and\n"
    "finetuning contexts are disjoint sets. Writes a Minari dataset (robolearn.datasets) atomically,\n"
    "with the expert's success rate and the command in its metadata.",
    [
        ("task", "pointmass_pixels | reacher | pusher | bimodal | go2_command"),
        ("demos", "number of demos (episodes) written (default: 100)"),
        ("split", "pretrain | finetune (default: pretrain)"),
        ("seed", "seeds the contexts, start states and expert noise (default: 0)"),
        ("out", "a folder (data/ goes inside) or a minari id namespace/name-v<N>"),
        ("contexts", "distinct contexts (default: one per demo for pretrain, 1 for finetune)"),
        ("expert", "go2_command: a policy artifact dir or run dir"),
        ("expert_noise", "scripted expert's action noise std (default: the task's)"),
        ("keep_failures", "true: write failed demos too (default); false: redraw them"),
        ("overwrite", "replace an existing dataset at out (default: false)"),
    ],
    [
        "python -m robolearn.imitation.collect task=pointmass_pixels demos=200 out=data/pm_pretrain",
        "python -m robolearn.imitation.collect task=reacher demos=10 split=finetune seed=3 out=data/reacher_ft3",
    ],
    script="robolearn-imitation-collect",
)


@report_user_errors
def _main(argv: list[str]) -> None:
    from robolearn.config.validate import compose_config, precheck_overrides

    if any(a in ("-m", "--multirun") for a in argv):
        raise UserError("collect runs one dataset per command; give one value per key (no -m sweeps)")
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise UserError(f"cannot read {bad[0]!r}; give key=value overrides (see --help)")
    precheck_overrides(CONFIG, argv, validate_collect_config)
    cfg = compose_config(CONFIG, argv)
    result = collect(cfg, command_line(VERB, argv))
    print(
        f"wrote {result['demos']} demos ({result['steps']} steps) to {result['path']}; "
        f"expert success rate {result['expert_success_rate']:.3f}, mean return {result['mean_return']:.2f}, "
        f"{result['seconds']:.1f} s"
    )


def main() -> None:
    """Console entry point (robolearn-imitation-collect)."""
    argv = sys.argv[1:]
    if print_help_if_asked(HELP, argv):
        return
    _main(argv)


if __name__ == "__main__":
    main()
