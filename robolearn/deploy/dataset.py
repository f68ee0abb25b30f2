"""Deploy logs to Minari datasets: `python -m robolearn.deploy.dataset log=<log dir> out=<dataset dir>`.

Written with h5py alone, in the layout minari 0.5 reads (HDF5 storage):

    <out>/data/metadata.json     dataset_id, minari_version, data_format "hdf5", observation_space and
                                 action_space (minari's JSON serialisation of gymnasium Boxes),
                                 total_episodes, total_steps, author, algorithm_name, description, ...
    <out>/data/main_data.hdf5    episode_<i> groups (attributes id, total_steps), each with datasets
                                 observations (T+1, obs), actions (T, n), rewards (T), terminations (T),
                                 truncations (T), and an infos group (time_s, safety, each T+1)

Why not minari's own writer: it needs minari's `create` extra, which pulls JAX; reading a dataset
needs only minari and h5py (`pip install "minari[hdf5]"`), and tests/deploy/test_dataset.py loads
what this module writes with minari.MinariDataset when minari is installed. validate_dataset() checks
the structure with h5py alone.

An episode is a stretch of consecutive policy steps in POLICY. Observations are the network inputs
(after history and normalisation), actions the raw network outputs. The robot has no reward: rewards
are zero. The last step is a termination when the stretch ended in a guard trip, a truncation
otherwise (operator stop, end of run). Its final observation is the step after the last action
taken, so an episode of N logged steps has N - 1 transitions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from robolearn.cli import hydra_verb
from robolearn.deploy.recorder import DeployLog, read_log
from robolearn.deploy.safety import SafetyState
from robolearn.errors import UserError, require

MINARI_VERSION = "0.5.4"  # the layout written is minari 0.5's (any 0.4.0-0.5.x reader accepts it)
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"


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


def _box(low: float, high: float, shape: tuple[int, ...]) -> str:
    # minari's serialize_space for a float32 Box; json writes infinities as Infinity, as minari does.
    return json.dumps(
        {
            "type": "Box",
            "dtype": "float32",
            "shape": list(shape),
            "low": np.full(shape, low).tolist(),
            "high": np.full(shape, high).tolist(),
        }
    )


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
    """Convert a deploy log to a Minari HDF5 dataset folder; returns its data/ folder."""
    h5py: Any = require("h5py", "writing Minari datasets", "deploy")
    log = read_log(log_dir)
    if log.meta.get("contract") is None:
        raise UserError(
            f"{log_dir} was recorded without a policy; there are no observations or actions to convert"
        )
    episodes = episodes_from_log(log)
    if not episodes:
        raise UserError(f"{log_dir} has no stretch of two or more policy steps in POLICY")
    data = Path(out).expanduser() / "data"
    if (data / METADATA_FILE).exists() and not overwrite:
        raise UserError(f"{data} already holds a dataset; pass overwrite=true to replace it")
    data.mkdir(parents=True, exist_ok=True)
    contract = log.meta["contract"]
    clip = contract["action"]["clip"]
    n = int(contract["action"]["size"])
    obs_size = episodes[0].observations.shape[1]
    total_steps = 0
    with h5py.File(data / MAIN_FILE, "w", track_order=True) as f:
        for i, ep in enumerate(episodes):
            steps = len(ep.actions)
            total_steps += steps
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            g.attrs["total_steps"] = steps
            g.create_dataset("observations", data=ep.observations)
            g.create_dataset("actions", data=ep.actions)
            g.create_dataset("rewards", data=np.zeros(steps, dtype=np.float64))
            terminations = np.zeros(steps, dtype=bool)
            truncations = np.zeros(steps, dtype=bool)
            (terminations if ep.terminated else truncations)[-1] = True
            g.create_dataset("terminations", data=terminations)
            g.create_dataset("truncations", data=truncations)
            infos = g.create_group("infos")
            infos.create_dataset("time_s", data=ep.time_s)
            infos.create_dataset("safety", data=np.full(steps + 1, SafetyState.POLICY.value, dtype=np.int64))
    metadata = {
        "dataset_id": dataset_id,
        "minari_version": MINARI_VERSION,
        "data_format": "hdf5",
        "total_episodes": len(episodes),
        "total_steps": total_steps,
        "observation_space": _box(-np.inf, np.inf, (obs_size,)),
        "action_space": _box(
            -np.inf if clip is None else -float(clip), np.inf if clip is None else float(clip), (n,)
        ),
        "author": [author] if author else ["robolearn deploy"],
        "algorithm_name": f"robolearn deploy of {log.meta.get('artifact') or 'a policy'}",
        "code_permalink": "robolearn.deploy.dataset",
        "description": description
        or f"{contract['robot']['name']} deploy log {Path(log_dir).name}, recorded {log.meta.get('created')}",
        "requirements": [],
        "dataset_size": round(sum(p.stat().st_size for p in data.iterdir()) / 1e6, 1),
        "robolearn": {
            "log": str(Path(log_dir).resolve()),
            "log_meta": {k: log.meta[k] for k in ("created", "command", "artifact") if k in log.meta},
        },
    }
    (data / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")
    return data


def validate_dataset(data_dir: str | Path) -> dict[str, Any]:
    """Check a Minari HDF5 dataset's structure with h5py alone; returns its metadata, UserError on a defect."""
    h5py: Any = require("h5py", "reading Minari datasets", "deploy")
    data = Path(data_dir)
    meta_path = data / METADATA_FILE
    if not meta_path.is_file() or not (data / MAIN_FILE).is_file():
        raise UserError(f"{data} lacks {METADATA_FILE} or {MAIN_FILE}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    for key in (
        "dataset_id",
        "minari_version",
        "data_format",
        "total_episodes",
        "total_steps",
        "observation_space",
        "action_space",
    ):
        if key not in meta:
            raise UserError(f"{meta_path}: missing {key}")
    obs_shape = tuple(json.loads(meta["observation_space"])["shape"])
    act_shape = tuple(json.loads(meta["action_space"])["shape"])
    steps = 0
    with h5py.File(data / MAIN_FILE, "r") as f:
        if len(f.keys()) != meta["total_episodes"]:
            raise UserError(f"{data}: {len(f.keys())} episodes, metadata says {meta['total_episodes']}")
        for i in range(meta["total_episodes"]):
            g = f[f"episode_{i}"]
            t = int(g.attrs["total_steps"])
            steps += t
            expect = {
                "observations": (t + 1, *obs_shape),
                "actions": (t, *act_shape),
                "rewards": (t,),
                "terminations": (t,),
                "truncations": (t,),
            }
            for name, shape in expect.items():
                if g[name].shape != shape:
                    raise UserError(f"{data}: episode_{i}/{name} has shape {g[name].shape}, expected {shape}")
            if not (g["terminations"][-1] or g["truncations"][-1]):
                raise UserError(f"{data}: episode_{i} neither terminates nor truncates at its last step")
    if steps != meta["total_steps"]:
        raise UserError(f"{data}: {steps} steps, metadata says {meta['total_steps']}")
    return dict(meta)


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
