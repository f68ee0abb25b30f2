"""Research methods built on the agents: each core readable in one file (camel.py, prior_init.py, ...).

`method_algorithm` and `configure_method` are the two hooks the trainer calls; a run without a
`method` node trains the plain agent.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from robolearn.errors import UserError

METHODS = ("camel", "prior_init")


def method_name(cfg: DictConfig) -> str | None:
    """The method a training config asks for, or None for the plain agent."""
    method = cfg.get("method")
    return None if method is None else str(method.name)


def method_algorithm(cfg: DictConfig) -> tuple[type[BaseAlgorithm] | None, dict[str, Any]]:
    """(algorithm class, extra constructor kwargs) for the config's method; (None, {}) for none."""
    name = method_name(cfg)
    if name is None:
        return None, {}
    if name == "camel":
        from robolearn.methods.camel import CAMEL_ALGORITHMS, CamelReplayBuffer

        return CAMEL_ALGORITHMS[cfg.agent.algo], {"replay_buffer_class": CamelReplayBuffer}
    if name == "prior_init":
        return None, {}
    raise UserError(f"method.name={name} is unknown; choose one of {', '.join(METHODS)}")


def configure_method(cfg: DictConfig, model: BaseAlgorithm, venv: VecEnv) -> dict[str, Any]:
    """Attach the method's runtime parts (e.g. CAMEL's prior) to a built or loaded model.

    Returns facts for the run's summary (e.g. the prior used, or why training runs unmasked).
    """
    name = method_name(cfg)
    if name == "prior_init":
        return _configure_prior_init(cfg, model, venv)
    if name != "camel":
        return {}
    from robolearn.methods.camel_prior import resolve_prior

    prior_fn, status = resolve_prior(cfg, venv)
    method = cfg.method
    model.configure_camel(  # type: ignore[attr-defined]
        prior_fn,
        radius=float(method.radius),
        eps_fraction=float(method.eps_fraction),
        eps_mode=str(method.eps_mode),
        total_steps=int(cfg.steps),
        seed=int(cfg.seed),
        eval_mask=bool(method.get("eval_mask", False)),
        masked_replay=str(method.get("masked_replay", "mapped")),
    )
    return {
        "method": "camel",
        "camel/prior": str(method.prior),
        "camel/prior_status": status,
        "camel/masked_replay": model.camel_masked_replay,  # type: ignore[attr-defined]
    }


def _configure_prior_init(cfg: DictConfig, model: BaseAlgorithm, venv: VecEnv) -> dict[str, Any]:
    """Clone the prior into a fresh model's actor and attach the kickstarting hook (also on resume);
    an unusable prior with on_bad_prior=unmasked trains from scratch."""
    import time

    from robolearn.methods.camel_prior import resolve_prior
    from robolearn.methods.prior_init import Kickstart, rollout_steps, warm_start

    t0 = time.perf_counter()
    method = cfg.method
    facts: dict[str, Any] = {"method": "prior_init", "prior_init/prior": str(method.prior)}
    resumed = model.num_timesteps > 0
    kickstart = int(method.kickstart_steps)
    if resumed:
        facts["prior_init/status"] = "resumed (the warm start ran at the start of the run)"
        if kickstart <= 0:
            return facts
    prior_fn, status = resolve_prior(cfg, venv, fallback="train from scratch")
    facts.setdefault("prior_init/status", status)
    if prior_fn is None:
        return facts
    if not resumed:
        facts.update(
            warm_start(
                model,
                venv,
                prior_fn,
                samples=int(method.samples),
                noise=float(method.noise),
                epochs=int(method.epochs),
                batch_size=int(method.batch_size),
                learning_rate=float(method.learning_rate),
                seed=int(cfg.seed),
            )
        )
        # The trainer starts the run's wall clock here, so timings include the warm start (and the probe).
        facts["method/setup_s"] = time.perf_counter() - t0
    if kickstart > 0:
        model.after_train = Kickstart(  # type: ignore[attr-defined]
            prior_fn,
            venv,
            start=rollout_steps(int(method.samples), venv.num_envs),
            steps=kickstart,
            batch_size=int(method.batch_size),
            learning_rate=float(method.learning_rate),
            seed=int(cfg.seed) + 1,
        )
    return facts
