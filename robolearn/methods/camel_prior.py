"""Where CAMEL's prior comes from: a checked prior program (robolearn.llm) or a trained expert run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.vec_env import VecEnv

from robolearn.errors import UserError
from robolearn.methods.camel import PriorFn, batch_prior


def _expert_prior(run_dir: str) -> PriorFn:
    """Expert masking: the mask is centred on a trained agent's deterministic action."""
    from robolearn.evaluate import load_policy
    from robolearn.runs.layout import existing_run_dir

    run = existing_run_dir(run_dir, key="method.prior=expert:<run dir>")
    train_cfg = OmegaConf.load(run.config)
    assert isinstance(train_cfg, DictConfig)
    model, obs_transform = load_policy(run, "final", train_cfg)

    def prior(obs: np.ndarray) -> np.ndarray:
        policy_obs = obs_transform(obs) if obs_transform is not None else obs
        action, _ = model.predict(policy_obs, deterministic=True)
        return np.asarray(action, dtype=np.float64)

    return prior


def env_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The run's env.kwargs as plain, resolved values (what a prior's env_kwargs header is checked
    against and what its probe makes the env with)."""
    raw = cfg.env.get("kwargs")
    container = OmegaConf.to_container(raw, resolve=True) if isinstance(raw, DictConfig) else {}
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def best_prior_name(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """The shipped or user prior for env_id with the highest screened return, among those whose
    required env options (their env_kwargs header) the run's env kwargs satisfy."""
    from robolearn.llm.priors import list_priors

    kwargs = dict(env_kwargs or {})
    screened = [
        (p.screened_return, p.name)
        for p in list_priors(env_id)
        if p.screened_return is not None and all(kwargs.get(k) == v for k, v in p.env_kwargs.items())
    ]
    if not screened:
        raise UserError(
            f"method.prior=best: no screened prior for {env_id}; generate one (python -m robolearn.prior action=generate env=...) or pass a path"
        )
    return max(screened)[1]


def resolve_prior(
    cfg: DictConfig, venv: VecEnv, fallback: str = "train without the mask"
) -> tuple[PriorFn | None, str]:
    """(batched prior, status) for cfg.method.prior; a bad prior stops the run or, with
    method.on_bad_prior=unmasked, returns (None, 'unmasked: <reason>') and the run does `fallback`."""
    method = cfg.method
    ref = str(method.prior)
    action_space = venv.action_space
    assert isinstance(action_space, spaces.Box)
    try:
        if ref.startswith("expert:"):
            return _expert_prior(ref.split(":", 1)[1]), "ok (expert)"
        from robolearn.llm.priors import load_prior

        kwargs = env_kwargs(cfg)
        if ref == "best":
            ref = best_prior_name(str(cfg.env.id), kwargs)
        loaded = load_prior(
            Path(ref) if ref.endswith(".py") else ref,
            env_id=str(cfg.env.id),
            probe=bool(method.probe),
            env_kwargs=kwargs,
        )
        return batch_prior(loaded.policy, action_space), f"ok ({loaded.file.path})"
    except UserError as exc:
        if method.on_bad_prior == "unmasked":
            print(f"warning: {fallback}: {exc}", flush=True)
            return None, f"unmasked: {exc}"
        raise UserError(f"{exc} (set method.on_bad_prior=unmasked to {fallback})") from None
