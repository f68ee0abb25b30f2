"""python -m robolearn.asap: config checks, the mismatch handed to the bridge, and the collect stage
over loopback DDS against the sim bridge (the shipped standing policy as the pretrained artifact)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import REFERENCE
from omegaconf import DictConfig, OmegaConf

from robolearn.asap import Pipeline, _mismatch_name, _mismatch_overrides, validate_asap_config
from robolearn.config.validate import compose_config
from robolearn.deploy.config import register_deploy_schemas
from robolearn.deploy.mismatch import target_from_config
from robolearn.deploy.recorder import read_log
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec

SPEC = get_robot_spec("go2")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["stage=deploy"], "stage=deploy is not a stage"),
        (["robot=g1_29dof"], "robot=g1_29dof has no ASAP pipeline"),
        (["stage=all"], "pretrain.run is missing"),
        (["stage=collect", "pretrain.run=/nonexistent"], "is not a run directory"),
        (["stage=collect", "collect.schedule=[[0,0.5]]"], "must be [start s, vx, vy, yaw rate]"),
        (["stage=evaluate", "evaluate.commands=[[0.5]]"], "evaluate.commands[0]=[0.5] must be three numbers"),
        (["stage=evaluate", "methods=[asap,sim2real]"], "methods has 'sim2real', not a method"),
        (["stage=evaluate", "methods=[dr,dr]"], "names a method twice"),
        (["stage=collect", "collect.attempts=0"], "collect.attempts=0 must be at least 1"),
        (["stage=collect", "train_delta.learning_rate=0"], "train_delta.learning_rate=0.0 must be > 0"),
        (["stage=evaluate", "dr.randomization.kp_scale=[1.2,0.5]"], "dr: randomization.kp_scale=[1.2, 0.5]"),
        (
            ["stage=collect", "mismatch.edits=[{kind: motor_kp, joint: hip, scale: 0.5}]"],
            "'hip' is not a joint",
        ),
    ],
)
def test_bad_asap_configs_are_one_line(overrides: list[str], needle: str) -> None:
    cfg = compose_config("asap", overrides)
    with pytest.raises(UserError) as info:
        validate_asap_config(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_bridge_gets_the_same_mismatch_as_the_config() -> None:
    register_deploy_schemas()
    inline = "mismatch.edits=[{kind: motor_kp, joint: '*', scale: 0.7}, {kind: action_delay, steps: 2}]"
    for overrides in (["mismatch=friction_mass_delay"], [inline]):
        cfg = compose_config("asap", overrides)
        mine = target_from_config(_deploy_view(cfg), SPEC)
        theirs = target_from_config(compose_config("deploy", ["robot=go2", *_mismatch_overrides(cfg)]), SPEC)
        assert [e.to_dict() for e in mine.edits] == [e.to_dict() for e in theirs.edits] and mine.edits
        np.testing.assert_array_equal(mine.kp_scale, theirs.kp_scale)
        assert mine.delay_s == theirs.delay_s


def _deploy_view(cfg: DictConfig) -> DictConfig:
    """The asap config seen the way target_from_config reads a deploy config (robot.model: ours)."""
    return OmegaConf.create({"robot": {"model": None}, "mismatch": OmegaConf.to_container(cfg.mismatch)})


def test_collect_records_over_dds_into_a_delta_dataset(tmp_path: Path) -> None:
    pytest.importorskip("cyclonedds")
    pytest.importorskip("unitree_sdk2py")
    from robolearn.sim2real.recordings import load_delta_dataset

    cfg = compose_config(
        "asap",
        [
            "stage=collect",
            "mismatch=kp065",
            f"out={tmp_path}",
            "collect.seconds=2.0",
            "collect.schedule=[[0.0,0.0,0.0,0.0],[1.0,0.0,0.0,0.4]]",
            "collect.rt_priority=40",
        ],
    )
    validate_asap_config(cfg)
    pipeline = Pipeline(cfg)
    shutil.copytree(REFERENCE, pipeline.artifact)  # stands in for pretrain's export
    data = pipeline.collect()
    segments, prov = load_delta_dataset(data, "go2")
    assert prov["mismatch"]["name"] == "kp065" and prov["source"] == "bridge"
    # About 2 s of POLICY at 50 Hz; a late step on a busy machine splits a stretch, losing nothing else.
    assert sum(s.steps for s in segments) + len(segments) > 80
    assert len(segments) == prov["irregular_steps_split"] + 1
    # The target's true base height stays a standing Go2's: the recording is of a robot on its feet.
    assert 0.2 < segments[-1].qpos[-1, 2] < 0.4
    # The schedule reached the policy through the bridge's remote: 0.4 rad/s from 1 s into POLICY.
    commands = read_log(tmp_path / "collect" / "log").policy["command"]
    np.testing.assert_allclose(commands[5], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(commands[-1], [0.0, 0.0, 0.4], atol=1e-3)
    assert pipeline.collect() == data  # a finished stage is skipped
    # The folder is this pipeline's: other physics in it is refused, not silently reused.
    other = compose_config("asap", ["stage=collect", "mismatch=gains_strength", f"out={tmp_path}"])
    with pytest.raises(UserError, match="holds an ASAP pipeline for mismatch='kp065', not 'gains_strength'"):
        Pipeline(other)


def test_inline_edits_are_not_taken_for_the_named_mismatch() -> None:
    named = compose_config("asap", ["mismatch=kp065"])
    inline = compose_config(
        "asap", ["mismatch=kp065", "mismatch.edits=[{kind: motor_kp, joint: '*', scale: 0.5}]"]
    )
    assert _mismatch_name(named) == "kp065"
    assert _mismatch_name(inline).startswith("custom-")
