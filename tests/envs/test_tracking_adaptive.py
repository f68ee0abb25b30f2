"""Adaptive start sampling of G1 motion tracking (issue 16, BeyondMimic's adaptive sampling)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from robolearn.envs.state import get_vec_env_state, set_vec_env_state
from robolearn.envs.tasks.tracking import TrackingTask
from robolearn.envs.vector import make_batched_env
from robolearn.errors import UserError

N = 4
NJ = 23


def _task(sampling: dict[str, Any] | None, **kwargs: Any) -> TrackingTask:
    task = TrackingTask(num_envs=N, backend="batch", adaptive_sampling=sampling, **kwargs)
    task.seed_rng(0)
    task.reset_envs(np.arange(N))
    return task


def _fail_in(task: TrackingTask, clip: int, time_s: float) -> np.ndarray:
    """Put every env at `time_s` of `clip` and step once: a zero height tolerance fails them all there."""
    task.clip_index[:] = clip
    task.motion_time[:] = time_s - task.control_dt  # the step advances the reference first
    _, _, terminated, _, _ = task.step_envs(np.zeros((N, NJ)))
    assert terminated.all()
    return task.current_bin()


def test_failures_in_one_bin_raise_its_start_probability_and_the_starts_follow() -> None:
    task = _task({"bin_s": 1.0, "alpha": 0.5, "uniform": 0.1}, max_anchor_height_error=0.0)
    # Four 4 s (or 3.6 s) clips, four bins each, on one axis; no failures yet: today's uniform start.
    assert task.clip_bins.tolist() == [4, 4, 4, 4]
    np.testing.assert_allclose(task.start_probabilities(), np.full(16, 1 / 16))
    failed_bin = _fail_in(task, clip=1, time_s=1.5)
    assert set(failed_bin.tolist()) == {5}  # clip 1's second bin
    np.testing.assert_allclose(task.bin_failure_rate, np.eye(16)[5] * 0.5 * N)
    p = task.start_probabilities()
    assert p.sum() == pytest.approx(1.0)
    assert p[5] == pytest.approx(0.1 / 16 + 0.9) and p[5] > np.delete(p, 5).max()
    # The starts follow: frames drawn in bin 5 (clip 1, 1.0-2.0 s) about as often as p[5] says.
    in_bin = 0
    for _ in range(250):
        task.initial_state(np.arange(N))
        in_bin += int(np.sum(task.current_bin() == 5))
    assert in_bin / (250 * N) == pytest.approx(p[5], abs=0.04)


def test_the_kernel_spreads_failures_onto_the_bins_before_them_wrapping_on_looping_clips() -> None:
    task = _task({"alpha": 1.0, "uniform": 0.0, "kernel": [2.0, 1.0]}, max_anchor_height_error=0.0)
    _fail_in(task, clip=2, time_s=0.5)  # bin 8, the first of clip 2 (a looping clip)
    p = task.start_probabilities()
    # Bin 8 keeps 2/3 of its failures; clip 2's last bin (11) comes before it in the loop and takes 1/3.
    expected = np.zeros(16)
    expected[[8, 11]] = [2 / 3, 1 / 3]
    np.testing.assert_allclose(p, expected, atol=1e-12)


def test_without_failures_the_starts_stay_uniform() -> None:
    task = _task({"alpha": 0.5})
    for _ in range(5):
        _, _, terminated, _, _ = task.step_envs(np.zeros((N, NJ)))
        assert not terminated.any()
    np.testing.assert_array_equal(task.bin_failure_rate, np.zeros(16))
    np.testing.assert_allclose(task.start_probabilities(), np.full(16, 1 / 16))


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_the_uniform_share_is_a_floor_under_every_bin(share: float) -> None:
    task = _task({"alpha": 1.0, "uniform": share}, max_anchor_height_error=0.0)
    _fail_in(task, clip=0, time_s=3.5)
    p = task.start_probabilities()
    assert p.sum() == pytest.approx(1.0)
    assert np.all(p >= share / 16 - 1e-12)
    assert p[3] == pytest.approx(share / 16 + (1 - share))


def test_a_single_env_keeps_uniform_starts() -> None:
    task = TrackingTask(num_envs=1, adaptive_sampling={"alpha": 1.0}, max_anchor_height_error=0.0)
    assert task.adaptive is None
    task.reset(seed=0)
    _, _, terminated, _, _ = task.step(np.zeros(NJ))
    assert terminated
    np.testing.assert_array_equal(task.bin_failure_rate, np.zeros(16))
    np.testing.assert_allclose(task.start_probabilities(), np.full(16, 1 / 16))


def test_a_vec_env_snapshot_carries_the_sampler_and_continues_identically() -> None:
    def build() -> Any:
        # Every step ends every episode (zero height tolerance), so the sampler is used all the time.
        return make_batched_env(
            "robolearn/G1Tracking-v1",
            N,
            seed=5,
            adaptive_sampling={"alpha": 0.2, "kernel": [1.0, 0.5]},
            max_anchor_height_error=0.0,
        )

    actions = np.random.default_rng(2).uniform(-1, 1, (20, N, NJ))
    venv = build()
    venv.reset()
    for a in actions[:10]:
        venv.step(a)
    state = get_vec_env_state(venv)
    saved_rates = venv.task.bin_failure_rate.copy()
    assert saved_rates.sum() > 0 and not np.allclose(venv.task.start_probabilities(), 1 / 16)
    expected = [venv.step(a)[:3] for a in actions[10:]]
    fresh = build()
    fresh.reset()
    fresh.step(actions[3])
    set_vec_env_state(fresh, state)
    np.testing.assert_array_equal(fresh.task.bin_failure_rate, saved_rates)
    got = [fresh.step(a)[:3] for a in actions[10:]]
    for exp, res in zip(expected, got, strict=True):
        for a, b in zip(exp, res, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fresh.task.bin_failure_rate, venv.task.bin_failure_rate)
    np.testing.assert_array_equal(fresh.task.clip_index, venv.task.clip_index)
    np.testing.assert_array_equal(fresh.task.motion_time, venv.task.motion_time)


@pytest.mark.parametrize(
    ("sampling", "match"),
    [
        ({"bins": 1.0}, "adaptive_sampling.bins is not an option \\(did you mean bin_s\\?\\)"),
        ({"bin_s": 0.0}, "adaptive_sampling.bin_s=0.0 must be > 0"),
        ({"alpha": 0.0}, "adaptive_sampling.alpha=0.0 must be in \\(0, 1\\]"),
        ({"alpha": "fast"}, "adaptive_sampling.alpha='fast' must be a number"),
        ({"uniform": 1.5}, "adaptive_sampling.uniform=1.5 must be in \\[0, 1\\]"),
        ({"kernel": []}, "adaptive_sampling.kernel=\\[\\] must be a list of weights"),
        ({"kernel": [1.0, -0.5]}, "adaptive_sampling.kernel=\\[1.0, -0.5\\] must be a list"),
        ({"kernel": 0.5}, "adaptive_sampling.kernel=0.5 must be a list"),
        (0.1, "adaptive_sampling=0.1 must be a mapping"),
    ],
)
def test_bad_adaptive_sampling_options_fail_with_one_line_errors(sampling: Any, match: str) -> None:
    with pytest.raises(UserError, match=match) as info:
        TrackingTask(num_envs=N, backend="batch", adaptive_sampling=sampling)
    assert "\n" not in str(info.value)


def test_the_optional_end_effector_termination_ends_episodes_on_a_foot_or_hand_height_error() -> None:
    # A starting robot is within millimetres of its reference: a 1 mm tolerance ends every episode,
    # the default (off) none; a bad tolerance is refused in one line.
    for tolerance, ends in ((None, False), (0.001, True)):
        task = _task(None, max_end_effector_height_error=tolerance, init_joint_noise=0.0)
        _, _, terminated, _, _ = task.step_envs(np.zeros((N, NJ)))
        assert terminated.all() if ends else not terminated.any()
    with pytest.raises(UserError, match=r"max_end_effector_height_error=0\.0 must be > 0") as info:
        TrackingTask(num_envs=N, backend="batch", max_end_effector_height_error=0.0)
    assert "\n" not in str(info.value)


def test_start_first_plays_each_clip_from_its_first_frame() -> None:
    task = _task(None, start="first")
    for _ in range(20):
        state = task.initial_state(np.arange(N))
        assert np.all(task.motion_time == 0.0)
        assert np.all(task.frame_index() == 0)
        # The start pose is the chosen clip's first reference frame (plus the centimetre of lift).
        ref = task._table.fields["root_pos"][task.clip_index, 0]
        np.testing.assert_allclose(state.root_pos[:, :2], ref[:, :2])
    # Every clip gets chosen: the clip stays random, only the frame is fixed.
    clips = set()
    for _ in range(30):
        task.initial_state(np.arange(N))
        clips.update(task.clip_index.tolist())
    assert clips == set(range(len(task.references)))
    # The default (random) starts land on later frames too.
    random_task = _task(None)
    random_task.initial_state(np.arange(N))
    assert np.any(random_task.motion_time > 0.0)


def test_a_bad_start_mode_is_one_clear_error() -> None:
    with pytest.raises(UserError, match=r"start='middle' is not a start mode; use 'random'"):
        TrackingTask(num_envs=1, start="middle")
    with pytest.raises(UserError, match="start='first' with adaptive_sampling"):
        TrackingTask(num_envs=N, backend="batch", start="first", adaptive_sampling={"bin_s": 1.0})
