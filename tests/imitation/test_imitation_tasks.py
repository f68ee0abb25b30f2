"""Hidden-context imitation tasks: the context stays hidden, experts succeed, splits are disjoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.imitation.collect import demo_seeds, run_demo
from robolearn.imitation.evaluation import evaluate_policy
from robolearn.imitation.tasks import (
    TASKS,
    PointMassEnv,
    checkerboard_parity,
    get_task,
)

SCRIPTED = ("pointmass_pixels", "reacher", "pusher", "bimodal")


def _flat(obs: object) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in obs.values()])
    return np.asarray(obs, dtype=np.float64).ravel()


@pytest.mark.parametrize("name", SCRIPTED)
def test_context_is_not_in_the_observation(name: str) -> None:
    """Two contexts, same seed and actions: the learner sees the same observations (start and after steps)."""
    task = get_task(name)
    a, b = task.sample_contexts(2, "pretrain", seed=3)
    assert not np.allclose(a, b)
    env_a, env_b = task.make_env(a), task.make_env(b)
    obs_a, _ = env_a.reset(seed=11)
    obs_b, _ = env_b.reset(seed=11)
    np.testing.assert_array_equal(_flat(obs_a), _flat(obs_b))
    assert env_a.observation_space.contains(obs_a)
    action = np.full(env_a.action_space.shape or (), 0.5, dtype=np.float32)
    for _ in range(3):
        obs_a, reward_a, *_ = env_a.step(action)
        obs_b, reward_b, *_ = env_b.step(action)
    np.testing.assert_array_equal(_flat(obs_a), _flat(obs_b))
    assert reward_a != reward_b  # the context is real: it changes the reward, just not what is seen


@pytest.mark.parametrize("name", SCRIPTED)
def test_scripted_expert_succeeds(name: str) -> None:
    """Each scripted expert reaches its goal on >= 85% of fresh contexts (measured: 200/200 for the point
    masses and reacher, 59/60 + 40/40 for pusher)."""
    task = get_task(name)
    contexts = task.sample_contexts(8, "finetune", seed=0)
    wins = []
    for i, context in enumerate(contexts):
        episode = run_demo(task, context, *demo_seeds(0, i))
        wins.append(bool(episode.infos["success"][-1]))
        assert episode.steps <= task.max_steps
    assert np.mean(wins) >= 0.85, wins


def test_pixels_follow_the_mass_not_the_goal() -> None:
    """Frames change when the point moves, and are identical for different (undrawn) goals."""
    task = get_task("pointmass_pixels")
    env_a = task.make_env(np.array([0.2, 0.2], dtype=np.float32))
    env_b = task.make_env(np.array([-0.2, -0.1], dtype=np.float32))
    obs_a, _ = env_a.reset(seed=5)
    obs_b, _ = env_b.reset(seed=5)
    assert obs_a["pixels"].shape == (64, 64, 3) and obs_a["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])
    moved = obs_a
    for _ in range(5):
        moved, *_ = env_a.step(np.array([1.0, 0.0], dtype=np.float32))
    assert moved["state"][0] > obs_a["state"][0] + 0.02
    changed = np.abs(moved["pixels"].astype(int) - obs_a["pixels"].astype(int)).sum(axis=-1) > 30
    assert changed.sum() > 10  # the ball's disc left some pixels and covered others


def test_pretrain_and_finetune_contexts_are_disjoint() -> None:
    """Checkerboard cells (point masses) and angular sectors (reacher) never mix; sampling is seeded."""
    for name in ("pointmass_pixels", "bimodal"):
        task = get_task(name)
        low, high = np.array(task.goal_low), np.array(task.goal_high)  # type: ignore[attr-defined]
        pre = task.sample_contexts(300, "pretrain", seed=0)
        fine = task.sample_contexts(300, "finetune", seed=0)
        assert set(checkerboard_parity(pre, low, high, task.cells)) == {0}  # type: ignore[attr-defined]
        assert set(checkerboard_parity(fine, low, high, task.cells)) == {1}  # type: ignore[attr-defined]
        assert np.all(pre >= low) and np.all(pre <= high)
        np.testing.assert_array_equal(pre, task.sample_contexts(300, "pretrain", seed=0))
        assert not np.allclose(pre, task.sample_contexts(300, "pretrain", seed=1))
    reacher = get_task("reacher")
    for split, parity in (("pretrain", 0), ("finetune", 1)):
        ctx = reacher.sample_contexts(300, split, seed=0)
        sector = np.floor(np.mod(np.arctan2(ctx[:, 1], ctx[:, 0]), 2 * np.pi) / (2 * np.pi / 12)).astype(int)
        assert set(sector % 2) == {parity}
        assert np.all(np.linalg.norm(ctx, axis=1) < 0.2)
    pusher = get_task("pusher")
    for split, parity in (("pretrain", 0), ("finetune", 1)):
        ctx = pusher.sample_contexts(300, split, seed=0)
        angle = np.degrees(np.arctan2(ctx[:, 1], ctx[:, 0]))
        assert set(np.floor((angle + 60.0) / 20.0).astype(int) % 2) == {parity}
        np.testing.assert_allclose(np.linalg.norm(ctx, axis=1), 0.10, rtol=1e-5)


def test_bimodal_demos_pass_on_both_sides() -> None:
    """Demos pick a side at random: both signs of x appear where the demos pass the obstacle."""
    task = get_task("bimodal")
    contexts = task.sample_contexts(16, "pretrain", seed=0)
    sides = []
    for i, context in enumerate(contexts):
        episode = run_demo(task, context, *demo_seeds(1, i))
        assert episode.infos["success"][-1]
        states = episode.observations
        assert isinstance(states, np.ndarray)
        at_obstacle = np.argmin(np.abs(states[:, 1] - task.obstacle[1]))  # type: ignore[attr-defined]
        x = states[at_obstacle, 0]
        assert abs(x) > task.obstacle[2]  # type: ignore[attr-defined]  # went around, not through
        sides.append(np.sign(x))
    assert 4 <= np.sum(np.array(sides) > 0) <= 12


def test_bimodal_collision_fails_the_episode() -> None:
    """Driving straight at the obstacle ends the episode with success False (the averaged-modes failure)."""
    task = get_task("bimodal")
    env = task.make_env(task.sample_contexts(1, "pretrain", seed=0)[0])
    env.reset(seed=0)
    for _ in range(task.max_steps):
        _, _, terminated, truncated, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
        if terminated or truncated:
            break
    assert terminated and info["collided"] and not info["success"]


def test_evaluate_policy_is_seeded_and_fresh_per_episode() -> None:
    """A fresh policy per episode, fixed seeds (same numbers twice), and the contract's keys."""
    task = get_task("reacher")
    contexts = task.sample_contexts(2, "finetune", seed=0)
    made = []

    def factory():  # type: ignore[no-untyped-def]
        made.append(1)
        rng = np.random.default_rng(len(made))
        return lambda obs: rng.uniform(-1, 1, size=2)

    first = evaluate_policy(task, factory, contexts, episodes_per_context=2, seed=0)
    assert len(made) == 4 and first["episodes"] == 4
    made.clear()
    second = evaluate_policy(task, factory, contexts, episodes_per_context=2, seed=0)
    assert first["returns"] == second["returns"]
    assert first["success_rate"] == 0.0  # random torques do not hold the fingertip on a 2 cm target
    assert {"success_rate", "mean_return", "std_return", "returns", "successes", "episodes"} <= set(first)
    with pytest.raises(UserError, match="do not fit task reacher"):
        evaluate_policy(task, factory, np.zeros((2, 3)), 1, 0)


def test_bad_names_and_contexts_are_one_line_errors() -> None:
    """Unknown task, split, count or context: a UserError naming the value and the choices."""
    assert set(SCRIPTED) <= set(TASKS)
    with pytest.raises(UserError, match="did you mean pointmass_pixels"):
        get_task("pointmass_pixel")
    task = get_task("bimodal")
    with pytest.raises(UserError, match="split=train is not known"):
        task.sample_contexts(3, "train", 0)
    with pytest.raises(UserError, match="n=0"):
        task.sample_contexts(0, "pretrain", 0)
    with pytest.raises(UserError, match="does not fit task bimodal"):
        task.make_env(np.zeros(3))
    with pytest.raises(UserError, match="needs a PointMassEnv"):
        task.expert(get_task("reacher").make_env(np.array([0.1, 0.0])), np.zeros(2))
    assert isinstance(task.make_env(np.zeros(2)).unwrapped, PointMassEnv)


REFERENCE_STAND = Path(__file__).resolve().parents[2] / "policies" / "reference" / "go2_stand"


def test_go2_command_is_hidden_and_the_artifact_expert_runs() -> None:
    """Go2: the command is cut from the learner's observation (same obs for two commands), kept in the
    expert's input, and the shipped standing artifact drives the env (plumbing; no walking policy yet)."""
    task = get_task("go2_command", expert_path=str(REFERENCE_STAND), max_steps=20)
    a, b = task.sample_contexts(2, "pretrain", seed=0)
    env_a, env_b = task.make_env(a), task.make_env(b)
    obs_a, _ = env_a.reset(seed=4)
    obs_b, _ = env_b.reset(seed=4)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert obs_a.shape == (42,)  # Go2Velocity-v1's 45 values less the 3 command values
    wrapper = env_a
    np.testing.assert_allclose(wrapper.full_observation[6:9], a * np.array([2.0, 2.0, 0.25]), rtol=1e-6)  # type: ignore[attr-defined]
    # Action 0 holds the default pose: it stands, so its error is about the commanded speed.
    result = evaluate_policy(task, lambda: lambda obs: np.zeros(12, dtype=np.float32), a[None], 1, 0)
    assert abs(result["tracking_error"] - np.linalg.norm(a[:2])) < 0.15
    episode = run_demo(task, a, *demo_seeds(0, 0))
    assert episode.steps == 20 and np.all(np.isfinite(episode.actions))
    assert episode.infos["tracking_error"][1:].min() >= 0.0
    with pytest.raises(UserError, match="holds no policy artifact"):
        get_task("go2_command", expert_path=str(Path(__file__).parent)).expert(env_a, a)


def test_pixels_render_when_mujoco_was_imported_first_without_mujoco_gl() -> None:
    """A process that imported mujoco before robolearn.imitation (so MuJoCo chose GLFW, no display)
    still renders the point mass off screen."""
    import os
    import subprocess
    import sys

    code = (
        "import mujoco, numpy as np\n"
        "from robolearn.imitation.tasks import PointMassEnv\n"
        "obs, _ = PointMassEnv(np.zeros(2), pixels=True).reset(seed=0)\n"
        "print(obs['pixels'].std() > 1.0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip() == "True"
