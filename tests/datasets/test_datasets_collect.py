"""robolearn.collect: D4RL-style datasets from a real (tiny) SAC behaviour run on Pendulum-v1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robolearn.config.validate import compose_config
from robolearn.datasets import load_dataset
from robolearn.datasets.collect import (
    Snapshot,
    choose_policies,
    collect,
    list_snapshots,
    register_collect_schema,
    replay_episodes,
    validate_collect_config,
)
from robolearn.errors import UserError
from robolearn.runs.checkpoint import latest_checkpoint
from robolearn.runs.layout import RunDir

SIZE = 300
# A few hundred steps of a small SAC: policies kept at 200 (before learning starts: the initial one),
# 400 (the medium) and 600 steps (the expert).
TRAIN = '["agent.learning_starts=200","eval.episodes=1","agent.batch_size=64","agent.policy_kwargs={net_arch:[16]}"]'


def _cfg(behavior: Path, out: Path, kind: str, size: int | None = SIZE, *extra: str) -> Any:
    register_collect_schema()
    return compose_config(
        "collect",
        [
            "env=Pendulum-v1",
            f"kind={kind}",
            f"size={'null' if size is None else size}",
            f"behavior.dir={behavior}",
            "behavior.steps=600",
            "behavior.snapshot_every=200",
            f"behavior.train_overrides={TRAIN}",
            f"out={out}",
            "ref_episodes=1",
            "progress=none",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The behaviour run (trained once) and one dataset of each kind."""
    root = tmp_path_factory.mktemp("collect")
    behavior = root / "behavior"
    out = {"behavior": behavior}
    for kind, size in (
        ("medium", SIZE),
        ("expert", SIZE),
        ("random", SIZE),
        ("medium-expert", SIZE),
        ("medium-replay", None),
    ):
        out[kind] = collect(_cfg(behavior, root / kind, kind, size), f"test {kind}")
    return out


@pytest.mark.parametrize(
    ("kind", "steps"),
    [
        ("random", SIZE),
        ("medium", SIZE),
        ("expert", SIZE),
        ("medium-expert", 2 * SIZE),
        ("medium-replay", 400),
    ],
)
def test_each_kind_writes_the_asked_steps(made: dict[str, Any], kind: str, steps: int) -> None:
    ds = load_dataset(made[kind])
    assert ds.total_steps == steps
    assert ds.env_id == "Pendulum-v1"
    assert ds.provenance["kind"] == kind
    # Pendulum never terminates; every episode ends by its time limit or by the dataset's cut.
    assert all(ep.truncations[-1] for ep in ds.episodes)


def test_policies_and_provenance(made: dict[str, Any]) -> None:
    ds = load_dataset(made["medium"])
    b = ds.provenance["behavior"]
    assert b["expert"]["step"] == 600 and b["medium"]["step"] == 400
    assert set(b["eval_returns"]) == {"200", "400", "600"}
    assert ds.provenance["command"] == "test medium"
    assert "torch" in ds.provenance["versions"] and ds.provenance["seed"] == 0
    assert ds.env_kwargs == {}
    # Sampled from the stochastic policy: the medium and expert data differ from each other.
    ex = load_dataset(made["expert"])
    assert not np.allclose(ds.episodes[0].actions, ex.episodes[0].actions)


def test_medium_replay_is_the_replay_buffer_prefix(made: dict[str, Any]) -> None:
    ds = load_dataset(made["medium-replay"])
    ckpt = latest_checkpoint(RunDir(made["behavior"]))
    assert ckpt is not None
    with np.load(ckpt.path / "replay_buffer.npz") as buf:
        n = ds.total_steps
        tr = ds.transitions()
        np.testing.assert_array_equal(tr.observations, buf["observations"][:n, 0])
        np.testing.assert_array_equal(tr.next_observations, buf["next_observations"][:n, 0])
        np.testing.assert_allclose(tr.rewards, buf["rewards"][:n, 0])
        # SB3 stores actions in [-1, 1]; Pendulum's torque range is [-2, 2].
        np.testing.assert_allclose(tr.actions, 2.0 * buf["actions"][:n, 0], rtol=1e-6)
        assert tr.truncations.sum() == buf["dones"][:n, 0].sum() + (buf["dones"][n - 1, 0] == 0)


def test_medium_expert_is_medium_then_expert(made: dict[str, Any]) -> None:
    both = load_dataset(made["medium-expert"]).episodes
    parts = load_dataset(made["medium"]).episodes + load_dataset(made["expert"]).episodes
    assert len(both) == len(parts)
    for a, b in zip(both, parts, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        assert a.seed == b.seed


def test_references_are_stored_and_normalise(made: dict[str, Any]) -> None:
    ds = load_dataset(made["expert"])
    refs = ds.provenance["references"]
    assert ds.ref_min_score == pytest.approx(np.mean(refs["random_returns"]))
    assert ds.ref_max_score == pytest.approx(np.mean(refs["expert_returns"]))
    assert ds.normalized_score(ds.ref_max_score) == pytest.approx(100.0)
    assert ds.normalized_score(ds.ref_min_score) == pytest.approx(0.0)
    # Every kind from one behaviour run carries the same references.
    assert load_dataset(made["random"]).ref_max_score == ds.ref_max_score


def test_minari_itself_loads_the_dataset(made: dict[str, Any]) -> None:
    minari = pytest.importorskip("minari")
    ours = load_dataset(made["medium-expert"])
    theirs = minari.MinariDataset(made["medium-expert"])
    assert theirs.total_steps == ours.total_steps
    assert theirs.total_episodes == len(ours.episodes)
    first = next(iter(theirs.iterate_episodes()))
    np.testing.assert_array_equal(first.actions, ours.episodes[0].actions)


def test_reuse_does_not_retrain(
    made: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = latest_checkpoint(RunDir(made["behavior"]))
    assert ckpt is not None
    before = (ckpt.step, (made["behavior"] / "summary.json").stat().st_mtime_ns)
    collect(_cfg(made["behavior"], tmp_path / "again", "expert"), "test again")
    after = latest_checkpoint(RunDir(made["behavior"]))
    assert after is not None
    assert (after.step, (made["behavior"] / "summary.json").stat().st_mtime_ns) == before
    assert "training" not in capsys.readouterr().out
    # Same seeds, same behaviour run: the same data.
    a, b = load_dataset(tmp_path / "again").episodes, load_dataset(made["expert"]).episodes
    np.testing.assert_array_equal(a[0].actions, b[0].actions)


def test_existing_dataset_is_refused_before_work(made: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="overwrite=true"):
        validate_collect_config(_cfg(made["behavior"], made["expert"].parent, "expert"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("kind=meduim", "kind=meduim is not a dataset kind (did you mean medium"),
        ("size=0", "size=0 must be a positive"),
        ("behavior.agent=ppo", "behavior.agent=ppo"),
        ("medium_fraction=1.5", "medium_fraction=1.5"),
    ],
)
def test_bad_values_fail_in_one_line(tmp_path: Path, override: str, message: str) -> None:
    cfg = _cfg(tmp_path / "b", tmp_path / "d", "medium", SIZE, override)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        validate_collect_config(cfg)
    assert not (tmp_path / "b").exists()


def test_bad_env_fails_before_work_from_the_command_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "robolearn.collect",
            "env=Hoper-v5",
            "kind=medium",
            "size=10",
            f"out={tmp_path / 'd'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Hoper-v5" in lines[0] and "Hopper-v5" in lines[0]
    assert not (tmp_path / "d").exists()


def test_medium_is_closest_to_a_third_of_the_way_from_random() -> None:
    snaps = [
        Snapshot(Path(f"s{i}"), i, r, 0.0, 2) for i, r in enumerate([-100.0, 200.0, 390.0, 600.0, 1000.0])
    ]
    medium, expert = choose_policies(snaps, 1 / 3, random_return=-50.0)
    # target: -50 + (1000 + 50) / 3 = 300 -> the 390 policy is 90 away, the 200 one 100 away.
    assert expert.step == 4 and medium.step == 2
    # Snapshots taken before learning starts hold the initial policy, never the medium one.
    medium, _ = choose_policies(snaps, 1 / 3, random_return=-50.0, min_step=2)
    assert medium.step == 3
    with pytest.raises(UserError, match="after learning starts"):
        choose_policies(snaps[:1], 1 / 3, 0.0)


def test_wrapped_replay_buffer_is_refused(tmp_path: Path) -> None:
    from gymnasium import spaces

    f = tmp_path / "replay_buffer.npz"
    z = np.zeros((4, 1, 3), np.float32)
    np.savez(
        f,
        __meta__=np.array([2, 1, 4]),
        observations=z,
        next_observations=z,
        actions=z[..., :1],
        rewards=z[..., 0],
        dones=z[..., 0],
        timeouts=z[..., 0],
    )
    with pytest.raises(UserError, match="wrapped around"):
        replay_episodes(f, 2, spaces.Box(-1, 1, (1,)))
    assert list_snapshots(tmp_path) == []


def test_medium_expert_reuses_the_written_parts(
    made: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    for kind in ("medium", "expert", "medium-expert"):
        collect(_cfg(made["behavior"], tmp_path, kind, SIZE, "out=null"), f"test {kind}")
    ds = load_dataset("robolearn/pendulum/medium-expert-v0")
    assert [p.get("reused_from") for p in ds.provenance["parts"]] == [
        "robolearn/pendulum/medium-v0",
        "robolearn/pendulum/expert-v0",
    ]
    # Reused or rolled out again: the same data.
    for a, b in zip(ds.episodes, load_dataset(made["medium-expert"]).episodes, strict=True):
        np.testing.assert_array_equal(a.actions, b.actions)


def test_a_lost_snapshot_is_kept_again_without_training(made: dict[str, Any], tmp_path: Path) -> None:
    """A collect killed between a segment's end and its snapshot: the next one snapshots the finished
    segment (same evaluation) instead of training it again."""
    import shutil

    from robolearn.datasets.collect import behavior_spec, ensure_behavior_run

    run = tmp_path / "run"
    shutil.copytree(made["behavior"], run)
    kept = {s.step: s.mean_return for s in list_snapshots(run)}
    shutil.rmtree(run / "snapshots" / "step_000000000600")
    stamp = (run / "summary.json").stat().st_mtime_ns
    snaps = ensure_behavior_run(behavior_spec(_cfg(run, tmp_path / "d", "expert")))
    assert {s.step: s.mean_return for s in snaps} == kept
    assert (run / "summary.json").stat().st_mtime_ns == stamp


def test_random_kind_acts_with_the_runs_initial_policy(made: dict[str, Any]) -> None:
    """The policy kept at step 200 (= learning_starts: no update yet) is the run's initial one."""
    import torch

    from robolearn.datasets.collect import initial_policy, load_policy

    rebuilt = initial_policy(made["behavior"], 0.1).model.policy.state_dict()
    kept = load_policy(list_snapshots(made["behavior"])[0], "sac", 0.1).model.policy.state_dict()
    assert rebuilt.keys() == kept.keys()
    assert all(torch.equal(rebuilt[k], kept[k]) for k in kept)
