"""ASAP's oracle and SysID baselines (robolearn.sim2real.physics) and the verb's fine-tuning arms.

The oracle's training task must simulate exactly the target's physics (gains, torque limits, delay,
edited model); SysID must recover a known mismatch from a recording by replaying it; the arms'
overrides must compose into a valid training config that keeps the recipe's randomisation.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from robolearn.config.validate import compose_config
from robolearn.deploy.mismatch import target_physics
from robolearn.envs.vector import BatchedVecEnv
from robolearn.errors import UserError
from robolearn.robots.model import default_model_path
from robolearn.robots.registry import get_robot_spec
from robolearn.sim2real.delta_task import DeltaActionTask
from robolearn.sim2real.physics import (
    PhysicsParams,
    TrainingPhysics,
    fit_sysid,
    oracle_physics,
    replay_errors,
    replay_starts,
)

SPEC = get_robot_spec("go2")
REPO = Path(__file__).resolve().parents[2]


def _mismatch(name: str) -> list[dict]:
    return list(yaml.safe_load((REPO / "configs" / "mismatch" / f"{name}.yaml").read_text())["edits"])


@pytest.mark.parametrize("mismatch", ["gains_strength", "friction_mass_delay", "kp065"])
def test_the_oracle_trains_on_the_targets_physics(mismatch: str, kp065_dataset: Path, tmp_path: Path) -> None:
    edits = _mismatch(mismatch)
    target = target_physics(SPEC, edits, name=mismatch)
    truth = oracle_physics("go2", edits, tmp_path)
    task = DeltaActionTask(
        str(kp065_dataset),
        num_envs=2,
        backend="batch",
        model_path=None if truth.model_path is None else str(truth.model_path),
        randomization=truth.params.randomization() or None,
    )
    venv = BatchedVecEnv(task)
    try:
        venv.seed(0)
        venv.reset()
        # The motors: the gains the target applies for the spec's commanded gains, its torque limits.
        np.testing.assert_allclose(task.kp, np.broadcast_to(SPEC.kp_array * target.kp_scale, task.kp.shape))
        np.testing.assert_allclose(task.kd, np.broadcast_to(SPEC.kd_array * target.kd_scale, task.kd.shape))
        np.testing.assert_allclose(
            task.torque_limit, np.broadcast_to(target.torque_limit, task.torque_limit.shape)
        )
        assert np.all(task.action_delay == round(target.delay_s / SPEC.control_dt))
        # The model: the target's edited MJCF (friction, payload, joint friction), not the robot's own.
        if target.model_edits:
            expected = mujoco.MjModel.from_xml_path(str(target.model_file(default_model_path(SPEC))))
            np.testing.assert_allclose(task.mj_model.geom_friction, expected.geom_friction)
            np.testing.assert_allclose(task.mj_model.dof_frictionloss, expected.dof_frictionloss)
            assert task.mj_model.body_mass.sum() == pytest.approx(expected.body_mass.sum())
            assert expected.body_mass.sum() == pytest.approx(
                mujoco.MjModel.from_xml_path(str(default_model_path(SPEC))).body_mass.sum() + 1.5
            )
        else:
            assert truth.model_path is None
    finally:
        venv.close()


def test_the_oracle_refuses_a_motor_mismatch_that_differs_between_joints(tmp_path: Path) -> None:
    edits = [{"kind": "motor_kp", "joint": "FR_calf_joint", "scale": 0.5}]
    with pytest.raises(UserError) as info:
        oracle_physics("go2", edits, tmp_path)
    text = str(info.value)
    assert "one kp_scale for every joint" in text and "FR_calf_joint" in text and "\n" not in text


def test_the_recipes_randomisation_is_centred_on_the_physics() -> None:
    recipe = {"friction": [0.5, 1.25], "joint_friction": [0.5, 1.5], "obs_noise": 1.0}
    p = PhysicsParams(kp_scale=0.65, kd_scale=0.8, torque_scale=0.8, added_mass=1.5, friction=0.5, delay=1)
    r = p.randomization(recipe)
    assert r["friction"] == [0.25, 0.625] and r["joint_friction"] == [0.5, 1.5] and r["obs_noise"] == 1.0
    assert r["added_base_mass"] == [1.5, 1.5] and r["action_delay"] == [1, 1]
    # kp applied = spec kp x kp_scale x motor_strength = 0.65 spec kp; the torque limit 0.8 of the spec's.
    assert r["motor_strength"] == [0.8, 0.8]
    assert r["kp_scale"][0] * r["motor_strength"][0] == pytest.approx(0.65)
    assert r.get("kd_scale", [1.0, 1.0])[0] * r["motor_strength"][0] == pytest.approx(0.8)
    assert PhysicsParams().randomization(recipe) == recipe  # the nominal robot leaves the recipe alone
    assert recipe == {"friction": [0.5, 1.25], "joint_friction": [0.5, 1.5], "obs_noise": 1.0}


def test_replay_in_the_true_physics_beats_the_nominal_one(kp065_dataset: Path, tmp_path: Path) -> None:
    starts = replay_starts(kp065_dataset, 4)
    nominal = replay_errors(kp065_dataset, starts, horizon=4)
    truth = replay_errors(
        kp065_dataset, starts, horizon=4, physics=oracle_physics("go2", _mismatch("kp065"), tmp_path)
    )
    assert truth.starts == nominal.starts == len(starts) > 20
    assert truth.joint_pos_rms < 0.2 * nominal.joint_pos_rms, (truth, nominal)
    weaker = replay_errors(
        kp065_dataset, starts, horizon=4, physics=TrainingPhysics(PhysicsParams(kp_scale=0.8))
    )
    assert truth.joint_pos_rms < weaker.joint_pos_rms < nominal.joint_pos_rms


def test_sysid_recovers_the_weaker_motors(kp065_dataset: Path) -> None:
    params, report = fit_sysid(kp065_dataset, starts=64, max_evals=40, delays=[0], log=lambda _: None)
    assert abs(params.kp_scale - 0.65) < 0.1, params
    assert report["score"] < 0.5 * 2.0  # both errors under half the nominal simulator's on average
    assert report["replay"]["joint_pos_rms"] < 0.3 * report["nominal_replay"]["joint_pos_rms"]
    assert len(report["trials"]) == report["evaluations"] >= 20


def test_a_delay_fills_the_replays_delay_line_with_the_recorded_actions(kp065_dataset: Path) -> None:
    task = DeltaActionTask(
        str(kp065_dataset), num_envs=2, backend="batch", randomization={"action_delay": [2, 2]}
    )
    venv = BatchedVecEnv(task)
    try:
        venv.seed(0)
        venv.reset()
        task._actions_all[:] = np.arange(len(task._actions_all))[:, None]  # each row: its own index
        starts = np.array([[0, 5], [0, 1]])
        task.reset_to(np.arange(2), starts)
        length = task.action_history.shape[1]
        applied = []
        for _ in range(3):
            venv.step(np.zeros((2, SPEC.num_joints), dtype=np.float32))
            applied.append(task.action_history[:, (task.history_head - 2) % length, 0].copy())
        # Two periods late: the actions recorded 2 and 1 steps before the start, then the start's own;
        # before a stretch's first step its first action stands in.
        np.testing.assert_array_equal(np.array(applied)[:, 0], [3, 4, 5])
        np.testing.assert_array_equal(np.array(applied)[:, 1], [0, 0, 1])
    finally:
        venv.close()


def test_each_arm_composes_into_a_training_config_with_the_recipes_randomisation(tmp_path: Path) -> None:
    from robolearn.asap import METHODS, Pipeline

    run = tmp_path / "pretrain_run"
    (run / ".hydra").mkdir(parents=True)
    recipe = ["+experiment=go2_walk_trot_history"]
    OmegaConf.save(compose_config("train", recipe), run / "config.yaml")
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "out" / "sysid").mkdir(parents=True)
    (tmp_path / "out" / "sysid" / "fit.json").write_text(
        '{"params": {"kp_scale": 0.7, "kd_scale": 1.0, "torque_scale": 0.9, "added_mass": 0.5,'
        ' "friction": 1.0, "joint_friction": 1.0, "delay": 1}}'
    )
    cfg = compose_config(
        "asap", ["mismatch=gains_strength", f"pretrain.run={run}", f"out={tmp_path / 'out'}"]
    )
    pipeline = Pipeline(cfg)
    base = OmegaConf.to_container(compose_config("train", recipe).env.kwargs.randomization)
    assert base == {"friction": [0.5, 1.25], "joint_friction": [0.5, 1.5], "obs_noise": 1.0}
    from hydra import initialize_config_dir

    from robolearn.resources import configs_dir

    arms = {}
    # As in the verb: the arms' overrides are built while Hydra is initialised (the asap app's).
    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        for method in METHODS:
            if method in ("asap", "asap_gated", "delta_dynamics"):  # models from stages not run here
                stage = {
                    "asap": "train_delta",
                    "asap_gated": "train_delta",
                    "delta_dynamics": "train_dynamics",
                }[method]
                with pytest.raises(UserError, match=f"run stage={stage} first"):
                    pipeline.method_overrides(method)
                continue
            arms[method] = pipeline.method_overrides(method)
    seen = {}
    for method, overrides in arms.items():
        composed = compose_config("train", [*recipe, *overrides])
        seen[method] = OmegaConf.to_container(composed.env.kwargs.randomization)
    assert seen["nominal"] == base
    assert seen["dr"]["kp_scale"] == [0.5, 1.2] and seen["dr"]["obs_noise"] == 1.0
    assert seen["oracle"]["motor_strength"] == [0.8, 0.8] and seen["oracle"]["friction"] == [0.5, 1.25]
    assert seen["oracle"]["kp_scale"][0] * 0.8 == pytest.approx(0.65)
    assert seen["sysid"]["action_delay"] == [1, 1] and seen["sysid"]["added_base_mass"] == [0.5, 0.5]
    assert seen["sysid"]["motor_strength"] == [0.9, 0.9]


def test_the_open_loop_replays_only_the_simulators_of_the_arms(kp065_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from robolearn.asap import Pipeline

    one_joint = "mismatch.edits=[{kind: motor_kp, joint: FR_calf_joint, scale: 0.5}]"
    for methods in ("[nominal]", "[oracle]"):
        out = tmp_path / methods.strip("[]")
        cfg = compose_config("asap", [one_joint, f"methods={methods}", f"out={out}"])
        pipeline = Pipeline(cfg)
        shutil.copytree(kp065_dataset, pipeline.dataset)
        if methods == "[nominal]":
            replay = pipeline.open_loop()  # no oracle asked for: its refusal cannot stop the evaluation
            assert set(replay) == {"nominal"} and replay["nominal"]["joint_pos_rms"] > 0
        else:
            with pytest.raises(UserError, match=r"FR_calf_joint has 0\.5"):
                pipeline.open_loop()
