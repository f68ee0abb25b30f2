"""The continual MBRL loop and its verb: a run end to end, kill + resume, one-line errors."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robolearn.mbrl.continual.loop import ContinualLoop, LoopSettings, matrix_from_json, matrix_to_json
from robolearn.runs.loop import LoopRun
from robolearn.runs.trainer import TrainingStopped

# -- the loop alone, with small stand-ins for the learner and planner ----------------------------------
SETTINGS = LoopSettings(
    random_steps=30,
    mpc_steps=30,
    update_every=15,
    episode_steps=20,
    planner="cem",
    horizon=3,
    samples=8,
    elites=2,
    iterations=1,
    eval_episodes=1,
    eval_episode_steps=10,
    heldout_fraction=0.25,
    checkpoint_every=10,
)


class TinyLearner:
    """A finetune-style learner: one linear delta model trained a few steps per fit (real torch)."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.net = torch.nn.Linear(obs_dim + act_dim, obs_dim)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.calls: list[tuple[str, int]] = []

    def begin_task(self, task: int) -> None:
        self.calls.append(("begin", task))

    def fit(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> dict[str, float]:
        self.calls.append(("fit", task))
        x = torch.as_tensor(np.concatenate([obs, act], -1))
        y = torch.as_tensor(next_obs - obs)
        for _ in range(5):
            idx = torch.randint(0, len(x), (16,))
            loss = torch.mean((self.net(x[idx]) - y[idx]) ** 2)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return {"loss": float(loss.detach()), "n": float(len(x))}

    def end_task(self, task: int, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        self.calls.append(("end", task))

    def model(self, task: int) -> TinyLearner:
        return self

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = obs + self.net(torch.cat([obs, act], -1))
        return mean, torch.zeros_like(mean)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "calls": list(self.calls)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.calls = list(state["calls"])


class RandomShooting:
    """Random shooting with the loop's planner interface (global torch RNG)."""

    def __init__(self, space: gym.spaces.Box) -> None:
        self.low = torch.as_tensor(space.low)
        self.high = torch.as_tensor(space.high)

    def reset(self) -> None:
        pass

    def plan(self, model: Any, reward_fn: Any, obs: torch.Tensor, done_fn: Any = None) -> torch.Tensor:
        acts = self.low + (self.high - self.low) * torch.rand(
            SETTINGS.samples, SETTINGS.horizon, *self.low.shape
        )
        x = obs.expand(SETTINGS.samples, -1)
        total = torch.zeros(SETTINGS.samples)
        for h in range(SETTINGS.horizon):
            nxt, _ = model.predict(x, acts[:, h])
            total += reward_fn(x, acts[:, h], nxt)
            x = nxt
        return acts[int(torch.argmax(total)), 0]


def pendulum_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * act[..., 0] ** 2)


def make_pendulum(task: int) -> gym.Env:
    # Two tasks: gravity 10 and 4 (Pendulum-v1's own `g` argument).
    return gym.make("Pendulum-v1", g=(10.0, 4.0)[task])


def _loop(seed: int = 0) -> ContinualLoop:
    torch.manual_seed(seed)
    loop = ContinualLoop(
        SETTINGS,
        2,
        learner=None,
        make_env=make_pendulum,
        env_functions=lambda t: (pendulum_reward, None),
        make_planner=RandomShooting,
        seed=seed,
    )
    loop.learner = TinyLearner(loop.obs_dim, loop.act_dim)
    return loop


def _run_loop(run_dir: Path, stop_after_episodes: int | None = None) -> ContinualLoop:
    cfg = OmegaConf.create({"seed": 0, "env": {"id": "two_pendulums"}, "logger": {"progress": "none"}})
    with LoopRun(cfg, run_dir, "test", total=2 * SETTINGS.steps_per_task) as run:
        loop = _loop()
        state = run.resume_state()
        if state is not None:
            loop.load_state_dict(state)
        if stop_after_episodes is not None:
            original = loop.run_episode
            count = [0]

            def counting(r: LoopRun) -> None:
                original(r)
                count[0] += 1
                if count[0] == stop_after_episodes:
                    os.kill(os.getpid(), signal.SIGINT)  # a real signal, handled by LoopRun

            loop.run_episode = counting  # type: ignore[method-assign]
        loop.run(run)
        run.finish(
            {"eval/mean_return": float(np.mean(loop.returns[-1])), "returns": matrix_to_json(loop.returns)}
        )
    return loop


def test_loop_runs_tasks_in_order_and_fills_lower_triangle(tmp_path: Path) -> None:
    loop = _run_loop(tmp_path / "run")
    calls = loop.learner.calls
    assert calls[0] == ("begin", 0) and ("begin", 1) in calls and calls[-1] == ("end", 1)
    # Fits per task: one right after the random steps and one every update_every MPC steps.
    assert calls.count(("fit", 0)) == SETTINGS.mpc_steps // SETTINGS.update_every
    assert calls.index(("end", 0)) < calls.index(("begin", 1))
    tri = np.tril(np.ones((2, 2), bool))
    assert np.isfinite(loop.returns[tri]).all() and np.isnan(loop.returns[~tri]).all()
    assert np.isfinite(loop.pred_error[tri]).all() and (loop.pred_error[tri] > 0).all()
    # The held-out split: about a quarter of each task's steps, never in the training buffer.
    for h in loop.heldout:
        assert 0 < len(h) < SETTINGS.steps_per_task
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("model/loss" in x for x in lines) and any("eval/pred_error" in x for x in lines)


def test_loop_stop_and_resume_matches_uninterrupted(tmp_path: Path) -> None:
    whole = _run_loop(tmp_path / "whole")
    with pytest.raises(TrainingStopped):
        _run_loop(tmp_path / "cut", stop_after_episodes=4)
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = _run_loop(tmp_path / "cut")
    np.testing.assert_array_equal(resumed.returns, whole.returns)
    np.testing.assert_array_equal(resumed.pred_error, whole.pred_error)
    cut_lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    whole_lines = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "wall_time_s"} for x in cut_lines]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "wall_time_s"} for x in whole_lines]


def test_matrix_json_round_trip() -> None:
    m = np.array([[1.0, math.nan], [2.0, 3.0]])
    rows = matrix_to_json(m)
    assert rows == [[1.0, None], [2.0, 3.0]]
    np.testing.assert_array_equal(matrix_from_json(rows), m)


def test_settings_reject_bad_values() -> None:
    values = {k: getattr(SETTINGS, k) for k in SETTINGS.__dataclass_fields__}
    from robolearn.errors import UserError

    with pytest.raises(UserError, match=r"loop.elites=9 exceeds loop.samples=8"):
        LoopSettings.from_mapping({**values, "elites": 9})
    with pytest.raises(UserError, match=r"loop.planner=ilqr is out of range; use cem or mppi"):
        LoopSettings.from_mapping({**values, "planner": "ilqr"})
    with pytest.raises(UserError, match=r"loop.horizon is not set"):
        LoopSettings.from_mapping({**values, "horizon": None})


# -- the verb, end to end (real sequence, learner, planner, MuJoCo) ----------------------------------
TINY_SEQUENCE = """\
name: tiny
env: InvertedPendulum-v5
tasks:
  - name: nominal
  - name: heavy_pole
    edits: [{kind: body_mass, body: pole, scale: 2.0}]
"""
TINY = [
    "learner=hypercrl",
    "loop.random_steps=20",
    "loop.mpc_steps=20",
    "loop.update_every=10",
    "loop.episode_steps=20",
    "loop.horizon=3",
    "loop.samples=16",
    "loop.elites=4",
    "loop.iterations=1",
    "loop.eval_episodes=1",
    "loop.eval_episode_steps=10",
    "loop.checkpoint_every=5",
    "model.hidden=[16,16]",
    "model.train_iters=5",
    "model.batch_size=16",
    "logger.progress=none",
]


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the verb's console entry in this process (as `robolearn-continual ARGS`); its exit code."""
    from robolearn import continual

    monkeypatch.setattr(sys, "argv", ["robolearn-continual", *args])
    try:
        continual.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("continual")
    (root / "tiny.yaml").write_text(TINY_SEQUENCE)
    args = [f"sequence_file={root / 'tiny.yaml'}", *TINY]
    with pytest.MonkeyPatch.context() as mp:
        assert _main([*args, f"hydra.run.dir={root / 'whole'}"], mp) == 0
    return root, args


def test_verb_runs_a_tiny_sequence_end_to_end(tiny_run: tuple[Path, list[str]]) -> None:
    run_dir = tiny_run[0] / "whole"
    summary = json.loads((run_dir / "summary.json").read_text())
    returns = matrix_from_json(summary["continual/returns"])
    errors = matrix_from_json(summary["continual/pred_error"])
    assert returns.shape == errors.shape == (2, 2)
    assert summary["continual/returns"][0][1] is None and summary["continual/pred_error"][0][1] is None
    assert np.isfinite(returns[np.tril_indices(2)]).all() and (errors[np.tril_indices(2)] > 0).all()
    assert summary["eval/returns"] == list(returns[-1])
    assert summary["eval/mean_return"] == pytest.approx(float(np.mean(returns[-1])))
    assert len(summary["continual/retention"]) == 2 and len(summary["continual/reference"]) == 2
    assert summary["steps"] == 2 * 40
    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.seed == 0 and config.env.id == "tiny" and config.method.name == "hypercrl"
    assert config.loop.horizon == 3 and config.model.lr == 0.001  # given, and filled from configs/loop
    # robolearn.report reads it like any training run.
    from robolearn.report.collect import collect

    groups = collect([run_dir]).groups
    assert [(g.method, g.env_id, len(g.runs)) for g in groups] == [("hypercrl", "tiny", 1)]


def test_verb_kill_and_resume_gives_the_uninterrupted_figures(
    tiny_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, args = tiny_run
    cut = root / "cut"
    pid = os.getpid()

    def interrupt_after_first_checkpoint() -> None:
        # A real SIGINT to this process (LoopRun's handler takes it) once a checkpoint exists.
        deadline = time.monotonic() + 60
        while not (cut / "checkpoints" / "latest.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.005)
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
    for key in ("continual/returns", "continual/pred_error", "continual/retention", "eval/returns"):
        assert again[key] == whole[key], key  # bit-identical figures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["learner=hypercr"], "learner=hypercr is not a known learner (did you mean hypercrl"),
        (["sequence=pendulm"], "sequence=pendulm is not a known sequence (did you mean pendulum"),
        (["loop.elites=500"], "loop.elites=500 exceeds loop.samples=100"),
        (["sequence_file=BAD"], "tasks[1].edits[0].body"),
    ],
)
def test_bad_input_fails_before_any_work(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_SEQUENCE.replace("body: pole", "body: polee"))
    args = [a.replace("BAD", str(bad)) for a in args]
    assert _main([*args, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "run").exists()


def test_help_names_every_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from robolearn.config.validate import compose_config

    assert _main(["--help"], monkeypatch) == 0
    text = capsys.readouterr().out
    assert (
        text.startswith("usage: python -m robolearn.continual ") and "\n       robolearn-continual " in text
    )
    # method.name and env.id are labels derived from learner and sequence, not settings.
    for key in set(compose_config("continual", []).keys()) - {"method", "env"}:
        assert f"\n  {key}" in text, f"continual --help does not list {key}"


def test_forward_transfer_against_a_single_run(
    tiny_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, args = tiny_run
    single_args = [a if a != "learner=hypercrl" else "learner=single" for a in args]
    assert _main([*single_args, f"hydra.run.dir={root / 'single'}"], monkeypatch) == 0
    single = json.loads((root / "single" / "summary.json").read_text())
    # single against itself: no transfer wherever it is defined.
    assert all(v is None or v == 0.0 for v in single["continual/forward_transfer"])
    assert (
        _main([*args, f"baseline.single={root / 'single'}", f"hydra.run.dir={root / 'fwd'}"], monkeypatch)
        == 0
    )
    fwd = json.loads((root / "fwd" / "summary.json").read_text())
    returns = matrix_from_json(fwd["continual/returns"])
    diag_single = np.diag(matrix_from_json(single["continual/returns"]))
    ref = np.array(fwd["continual/reference"])
    expected = (np.diag(returns) - diag_single) / (diag_single - ref)
    got = np.array([np.nan if v is None else v for v in fwd["continual/forward_transfer"]])
    np.testing.assert_allclose(got, np.where(diag_single > ref, expected, np.nan))
    # A baseline that is not a finished run is refused before any work.
    assert (
        _main([*args, f"baseline.single={root / 'nowhere'}", f"hydra.run.dir={root / 'x'}"], monkeypatch) == 2
    )
    assert not (root / "x").exists()


def test_a_run_directory_holding_another_run_is_refused(
    tiny_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, args = tiny_run
    before = (root / "whole" / "summary.json").read_text()
    assert _main([*args, "seed=1", f"hydra.run.dir={root / 'whole'}"], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed=0, not 1" in err, err
    assert (root / "whole" / "summary.json").read_text() == before
