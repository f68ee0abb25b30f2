"""`python -m robolearn.offline` end to end on a tiny real dataset (random InvertedPendulum-v5 steps written with
robolearn.datasets): the run directory, the normalised score, model reuse, exact resume and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

from robolearn.datasets import Episode, write_dataset

TINY = [
    "steps=60",
    "dynamics.hidden=[16,16]",
    "dynamics.max_epochs=3",
    "dynamics.members=3",
    "dynamics.elites=2",
    "sac.hidden=[16,16]",
    "loop.batch_size=32",
    "loop.rollout_every=20",
    "loop.rollout_batch=32",
    "loop.eval_every=30",
    "loop.eval_episodes=2",
    "loop.log_every=10",
    "loop.checkpoint_every=10",
    "logger.progress=none",
]


def write_random_dataset(
    out: Path, steps: int = 300, env_id: str = "InvertedPendulum-v5", space_of: str | None = None
) -> Path:
    """A few hundred uniformly random steps of env_id as a Minari dataset (spaces of `space_of` if given)."""
    env = gym.make(env_id)
    box = env.action_space
    assert isinstance(box, gym.spaces.Box)
    rng = np.random.default_rng(0)
    episodes, total, i = [], 0, 0
    while total < steps:
        obs, _ = env.reset(seed=i)
        i += 1
        o, a, r, term = [obs], [], [], []
        while True:
            act = np.asarray(rng.uniform(box.low, box.high), dtype=np.float32)
            obs, rew, te, tr, _ = env.step(act)
            o.append(obs)
            a.append(act)
            r.append(float(rew))
            term.append(te)
            if te or tr:
                break
        trunc = [False] * len(a)
        trunc[-1] = not term[-1]
        episodes.append(
            Episode(
                np.array(o, np.float32), np.array(a), np.array(r, np.float32), np.array(term), np.array(trunc)
            )
        )
        total += len(a)
    spaces_env = gym.make(space_of) if space_of else env
    if space_of:
        episodes = [
            Episode(
                np.zeros((e.steps + 1, *spaces_env.observation_space.shape), np.float32),  # type: ignore[misc]
                np.zeros((e.steps, *spaces_env.action_space.shape), np.float32),  # type: ignore[misc]
                e.rewards,
                e.terminations,
                e.truncations,
            )
            for e in episodes
        ]
    return write_dataset(
        out,
        episodes,
        dataset_id="test/invertedpendulum/random-v0",
        observation_space=spaces_env.observation_space,
        action_space=spaces_env.action_space,
        env_id=env_id,
        ref_min_score=0.0,
        ref_max_score=1000.0,
    )


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the verb's console entry in this process (as `robolearn-offline ARGS`); its exit code."""
    from robolearn import offline

    monkeypatch.setattr(sys, "argv", ["robolearn-offline", *args])
    try:
        offline.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("offline")
    write_random_dataset(root / "ds")
    args = [f"dataset={root / 'ds'}", "algo=mopo", *TINY]
    with pytest.MonkeyPatch.context() as mp:
        assert _main([*args, f"hydra.run.dir={root / 'whole'}"], mp) == 0
    return root, args


def _metrics(run_dir: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "wall_time_s"} for line in lines]


def test_verb_runs_end_to_end_with_a_normalised_score(tiny_run: tuple[Path, list[str]]) -> None:
    run_dir = tiny_run[0] / "whole"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 60
    returns = summary["eval/returns"]
    assert len(returns) == 2 and summary["eval/episodes"] == 2
    assert summary["eval/mean_return"] == pytest.approx(np.mean(returns))
    assert summary["eval/normalized_score"] == pytest.approx(100 * np.mean(returns) / 1000.0)
    assert (
        summary["offline/penalty_coef"] == 1.0 and summary["offline/rollout_length"] == 5
    )  # MOPO's defaults
    assert len(summary["offline/elites"]) == 2
    for name in ("dynamics.pt", "policy.pt", "config.yaml"):
        assert (run_dir / name).is_file(), name
    import torch

    from robolearn.mbrl.offline.loop import load_policy

    policy, facts = load_policy(run_dir)
    assert facts["env_id"] == "InvertedPendulum-v5"
    with torch.no_grad():
        act = policy(torch.randn(50, 4))
    assert act.shape == (50, 1) and bool((act.abs() <= 3.0).all())  # InvertedPendulum's box is [-3, 3]
    metrics = _metrics(run_dir)
    assert metrics[0]["step"] == 0 and "dynamics/val_mse" in metrics[0]
    rollouts = [m for m in metrics if "rollout/transitions" in m]
    assert [m["step"] for m in rollouts] == [1, 21, 41]  # a round every 20 gradient steps
    assert all(m["rollout/penalty"] > 0 for m in rollouts)
    config = OmegaConf.load(run_dir / "config.yaml")
    assert (
        config.seed == 0
        and config.method.name == "mopo"
        and config.env.id == "test/invertedpendulum/random-v0"
    )
    from robolearn.report.collect import collect

    groups = collect([run_dir]).groups
    assert [(g.method, len(g.runs)) for g in groups] == [("mopo", 1)]


def test_mobile_reuses_a_saved_model(
    tiny_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, args = tiny_run
    out = root / "mobile"
    mobile = [a.replace("algo=mopo", "algo=mobile") for a in args]
    assert (
        _main([*mobile, f"model={root / 'whole'}", "algo.num_samples=2", f"hydra.run.dir={out}"], monkeypatch)
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["eval/normalized_score"]) and summary["offline/algo"] == "mobile"
    assert not (out / "dynamics.pt").exists()  # loaded, not trained
    assert (
        summary["offline/elites"]
        == json.loads((root / "whole" / "summary.json").read_text())["offline/elites"]
    )
    assert any("train/mobile_penalty" in m for m in _metrics(out))


def test_morec_filter_runs_through_the_hook(
    tiny_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, args = tiny_run
    out = root / "morec"
    morec = [
        "filter=morec",
        f"model={root / 'whole'}",
        "filter.rollout_length=7",
        "filter.rollout_batch=16",
        "filter.learn.rounds=60",
        "filter.learn.snapshot_every=10",
        f"hydra.run.dir={out}",
    ]
    assert _main([*args, *morec], monkeypatch) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["offline/filter"] == "morec" and summary["offline/rollout_length"] == 7
    assert (out / "dynamics_reward.pt").is_file()
    assert OmegaConf.load(out / "config.yaml").method.name == "morec-mopo"
    rounds = [m for m in _metrics(out) if "rollout/filter_score" in m]
    assert rounds and all(0.0 < m["rollout/filter_score"] < 1.0 for m in rounds)
    assert all(m["rollout/transitions"] <= 16 * 7 for m in rounds)


def test_sigint_then_resume_gives_identical_metrics(
    tiny_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, args = tiny_run
    cut = root / "cut"
    pid = os.getpid()

    def interrupt_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 60
        while not (cut / "checkpoints" / "latest.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(pid, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_after_first_checkpoint, daemon=True)
    watcher.start()
    assert _main([*args, f"hydra.run.dir={cut}"], monkeypatch) == 130
    watcher.join()
    assert "resume=" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (cut / "summary.json").exists()
    assert _main([f"resume={cut}"], monkeypatch) == 0
    whole = json.loads((root / "whole" / "summary.json").read_text())
    again = json.loads((cut / "summary.json").read_text())
    assert again["resumes"] == 1
    assert again["eval/returns"] == whole["eval/returns"]
    assert _metrics(cut) == _metrics(root / "whole")  # every logged figure, bit for bit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["algo=mopoo"], "algo=mopoo"),
        (["filter=bogus"], "filter=bogus"),
        (["dataset=NOWHERE"], "no dataset at"),
        (["dataset=MISMATCH"], "does not match the env"),
        (["algo.penalty_coef=-1"], "algo.penalty_coef=-1"),
        (["loop.rollout_batch=0"], "loop.rollout_batch=0"),
        (["dynamics.elites=9"], "dynamics.elites=9"),
        (["model=NOWHERE"], "model="),
    ],
)
def test_bad_input_fails_before_any_work(
    args: list[str],
    message: str,
    tiny_run: tuple[Path, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, base = tiny_run
    mismatch = root / "mismatch"
    if not mismatch.exists():
        write_random_dataset(mismatch, steps=30, space_of="Pendulum-v1")
    args = [
        a.replace("dataset=NOWHERE", f"dataset={tmp_path / 'none'}")
        .replace("dataset=MISMATCH", f"dataset={mismatch}")
        .replace("model=NOWHERE", f"model={tmp_path / 'none'}")
        for a in args
    ]
    given = {a.split("=", 1)[0] for a in args}
    full = [a for a in base if a.split("=", 1)[0] not in given] + args
    assert _main([*full, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "run").exists()


def test_help_lists_the_keys(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["--help"], monkeypatch) == 0
    out = capsys.readouterr().out
    for key in ("dataset", "algo", "filter", "model", "resume", "steps"):
        assert key in out


def test_per_dataset_settings_and_their_precedence(tmp_path: Path) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.offline import complete_config, dataset_key, settings_of

    assert dataset_key("robolearn/hopper/medium-replay-v0") == "hopper-medium-replay"
    assert dataset_key("plain") is None and dataset_key(None) is None
    # A dataset whose id names a table entry: robolearn/hopper/medium-v0's key on an InvertedPendulum dataset
    # (the tables are keyed by name only).
    ds = tmp_path / "ds"
    write_random_dataset(ds, steps=30)
    meta = ds / "data" / "metadata.json"
    info = json.loads(meta.read_text())
    info["dataset_id"] = "robolearn/hopper/medium-v0"
    meta.write_text(json.dumps(info))

    def resolved(*overrides: str) -> tuple[float, int, int, bool]:
        cfg, _ = complete_config(compose_config("offline", [f"dataset={ds}", *overrides]))
        s, sac, _ = settings_of(cfg)
        return s.penalty_coef, s.rollout_length, s.rollout_batch, sac.auto_alpha

    assert resolved("algo=mopo") == (5.0, 5, 50000, True)  # tianheyu927/mopo hopper_medium.py
    assert resolved("algo=mobile") == (1.5, 5, 50000, False)  # yihaosun1124/mobile hopper_medium.py
    assert resolved("algo=mopo", "algo.penalty_coef=2.5") == (2.5, 5, 50000, True)  # the command line wins
    # MOREC's filter: its own weights per algorithm and its own rollout schedule.
    morec = [
        "filter=morec",
        "filter.penalty_coef_by_algo.mopo.hopper-medium=7.0",
        "filter.rollout_length=50",
        "filter.rollout_batch=300",
    ]
    assert resolved("algo=mopo", *morec) == (7.0, 50, 300, True)
    assert resolved("algo=mopo", *morec, "algo.penalty_coef=1") == (1.0, 50, 300, True)
    assert resolved("algo=mobile", *morec)[0] != 7.0  # another algorithm's weight is not taken
