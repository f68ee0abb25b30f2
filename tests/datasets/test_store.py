"""robolearn.datasets: Minari-layout write/read round trips, minari itself reading ours, and clear failures."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robolearn.datasets import Episode, dataset_dir, load_dataset, normalized_score, write_dataset
from robolearn.errors import UserError

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = spaces.Box(-2.0, 2.0, (1,), np.float32)


def _pendulum_episodes(n: int, steps: int, seed: int = 0) -> list[Episode]:
    """Real Pendulum-v1 rollouts under random actions."""
    env = gym.make("Pendulum-v1", max_episode_steps=steps)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        o, a, r, term, trunc = [obs], [], [], [], []
        while True:
            act = rng.uniform(-2, 2, size=1).astype(np.float32)
            obs, rew, te, tr, _ = env.step(act)
            o.append(obs), a.append(act), r.append(rew), term.append(te), trunc.append(tr)
            if te or tr:
                break
        out.append(
            Episode(
                observations=np.array(o, np.float32),
                actions=np.array(a, np.float32),
                rewards=np.array(r),
                terminations=np.array(term),
                truncations=np.array(trunc),
                infos={"context": np.full((len(o), 2), float(i), np.float32)},
                seed=seed + i,
            )
        )
    return out


def _write(tmp_path: Path, episodes: list[Episode], **kw: object) -> Path:
    args: dict = {
        "dataset_id": "test/pendulum/random-v0",
        "observation_space": OBS,
        "action_space": ACT,
        "env_id": "Pendulum-v1",
        "ref_min_score": -1500.0,
        "ref_max_score": -150.0,
        "provenance": {"kind": "random", "seed": 0},
    }
    args.update(kw)
    return write_dataset(tmp_path / "ds", episodes, **args)


def test_round_trip_and_transitions(tmp_path: Path) -> None:
    eps = _pendulum_episodes(3, 20)
    data = _write(tmp_path, eps)
    ds = load_dataset(tmp_path / "ds")
    assert ds.path == data and ds.env_id == "Pendulum-v1" and ds.total_steps == 60
    assert ds.provenance["kind"] == "random"
    for a, b in zip(eps, ds.episodes, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.infos["context"], b.infos["context"])
        assert b.seed == a.seed
    tr = ds.transitions()
    assert len(tr) == 60
    # s' of step t is s of step t+1 inside an episode, and the episode index tracks the source.
    np.testing.assert_array_equal(tr.next_observations[:19], tr.observations[1:20])  # type: ignore[index]
    np.testing.assert_array_equal(tr.observations[20], eps[1].observations[0])  # type: ignore[index]
    assert tr.episode_index.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    assert tr.truncations.sum() == 3 and not tr.terminations.any()
    np.testing.assert_allclose(ds.episode_returns(), [e.rewards.sum() for e in eps])


def test_minari_reads_ours(tmp_path: Path) -> None:
    minari = pytest.importorskip("minari")
    eps = _pendulum_episodes(2, 10)
    data = _write(tmp_path, eps)
    md = minari.MinariDataset(data)
    assert md.total_episodes == 2 and md.total_steps == 20
    got = list(md.iterate_episodes())
    np.testing.assert_array_equal(got[1].observations, eps[1].observations)
    np.testing.assert_array_equal(got[0].infos["context"], eps[0].infos["context"])
    assert md.spec.env_spec is not None and md.spec.env_spec.id == "Pendulum-v1"


def test_minari_id_resolves_under_minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    data = write_dataset(
        "test/pendulum/random-v0",
        _pendulum_episodes(1, 5),
        dataset_id="test/pendulum/random-v0",
        observation_space=OBS,
        action_space=ACT,
    )
    assert data == tmp_path / "root" / "test/pendulum/random-v0" / "data"
    assert dataset_dir("test/pendulum/random-v0") == data
    assert load_dataset("test/pendulum/random-v0").total_steps == 5
    assert minari.load_dataset("test/pendulum/random-v0").total_steps == 5


def test_dict_pixel_observations_round_trip_through_minari(tmp_path: Path) -> None:
    minari = pytest.importorskip("minari")
    obs_space = spaces.Dict(
        {"pixels": spaces.Box(0, 255, (32, 32, 3), np.uint8), "state": spaces.Box(-1, 1, (2,), np.float32)}
    )
    rng = np.random.default_rng(0)
    t = 4
    ep = Episode(
        observations={
            "pixels": rng.integers(0, 256, (t + 1, 32, 32, 3), dtype=np.uint8),
            "state": rng.uniform(-1, 1, (t + 1, 2)).astype(np.float32),
        },
        actions=rng.uniform(-2, 2, (t, 1)).astype(np.float32),
        rewards=np.zeros(t),
        terminations=np.array([False, False, False, True]),
        truncations=np.zeros(t, bool),
    )
    data = _write(tmp_path, [ep], observation_space=obs_space, env_id=None)
    ds = load_dataset(data)
    tr = ds.transitions()
    assert isinstance(tr.observations, dict) and tr.observations["pixels"].shape == (t, 32, 32, 3)
    np.testing.assert_array_equal(tr.next_observations["pixels"], ep.observations["pixels"][1:])  # type: ignore[index,call-overload]
    # Stored raw, not JPEG: minari gives back the exact bytes.
    got = next(iter(minari.MinariDataset(data).iterate_episodes()))
    np.testing.assert_array_equal(got.observations["pixels"], ep.observations["pixels"])  # type: ignore[index]


def test_write_refuses_bad_episodes_and_keeps_old_dataset(tmp_path: Path) -> None:
    eps = _pendulum_episodes(2, 10)
    _write(tmp_path, eps)
    with pytest.raises(UserError, match="already holds a dataset; pass overwrite=true"):
        _write(tmp_path, eps)
    bad = _pendulum_episodes(1, 10)[0]
    bad.actions[3, 0] = np.nan
    with pytest.raises(UserError, match=r"episode 1 actions holds NaN or inf \(first at row 3\)"):
        _write(tmp_path, [eps[0], bad], overwrite=True)
    # The failed overwrite left the old dataset whole, and no temp folder behind.
    assert load_dataset(tmp_path / "ds").total_steps == 20
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["data"]
    short = _pendulum_episodes(1, 10)[0]
    short.truncations[-1] = False
    with pytest.raises(UserError, match="neither terminates nor truncates"):
        _write(tmp_path, [short], overwrite=True)
    with pytest.raises(UserError, match=r"observations has shape \(11, 3\), expected \(11, 4\)"):
        _write(tmp_path, eps, overwrite=True, observation_space=spaces.Box(-1, 1, (4,), np.float32))
    with pytest.raises(UserError, match="not a minari id"):
        _write(tmp_path, eps, overwrite=True, dataset_id="no version")


def test_load_names_the_file_and_the_problem(tmp_path: Path) -> None:
    import h5py

    with pytest.raises(UserError, match="no dataset at"):
        load_dataset(tmp_path / "missing")
    data = _write(tmp_path, _pendulum_episodes(2, 10))
    main = data / "main_data.hdf5"
    raw = main.read_bytes()
    main.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(UserError, match=r"main_data.hdf5 .*truncated or corrupt"):
        load_dataset(data)
    main.write_bytes(raw)
    with h5py.File(main, "r+") as f:
        f["episode_1/rewards"][4] = np.nan
    with pytest.raises(UserError, match=r"main_data.hdf5: episode 1 rewards holds NaN"):
        load_dataset(data)


def test_check_env_and_normalized_score(tmp_path: Path) -> None:
    ds = load_dataset(_write(tmp_path, _pendulum_episodes(1, 5)))
    ds.check_env(gym.make("Pendulum-v1"))
    with pytest.raises(
        UserError,
        match=r"observation space Box\(float32, \(3,\)\) does not match the env's Box\(float64, \(4,\)\)|observation space Box\(float32, \(3,\)\) does not match",
    ):
        ds.check_env(gym.make("InvertedPendulum-v5"))
    # D4RL: 100 * (R - random) / (expert - random), here random -1500, expert -150.
    assert ds.normalized_score(-150.0) == pytest.approx(100.0)
    assert ds.normalized_score(-825.0) == pytest.approx(50.0)
    np.testing.assert_allclose(normalized_score(np.array([0.0, 10.0]), 0.0, 40.0), [0.0, 25.0])
    with pytest.raises(UserError, match="cannot normalise"):
        normalized_score(1.0, 5.0, 5.0)
