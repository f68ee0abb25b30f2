"""Minari datasets written and read with h5py alone (ARCHITECTURE contract 5).

Layout (minari 0.5's HDF5 storage; `minari.MinariDataset(<dataset dir>/data)` opens what this writes):

    <dataset dir>/data/metadata.json    dataset_id, minari_version, data_format "hdf5", observation_space and
                                        action_space (minari's JSON), total_episodes, total_steps, env_spec,
                                        ref_min_score / ref_max_score, author, algorithm_name, description,
                                        jpeg_encoding false, and our provenance under "robolearn"
    <dataset dir>/data/main_data.hdf5   episode_<i> groups (attributes id, total_steps, seed), each with
                                        observations (T+1, ...) (a group per key for a Dict space),
                                        actions (T, ...), rewards, terminations, truncations (T,), infos/ (T+1, ...)

Why not minari's writer: it needs minari's `create` extra, which pulls JAX (~600 MB); reading needs only
h5py. A dataset is named by a folder (holding data/, or data/ itself) or by a minari id
(`namespace/name-v<N>`) under `datasets_root()`, minari's own root, so `minari.load_dataset(id)` finds ours.

Writes are atomic: the data/ folder is built beside its destination and renamed into place, so an
interrupted write leaves the old dataset (or none), never half of one. Reads validate everything a
learner would trip over later (missing or truncated files, shapes, NaN) and fail with one line naming
the file and the problem.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from robolearn.datasets.spaces import describe, deserialize_space, serialize_space, spaces_match
from robolearn.errors import UserError

MINARI_VERSION = "0.5.4"  # the layout written is minari 0.5's (readers 0.4.0-0.5.x accept it)
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
_ID = re.compile(r"^([A-Za-z0-9_.\-]+/)*[A-Za-z0-9_.\-]+-v\d+$")

Obs = np.ndarray | dict[str, np.ndarray]


@dataclass
class Episode:
    """One episode: T actions, T+1 observations (the last is the state after the last action)."""

    observations: Obs
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    seed: int | None = None

    @property
    def steps(self) -> int:
        """Number of transitions (actions) in the episode."""
        return len(self.actions)


@dataclass
class Transitions:
    """All episodes' transitions as flat arrays (N = total steps)."""

    observations: Obs
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: Obs
    terminations: np.ndarray
    truncations: np.ndarray
    episode_index: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def datasets_root() -> Path:
    """Minari's dataset root: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env).expanduser() if env else Path.home() / ".minari" / "datasets"


def _looks_like_id(name: str) -> bool:
    return bool(_ID.match(name)) and not name.startswith((".", "/", "~"))


def dataset_dir(name_or_path: str | Path) -> Path:
    """The data/ folder a path or a minari id resolves to (it need not exist yet)."""
    path = Path(name_or_path).expanduser()
    if path.name == "data" and (path / METADATA_FILE).exists():
        return path
    if path.exists() or isinstance(name_or_path, Path) or not _looks_like_id(str(name_or_path)):
        return path / "data"
    return datasets_root() / str(name_or_path) / "data"


# ----- writing -------------------------------------------------------------------------------------
def _obs_at(obs: Obs, key: str | None) -> np.ndarray:
    if isinstance(obs, dict):
        if key is None:
            raise UserError("internal: a Dict observation needs a key")
        return obs[key]
    return obs


def _check_array(where: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(arr.shape) != shape:
        raise UserError(f"{where} has shape {tuple(arr.shape)}, expected {shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))[0]) if arr.ndim else 0
        raise UserError(f"{where} holds NaN or inf (first at row {bad}); drop or fix those steps")


def _check_episode(i: int, ep: Episode, obs_space: spaces.Space, act_space: spaces.Space) -> None:
    t = ep.steps
    where = f"episode {i}"
    if t < 1:
        raise UserError(f"{where} has no steps; an episode needs at least one action")
    if isinstance(obs_space, spaces.Dict):
        if not isinstance(ep.observations, dict) or set(ep.observations) != set(obs_space.spaces):
            got = sorted(ep.observations) if isinstance(ep.observations, dict) else "an array"
            raise UserError(f"{where}: observations are {got}, the space has keys {sorted(obs_space.spaces)}")
        for k, sub in obs_space.spaces.items():
            _check_array(f"{where} observations[{k!r}]", ep.observations[k], (t + 1, *sub.shape))  # type: ignore[misc]
    else:
        if isinstance(ep.observations, dict):
            raise UserError(f"{where}: observations are a dict but the space is {describe(obs_space)}")
        _check_array(f"{where} observations", ep.observations, (t + 1, *obs_space.shape))  # type: ignore[misc]
    _check_array(f"{where} actions", ep.actions, (t, *act_space.shape))  # type: ignore[misc]
    _check_array(f"{where} rewards", ep.rewards, (t,))
    for name in ("terminations", "truncations"):
        _check_array(f"{where} {name}", getattr(ep, name), (t,))
    if not (bool(ep.terminations[-1]) or bool(ep.truncations[-1])):
        raise UserError(f"{where} neither terminates nor truncates at its last step; mark how it ended")
    for k, v in ep.infos.items():
        if len(v) != t + 1:
            raise UserError(
                f"{where} infos[{k!r}] has {len(v)} rows, expected T+1 = {t + 1} (reset info first)"
            )


def _env_spec_json(env_id: str | None, env_kwargs: dict[str, Any]) -> str | None:
    """gymnasium's EnvSpec JSON for a registered id (what minari stores), None when it cannot be written."""
    if env_id is None:
        return None
    import dataclasses

    import gymnasium as gym

    try:
        spec = gym.spec(env_id)
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **env_kwargs})
        return spec.to_json()
    except (gym.error.Error, TypeError, ValueError):  # unregistered, or kwargs/entry point not JSON
        return None


def write_dataset(
    out: str | Path,
    episodes: Iterable[Episode],
    *,
    dataset_id: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    author: str | None = None,
    description: str | None = None,
    algorithm_name: str | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate the episodes and write a Minari dataset atomically; returns its data/ folder."""
    import h5py

    if not _looks_like_id(dataset_id):
        raise UserError(
            f"dataset_id={dataset_id!r} is not a minari id; use namespace/name-v<N>, e.g. robolearn/hopper/medium-v0"
        )
    data = dataset_dir(out)
    if (data / METADATA_FILE).exists() and not overwrite:
        raise UserError(f"{data.parent} already holds a dataset; pass overwrite=true to replace it")
    obs_json, act_json = serialize_space(observation_space), serialize_space(action_space)
    env_kwargs = dict(env_kwargs or {})
    data.parent.mkdir(parents=True, exist_ok=True)
    tmp = data.parent / f".data.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    total_steps = n_episodes = 0
    returns: list[float] = []
    try:
        with h5py.File(tmp / MAIN_FILE, "w", track_order=True) as f:
            for i, ep in enumerate(episodes):
                _check_episode(i, ep, observation_space, action_space)
                g = f.create_group(f"episode_{i}")
                g.attrs["id"] = i
                g.attrs["total_steps"] = ep.steps
                if ep.seed is not None:
                    g.attrs["seed"] = int(ep.seed)
                if isinstance(ep.observations, dict):
                    og = g.create_group("observations")
                    for k, v in ep.observations.items():
                        og.create_dataset(k, data=v)
                else:
                    g.create_dataset("observations", data=ep.observations)
                g.create_dataset("actions", data=ep.actions)
                g.create_dataset("rewards", data=np.asarray(ep.rewards, dtype=np.float64))
                g.create_dataset("terminations", data=np.asarray(ep.terminations, dtype=bool))
                g.create_dataset("truncations", data=np.asarray(ep.truncations, dtype=bool))
                if ep.infos:
                    ig = g.create_group("infos")
                    for k, v in ep.infos.items():
                        ig.create_dataset(k, data=np.asarray(v))
                total_steps += ep.steps
                n_episodes += 1
                returns.append(float(np.sum(ep.rewards)))
        if n_episodes == 0:
            raise UserError(f"no episodes to write to {data.parent}")
        metadata: dict[str, Any] = {
            "dataset_id": dataset_id,
            "minari_version": MINARI_VERSION,
            "data_format": "hdf5",
            "jpeg_encoding": False,  # images are stored raw (minari would JPEG-decode uint8 images otherwise)
            "total_episodes": n_episodes,
            "total_steps": total_steps,
            "observation_space": obs_json,
            "action_space": act_json,
            "author": [author or "robolearn"],
            "algorithm_name": algorithm_name or "robolearn",
            "code_permalink": "https://github.com/robolearn/robolearn",
            "description": description or dataset_id,
            "requirements": [],
            "num_episodes_average_score": n_episodes,
            "dataset_size": round((tmp / MAIN_FILE).stat().st_size / 1e6, 1),
            "robolearn": {
                "env_id": env_id,
                "env_kwargs": env_kwargs,
                "mean_return": float(np.mean(returns)),
                **(provenance or {}),
            },
        }
        spec = _env_spec_json(env_id, env_kwargs)
        if spec is not None:
            metadata["env_spec"] = spec
        if ref_min_score is not None:
            metadata["ref_min_score"] = float(ref_min_score)
        if ref_max_score is not None:
            metadata["ref_max_score"] = float(ref_max_score)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, default=_json_default), encoding="utf-8")
        old = data.parent / f".data.old-{os.getpid()}"
        if data.exists():
            os.replace(data, old)
        os.replace(tmp, data)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# ----- reading -------------------------------------------------------------------------------------
def normalized_score(returns: Any, ref_min: float, ref_max: float) -> Any:
    """D4RL's normalised score: 100 * (return - random) / (expert - random)."""
    if not np.isfinite(ref_min) or not np.isfinite(ref_max) or ref_max == ref_min:
        raise UserError(f"reference returns min={ref_min}, max={ref_max} cannot normalise; they must differ")
    scaled = 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
    return float(scaled) if np.ndim(scaled) == 0 else scaled


class OfflineDataset:
    """A validated Minari dataset in memory: metadata, spaces, episodes, flat transitions."""

    def __init__(self, path: Path, metadata: dict[str, Any], episodes: list[Episode]) -> None:
        self.path = path
        self.metadata = metadata
        self.episodes = episodes
        self.dataset_id: str = metadata["dataset_id"]
        self.observation_space = deserialize_space(metadata["observation_space"])
        self.action_space = deserialize_space(metadata["action_space"])
        ours = metadata.get("robolearn") or {}
        env_id = ours.get("env_id")
        env_kwargs = dict(ours.get("env_kwargs") or {})
        if env_id is None and metadata.get("env_spec"):
            spec = json.loads(metadata["env_spec"])
            env_id, env_kwargs = spec.get("id"), dict(spec.get("kwargs") or {})
        self.env_id: str | None = env_id
        self.env_kwargs: dict[str, Any] = env_kwargs
        self.ref_min_score: float | None = metadata.get("ref_min_score")
        self.ref_max_score: float | None = metadata.get("ref_max_score")
        self.total_steps = int(sum(ep.steps for ep in episodes))

    def __repr__(self) -> str:
        return f"OfflineDataset({self.dataset_id!r}, {len(self.episodes)} episodes, {self.total_steps} steps, {self.path})"

    @property
    def provenance(self) -> dict[str, Any]:
        """How the dataset was made (our metadata["robolearn"]; empty for a foreign dataset)."""
        return dict(self.metadata.get("robolearn") or {})

    def episode_returns(self) -> np.ndarray:
        """The undiscounted return of each episode."""
        return np.array([float(np.sum(ep.rewards)) for ep in self.episodes])

    def transitions(self) -> Transitions:
        """All episodes flattened into (s, a, r, s', terminal, timeout) arrays."""
        eps = self.episodes

        def cat(part: str, key: str | None) -> np.ndarray:
            sl = slice(None, -1) if part == "obs" else slice(1, None)
            return np.concatenate([_obs_at(ep.observations, key)[sl] for ep in eps])

        if isinstance(self.observation_space, spaces.Dict):
            keys = list(self.observation_space.spaces)
            obs: Obs = {k: cat("obs", k) for k in keys}
            nxt: Obs = {k: cat("next", k) for k in keys}
        else:
            obs, nxt = cat("obs", None), cat("next", None)
        return Transitions(
            observations=obs,
            actions=np.concatenate([ep.actions for ep in eps]),
            rewards=np.concatenate([ep.rewards for ep in eps]).astype(np.float32),
            next_observations=nxt,
            terminations=np.concatenate([ep.terminations for ep in eps]).astype(bool),
            truncations=np.concatenate([ep.truncations for ep in eps]).astype(bool),
            episode_index=np.concatenate([np.full(ep.steps, i, dtype=np.int64) for i, ep in enumerate(eps)]),
        )

    def check_env(self, env: Any) -> None:
        """UserError (one line, naming the file) when the env's spaces do not match the dataset's."""
        for what, ours, theirs in (
            ("observation", self.observation_space, env.observation_space),
            ("action", self.action_space, env.action_space),
        ):
            if not spaces_match(ours, theirs):
                raise UserError(
                    f"{self.path}: {what} space {describe(ours)} does not match the env's {describe(theirs)}; "
                    "use a dataset collected on this env"
                )

    def normalized_score(self, returns: Any) -> Any:
        """D4RL-style score against the dataset's stored reference returns."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise UserError(
                f"{self.path / METADATA_FILE} stores no ref_min_score/ref_max_score to normalise with"
            )
        return normalized_score(returns, self.ref_min_score, self.ref_max_score)


def _read_group(g: Any) -> np.ndarray | dict[str, np.ndarray]:
    if hasattr(g, "keys"):
        return {k: g[k][()] for k in g}
    return np.asarray(g[()])


def load_dataset(name_or_path: str | Path) -> OfflineDataset:
    """Open and validate a Minari HDF5 dataset (a folder or a minari id under datasets_root())."""
    import h5py

    data = dataset_dir(name_or_path)
    meta_path, main_path = data / METADATA_FILE, data / MAIN_FILE
    if not meta_path.is_file():
        raise UserError(
            f"no dataset at {name_or_path!s} ({meta_path} is missing); pass a dataset folder or an id under {datasets_root()}"
        )
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{meta_path} is not valid JSON ({exc}); the dataset is corrupt, collect it again"
        ) from None
    for key in ("dataset_id", "total_episodes", "total_steps", "observation_space", "action_space"):
        if key not in metadata:
            raise UserError(f"{meta_path} lacks {key!r}; not a Minari dataset")
    if metadata.get("data_format", "hdf5") != "hdf5":
        raise UserError(f"{meta_path}: data_format {metadata['data_format']!r} is not supported (hdf5 only)")
    obs_space = deserialize_space(metadata["observation_space"])
    act_space = deserialize_space(metadata["action_space"])
    if not main_path.is_file():
        raise UserError(f"{main_path} is missing; the dataset is incomplete, collect it again")
    episodes: list[Episode] = []
    try:
        f = h5py.File(main_path, "r")
    except OSError as exc:
        raise UserError(
            f"{main_path} is not a readable HDF5 file (truncated or corrupt: {exc}); collect it again"
        ) from None
    try:
        with f:
            n = int(metadata["total_episodes"])
            if len(f.keys()) != n:
                raise UserError(f"{main_path} holds {len(f.keys())} episodes, {meta_path.name} says {n}")
            for i in range(n):
                name = f"episode_{i}"
                if name not in f:
                    raise UserError(f"{main_path} lacks {name}")
                g = f[name]
                infos = {k: np.asarray(v[()]) for k, v in g["infos"].items()} if "infos" in g else {}
                seed = g.attrs.get("seed")
                ep = Episode(
                    observations=_read_group(g["observations"]),
                    actions=np.asarray(g["actions"][()]),
                    rewards=np.asarray(g["rewards"][()]),
                    terminations=np.asarray(g["terminations"][()], dtype=bool),
                    truncations=np.asarray(g["truncations"][()], dtype=bool),
                    infos={k: v for k, v in infos.items() if v.dtype != object},
                    seed=None if seed is None else int(seed),
                )
                try:
                    _check_episode(i, ep, obs_space, act_space)
                except UserError as exc:
                    raise UserError(f"{main_path}: {exc}") from None
                episodes.append(ep)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(
            f"{main_path} could not be read ({exc}); the file is truncated or corrupt, collect it again"
        ) from None
    steps = sum(ep.steps for ep in episodes)
    if steps != int(metadata["total_steps"]):
        raise UserError(f"{main_path} holds {steps} steps, {meta_path.name} says {metadata['total_steps']}")
    return OfflineDataset(data, metadata, episodes)
