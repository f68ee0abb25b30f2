"""ASAP's delta-dynamics baseline (robolearn.sim2real.residual_dynamics): a residual of the next
velocities, learnt from a recording of the 0.65 x Kp target and added by a robot task after each step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.envs.vector import BatchedVecEnv
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec
from robolearn.sim2real.delta_task import DeltaActionTask
from robolearn.sim2real.physics import replay_errors, replay_starts
from robolearn.sim2real.residual_dynamics import FrozenResidual, fit_residual, residual_samples

SPEC = get_robot_spec("go2")


@pytest.fixture(scope="module")
def residual_model(kp065_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # All of the 1.5 s recording fitted (holdout=0): its pushes are in the recording but in no replay,
    # so so few held-out steps say little (benchmarks/asap.py reports held-out figures on 20 s of walking).
    out = tmp_path_factory.mktemp("residual") / "model.pt"
    return fit_residual(kp065_dataset, out, epochs=200, holdout=0.0).path


def test_the_residual_is_what_the_nominal_simulator_misses(kp065_dataset: Path, residual_model: Path) -> None:
    x, y, _ = residual_samples(kp065_dataset)
    assert len(x) == len(y) > 50 and y.shape[1] == 6 + SPEC.num_joints
    # The weaker motors leave joint velocities the nominal PD law does not produce.
    assert np.sqrt(np.square(y[:, 6:]).mean()) > 0.05
    report = torch.load(residual_model, weights_only=False)["report"]
    assert report["held_out"] == 0 and report["variance_explained_train"]["joint_vel"] > 0.5, report
    # Replaying the fitted recording with the residual lands nearer the target than the bare nominal replay.
    starts = replay_starts(kp065_dataset, 4)
    bare = replay_errors(kp065_dataset, starts, horizon=4)
    fixed = replay_errors(kp065_dataset, starts, horizon=4, residual=residual_model)
    assert fixed.joint_pos_rms < 0.9 * bare.joint_pos_rms, (fixed, bare)


def test_a_task_adds_exactly_the_models_residual_after_each_step(
    kp065_dataset: Path, residual_model: Path
) -> None:
    frozen = FrozenResidual.from_kwargs({"model": str(residual_model)}, SPEC)
    tasks = [
        DeltaActionTask(str(kp065_dataset), num_envs=3, backend="batch", horizon=4, residual_dynamics=options)
        for options in (None, {"model": str(residual_model)})
    ]
    frames = []
    for task in tasks:
        venv = BatchedVecEnv(task)
        venv.seed(0)
        venv.reset()
        task.reset_to(np.arange(3), task.starts[[0, 7, 20]])
        before = task.backend.frame()
        sent = task.recorded_action.copy()
        previous = task.action_before_start(np.arange(3))
        venv.step(np.zeros((3, SPEC.num_joints), dtype=np.float32))
        frames.append(task.backend.frame())
        venv.close()
    expected = frozen(SPEC, before, previous, sent)
    bare, corrected = frames
    np.testing.assert_allclose(corrected.root_lin_vel - bare.root_lin_vel, expected[:, :3], atol=1e-9)
    np.testing.assert_allclose(corrected.root_ang_vel - bare.root_ang_vel, expected[:, 3:6], atol=1e-9)
    np.testing.assert_allclose(corrected.joint_vel - bare.joint_vel, expected[:, 6:], atol=1e-9)
    np.testing.assert_array_equal(corrected.joint_pos, bare.joint_pos)  # positions follow at the next step
    assert np.abs(expected).max() > 1e-3


def test_bad_residual_models_are_one_line_errors(residual_model: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    torch.save({"schema": "something-else"}, junk)
    wrong_robot = tmp_path / "g1.pt"
    blob = torch.load(residual_model, weights_only=False)
    torch.save({**blob, "robot": "g1"}, wrong_robot)
    newer = tmp_path / "v2.pt"
    torch.save({**blob, "version": 2}, newer)
    for options, needle in (
        ({}, "residual_dynamics.model is missing"),
        ({"model": str(tmp_path / "nope.pt")}, "does not exist"),
        ({"model": str(junk)}, "is not a robolearn-residual-dynamics file"),
        ({"model": str(wrong_robot)}, "was fitted on the g1, not the go2"),
        ({"model": str(newer)}, "this robolearn reads v1"),
        ({"model": str(residual_model), "scale": 2}, "residual_dynamics.scale is not an option"),
    ):
        with pytest.raises(UserError) as info:
            FrozenResidual.from_kwargs(options, SPEC)
        assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)
