"""How a training command names an out-of-process task: `env=isaaclab:<task id>` and its checks.

`env=isaaclab:<task id>` is shorthand for `env=isaaclab env.id=<task id>` (configs/env/isaaclab.yaml):
a Hydra group option cannot carry the task id, so train expands the shorthand in its argv before Hydra
reads it. Task ids are Isaac Lab's (`Isaac-Velocity-Flat-Unitree-Go2-v0`) or `standin:<robolearn task>`
for robolearn's MuJoCo stand-in server (`standin:Go2Velocity-v1`). This module is light (no SB3, no
torch) so that argv handling and prechecks stay fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robolearn.errors import UserError, close_matches

PREFIX = "isaaclab:"
STANDIN = "standin:"


def expand_env_shorthand(argv: list[str]) -> list[str]:
    """argv with `env=isaaclab:<id>` (or a sweep `env=isaaclab:<a>,isaaclab:<b>`) as `env=isaaclab env.id=...`."""
    out: list[str] = []
    for arg in argv:
        if not arg.startswith("env=") or PREFIX not in arg:
            out.append(arg)
            continue
        values = arg.split("=", 1)[1].split(",")
        if not all(v.startswith(PREFIX) and len(v) > len(PREFIX) for v in values):
            raise UserError(
                f"{arg}: a sweep over env= cannot mix isaaclab:<task id> with other envs; run them as separate sweeps"
            )
        out += ["env=isaaclab", "env.id=" + ",".join(v[len(PREFIX) :] for v in values)]
    return out


def standin_env_id(task: str) -> str:
    """robolearn's gymnasium id for a stand-in task name (Go2Velocity-v1 -> robolearn/Go2Velocity-v1)."""
    return task if "/" in task else f"robolearn/{task}"


def is_isaaclab(cfg: DictConfig) -> bool:
    """Whether a train config's env runs in a task server (env.kwargs.backend=isaaclab)."""
    return OmegaConf.select(cfg, "env.kwargs.backend", default=None) == "isaaclab"


def check_isaaclab_env(cfg: DictConfig) -> None:
    """One-line errors, before any work, for an env=isaaclab config (interpreter, stand-in id, env count)."""
    if OmegaConf.is_missing(cfg.env, "id"):
        raise UserError(
            "env=isaaclab needs a task: env=isaaclab:<task id> (Isaac-Velocity-Flat-Unitree-Go2-v0 with "
            "env.kwargs.python=<Isaac Lab's python>, or standin:Go2Velocity-v1)"
        )
    env_id = str(cfg.env.id)
    kwargs: Any = cfg.env.get("kwargs") or {}
    python = kwargs.get("python")
    if env_id.startswith(STANDIN):
        from robolearn.envs.tasks import TASKS, register_envs

        register_envs()
        if standin_env_id(env_id[len(STANDIN) :]) not in TASKS:
            names = [STANDIN + t.split("/", 1)[1] for t in TASKS]
            raise UserError(
                f"env.id={env_id}: the stand-in serves robolearn's robot tasks{close_matches(env_id, names)}; "
                f"choose one of {', '.join(names)}"
            )
    elif python is None:
        raise UserError(
            f"env.id={env_id} runs in Isaac Lab's interpreter: add env.kwargs.python=<path to it> "
            "(e.g. ~/env_isaaclab/bin/python; docs/isaac.md)"
        )
    if python is not None and not Path(str(python)).is_file() and shutil.which(str(python)) is None:
        raise UserError(
            f"env.kwargs.python={python} does not exist; give the path to Isaac Lab's interpreter (docs/isaac.md)"
        )
    num_envs = kwargs.get("num_envs")
    if num_envs is not None and int(num_envs) != int(cfg.agent.n_envs):
        raise UserError(
            f"env.kwargs.num_envs={num_envs} but agent.n_envs={cfg.agent.n_envs}: the task server runs "
            f"agent.n_envs envs; set agent.n_envs={num_envs} (or drop env.kwargs.num_envs)"
        )
    if cfg.agent.get("env_on_device"):
        raise UserError(
            "agent.env_on_device=true needs env.kwargs.backend=warp; an isaaclab task moves through shared "
            "memory on the host: set agent.env_on_device=false"
        )
