"""Deploy logs to Minari datasets: `python -m robolearn.deploy.dataset log=<log dir> out=<dataset dir>`.

Written through robolearn.datasets (the one Minari-layout module: h5py alone, the layout minari 0.5
reads; ARCHITECTURE contract 5), with infos time_s and safety (each T+1) and the log's provenance.

An episode is a stretch of consecutive policy steps in POLICY. Observations are the network inputs
(after history and normalisation), actions the raw network outputs. The robot has no reward: rewards
are zero. The last step is a termination when the stretch ended in a guard trip, a truncation
otherwise (operator stop, end of run). Its final observation is the step after the last action
taken, so an episode of N logged steps has N - 1 transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from robolearn.cli import hydra_verb
from robolearn.datasets import Episode as StoredEpisode
from robolearn.datasets import load_dataset, write_dataset
from robolearn.deploy.recorder import DeployLog, read_log
from robolearn.deploy.safety import SafetyState
from robolearn.errors import UserError


@dataclass
class DatasetConfig:
    """`python -m robolearn.deploy.dataset` options."""

    log: str = MISSING  # deploy log folder (record.dir of a deploy run)
    out: str = MISSING  # dataset folder (contains data/)
    dataset_id: str = "robolearn/deploy-v0"  # minari id: [namespace/]name-v<version>
    author: str | None = None
    description: str | None = None
    overwrite: bool = False


ConfigStore.instance().store(name="deploy_dataset_schema", node=DatasetConfig)
# The primary config: the schema, no log files and no output folder (this verb writes only `out`).
ConfigStore.instance().store(
    name="deploy_dataset",
    node={
        "defaults": [
            "deploy_dataset_schema",
            {"override hydra/job_logging": "none"},
            {"override hydra/hydra_logging": "none"},
            "_self_",
        ],
        "hydra": {"run": {"dir": "."}, "output_subdir": None, "job": {"chdir": False}},
    },
)


@dataclass(frozen=True)
class Episode:
    """One POLICY stretch of a log."""

    observations: np.ndarray  # (T+1, obs)
    actions: np.ndarray  # (T, n)
    time_s: np.ndarray  # (T+1,)
    terminated: bool


def episodes_from_log(log: DeployLog) -> list[Episode]:
    """Split a log's policy stream into episodes (consecutive steps in POLICY)."""
    p = log.policy
    keep = p[p["safety"] == SafetyState.POLICY.value]
    if len(keep) == 0:
        return []
    breaks = np.flatnonzero(np.diff(keep["step"]) != 1) + 1
    fault_times = [float(e["t"]) for e in log.events if e.get("type") == "fault"]
    episodes = []
    for part in np.split(keep, breaks):
        if len(part) < 2:
            continue
        end, nxt = float(part["t"][-1]), np.inf
        later = keep["t"][keep["t"] > end]
        if len(later):
            nxt = float(later[0])
        terminated = any(end <= t < nxt for t in fault_times)
        episodes.append(
            Episode(
                observations=np.asarray(part["policy_input"], dtype=np.float32),
                actions=np.asarray(part["action_raw"][:-1], dtype=np.float32),
                time_s=np.asarray(part["t"] - part["t"][0], dtype=np.float64),
                terminated=terminated,
            )
        )
    return episodes


def write_minari(
    log_dir: str | Path,
    out: str | Path,
    dataset_id: str,
    author: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a deploy log to a Minari HDF5 dataset folder (robolearn.datasets); returns its data/ folder."""
    log = read_log(log_dir)
    if log.meta.get("contract") is None:
        raise UserError(
            f"{log_dir} was recorded without a policy; there are no observations or actions to convert"
        )
    episodes = episodes_from_log(log)
    if not episodes:
        raise UserError(f"{log_dir} has no stretch of two or more policy steps in POLICY")
    contract = log.meta["contract"]
    clip = contract["action"]["clip"]
    n = int(contract["action"]["size"])
    obs_size = episodes[0].observations.shape[1]
    bound = np.inf if clip is None else float(clip)

    def stored(ep: Episode) -> StoredEpisode:
        steps = len(ep.actions)
        terminations = np.zeros(steps, dtype=bool)
        truncations = np.zeros(steps, dtype=bool)
        (terminations if ep.terminated else truncations)[-1] = True
        return StoredEpisode(
            observations=ep.observations,
            actions=ep.actions,
            rewards=np.zeros(steps, dtype=np.float64),  # the robot has no reward
            terminations=terminations,
            truncations=truncations,
            infos={
                "time_s": ep.time_s,
                "safety": np.full(steps + 1, SafetyState.POLICY.value, dtype=np.int64),
            },
        )

    return write_dataset(
        out,
        (stored(ep) for ep in episodes),
        dataset_id=dataset_id,
        observation_space=spaces.Box(-np.inf, np.inf, (obs_size,), np.float32),
        action_space=spaces.Box(-bound, bound, (n,), np.float32),
        author=author or "robolearn deploy",
        algorithm_name=f"robolearn deploy of {log.meta.get('artifact') or 'a policy'}",
        description=description
        or f"{contract['robot']['name']} deploy log {Path(log_dir).name}, recorded {log.meta.get('created')}",
        provenance={
            "log": str(Path(log_dir).resolve()),
            "log_meta": {k: log.meta[k] for k in ("created", "command", "artifact") if k in log.meta},
        },
        overwrite=overwrite,
    )


def validate_dataset(data_dir: str | Path) -> dict[str, Any]:
    """Check a Minari HDF5 dataset (robolearn.datasets.load_dataset); returns its metadata, UserError on a defect."""
    return dict(load_dataset(data_dir).metadata)


def _write_dataset(cfg: DictConfig) -> None:
    for key in ("log", "out"):
        if OmegaConf.is_missing(cfg, key):
            raise UserError(
                f"pass {key}=<folder> (python -m robolearn.deploy.dataset log=<deploy log> out=<dataset folder>)"
            )
    data = write_minari(cfg.log, cfg.out, cfg.dataset_id, cfg.author, cfg.description, cfg.overwrite)
    meta = validate_dataset(data)
    print(
        f"wrote {meta['total_episodes']} episode(s), {meta['total_steps']} steps to {data} (minari id {meta['dataset_id']})"
    )


# Console entry point (python -m robolearn.deploy.dataset).
main = hydra_verb("deploy_dataset", _write_dataset)

if __name__ == "__main__":
    main()
