"""python -m robolearn.asap: config checks, the mismatch handed to the bridge, and the collect stage
over loopback DDS against the sim bridge (the shipped standing policy as the pretrained artifact)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

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
        (["stage=rounds", "rounds.count=0"], "rounds.count=0 must be a whole number of ASAP passes"),
        (
            ["stage=rounds", "methods=[nominal]", "rounds.count=2"],
            "which methods=['nominal'] lacks; add asap",
        ),
        (["stage=collect", "train_delta.learning_rate=0"], "train_delta.learning_rate=0.0 must be > 0"),
        (["stage=collect", "train_delta.learning_rate=inf"], "train_delta.learning_rate=inf must be > 0"),
        (["stage=collect", "train_delta.gamma=0"], "train_delta.gamma=0.0 must be a discount in (0, 1]"),
        (["stage=collect", "train_delta.checkpoint=latest"], "train_delta.checkpoint=latest is not allowed"),
        (
            ["stage=collect", "finetune.reuse=[/nonexistent/row]"],
            "finetune.reuse has /nonexistent/row, not a folder",
        ),
        (["stage=evaluate", "dr.randomization.kp_scale=[1.2,0.5]"], "dr: randomization.kp_scale=[1.2, 0.5]"),
        (
            ["stage=evaluate", "finetune.support.far=0.5"],
            "finetune.support near=1.0, far=0.5: need 0 <= near",
        ),
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
    # Each split adds a stretch; one left shorter than a transition is dropped and counted.
    assert len(segments) == prov["irregular_steps_split"] + 1 - prov["short_stretches_dropped"]
    # The target's true base height stays a standing Go2's: the recording is of a robot on its feet.
    assert 0.2 < segments[-1].qpos[-1, 2] < 0.4
    # The schedule reached the policy through the bridge's remote: 0.4 rad/s from 1 s into POLICY.
    commands = read_log(tmp_path / "collect" / "log").policy["command"]
    np.testing.assert_allclose(commands[5], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(commands[-1], [0.0, 0.0, 0.4], atol=1e-3)
    assert pipeline.collect() == data  # a finished stage is skipped
    # A later ASAP round records again and trains on both recordings: one dataset, both listed.
    joined = pipeline._collect(pipeline.round_dir(2) / "collect", pipeline.artifact, (tmp_path / "collect",))
    assert joined == pipeline.round_dataset(2)
    both, prov2 = load_delta_dataset(joined, "go2")
    assert [r["log"] for r in prov2["recordings"]] == [
        str((tmp_path / "collect" / "log").resolve()),
        str((pipeline.round_dir(2) / "collect" / "log").resolve()),
    ]
    assert len(both) == len(segments) + prov2["recordings"][1]["episodes"] and len(both) > len(segments)
    np.testing.assert_array_equal(both[0].actions, segments[0].actions)  # round 1's recording first
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


def test_an_arm_finished_elsewhere_with_the_same_command_is_copied_not_retrained(tmp_path: Path) -> None:
    """finetune.reuse: nominal and dr do not read the target, so one seed's run serves every mismatch.
    Taken only from a finished, never-resumed run of the same command from the same pretrained actor."""
    from robolearn.utils.sysinfo import package_versions

    walker = tmp_path / "walker"
    (walker / ".hydra").mkdir(parents=True)
    (walker / "config.yaml").write_text("env: {id: robolearn/Go2Velocity-v1}\n")
    OmegaConf.save(
        OmegaConf.create(["+experiment=go2_walk_trot_history", "seed=0"]),
        walker / ".hydra" / "overrides.yaml",
    )
    donor = tmp_path / "gains_strength_seed0"

    def donor_arm(seed: int = 0, actor: bytes = b"actor", resumes: int = 0, exported: bool = True) -> None:
        shutil.rmtree(donor, ignore_errors=True)
        (donor / "pretrain" / "artifact").mkdir(parents=True)
        (donor / "pretrain" / "artifact" / "policy.onnx").write_bytes(actor)
        run = donor / "finetune" / "nominal" / "run"
        (run / ".hydra").mkdir(parents=True)
        args = [
            "+experiment=go2_walk_trot_history",
            f"agent.init_from={walker}",
            "steps=2000000",
            f"seed={seed}",
        ]
        OmegaConf.save(OmegaConf.create([*args, "logger.progress=lines"]), run / ".hydra" / "overrides.yaml")
        summary = {"status": "completed", "resumes": resumes, "versions": package_versions()}
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "metrics.jsonl").write_text(f'{{"seed": {seed}}}\n')
        if exported:
            (donor / "finetune" / "nominal" / "artifact").mkdir(parents=True)
            (donor / "finetune" / "nominal" / "artifact" / "contract.json").write_text("{}")

    donor.mkdir()
    out = tmp_path / "fmd_seed0"
    overrides = ["stage=finetune", "mismatch=friction_mass_delay", f"out={out}", f"pretrain.run={walker}"]
    cfg = compose_config("asap", [*overrides, "methods=[nominal]", f"finetune.reuse=['{donor}']"])
    validate_asap_config(cfg)
    pipeline = Pipeline(cfg)
    pipeline.artifact.mkdir(parents=True)
    (pipeline.artifact / "policy.onnx").write_bytes(b"actor")
    args = pipeline.finetune_args("nominal")
    for other in (
        {"seed": 1},  # another command
        {"actor": b"another actor"},  # fine-tuned from another pretrained policy
        {"resumes": 1},  # resumed: not one deterministic pass
        {"exported": False},  # not finished
    ):
        donor_arm(**other)  # type: ignore[arg-type]
        assert not pipeline.reuse_finished("nominal", args), other
        assert not pipeline.finetuned_artifact("nominal").exists()
    donor_arm()
    # finetune_method would train (and fail on this stand-in walker) if it did not copy.
    assert pipeline.finetune_method("nominal") == pipeline.finetuned_artifact("nominal")
    assert (pipeline.finetune_run("nominal") / "metrics.jsonl").read_text() == '{"seed": 0}\n'
    assert (pipeline.finetuned_artifact("nominal") / "contract.json").is_file()
    assert json.loads((out / "finetune" / "nominal" / "reused.json").read_text()) == {"from": str(donor)}


def test_the_yaml_train_delta_defaults_are_the_dataclass_ones() -> None:
    """configs/asap.yaml and robolearn.asap.TrainDeltaSettings (benchmarks/asap_delta.py's) agree."""
    from dataclasses import asdict

    from robolearn.asap import TrainDeltaSettings

    cfg = compose_config("asap", [])
    assert OmegaConf.to_container(cfg.train_delta) == asdict(TrainDeltaSettings())


def test_a_delta_run_of_other_settings_is_refused_not_reused(tmp_path: Path) -> None:
    """train_delta keeps a finished delta run only if it was trained with these settings: a delta of
    another recipe (here another scale) would otherwise be fine-tuned on silently."""
    from robolearn.asap import train_delta_overrides

    cfg = compose_config("asap", ["stage=train_delta", f"out={tmp_path / 'out'}"])
    validate_asap_config(cfg)
    pipeline = Pipeline(cfg)
    (pipeline.delta_run / "final").mkdir(parents=True)
    (pipeline.delta_run / "final" / "model.zip").write_bytes(b"model")
    (pipeline.delta_run / ".hydra").mkdir()
    ours = train_delta_overrides(cfg.train_delta, "go2", pipeline.dataset, 0, pipeline.delta_run)
    other = [
        o if not o.startswith("env.kwargs.delta_scale=") else "env.kwargs.delta_scale=0.25" for o in ours
    ]
    OmegaConf.save(OmegaConf.create(other), pipeline.delta_run / ".hydra" / "overrides.yaml")
    with pytest.raises(UserError) as info:
        pipeline.train_delta()
    assert "was trained with other train_delta settings" in str(info.value) and "\n" not in str(info.value)
    OmegaConf.save(OmegaConf.create(ours), pipeline.delta_run / ".hydra" / "overrides.yaml")
    assert pipeline.train_delta() == pipeline.delta_run  # kept: no training started


def test_a_later_round_fine_tunes_the_round_before_with_its_own_delta(tmp_path: Path) -> None:
    """rounds.count=2: arm asap_round2 starts from the asap arm's run (not the pretrained one) and
    adds round 2's delta model; the stage refuses to start before round 1 is fine-tuned."""
    from robolearn.asap import asap_arm, asap_round

    assert [asap_round(asap_arm(r)) for r in (1, 2, 3)] == [1, 2, 3]
    others = ("nominal", "asap_round", "asap_round1", "asap_roundx", "asap_round02", "asap_round\u00b2")
    assert [asap_round(m) for m in others] == [0] * len(others)
    walker = tmp_path / "walker"
    (walker / ".hydra").mkdir(parents=True)
    (walker / "config.yaml").write_text("env: {id: robolearn/Go2Velocity-v1}\n")
    OmegaConf.save(
        OmegaConf.create(["+experiment=go2_walk_trot_history"]), walker / ".hydra" / "overrides.yaml"
    )
    out = tmp_path / "out"
    cfg = compose_config("asap", ["stage=rounds", f"out={out}", f"pretrain.run={walker}", "rounds.count=2"])
    validate_asap_config(cfg)
    pipeline = Pipeline(cfg)
    with pytest.raises(UserError) as info:
        pipeline.rounds()
    assert "finetune/asap/artifact is missing: run stage=finetune" in str(info.value)
    assert "\n" not in str(info.value)
    for r in (1, 2):
        (pipeline.round_delta_run(r) / "final").mkdir(parents=True)
        (pipeline.round_delta_run(r) / "final" / "model.zip").write_bytes(b"model")
    first, second = pipeline.finetune_args("asap"), pipeline.finetune_args("asap_round2")
    assert f"agent.init_from={walker.resolve()}" in first
    assert f"+env.kwargs.delta_action.run={out / 'train_delta'}" in first
    assert f"agent.init_from={out / 'finetune' / 'asap' / 'run'}" in second
    assert f"+env.kwargs.delta_action.run={out / 'rounds' / 'r2' / 'train_delta'}" in second
    assert f"hydra.run.dir={out / 'finetune' / 'asap_round2' / 'run'}" in second
    # asap_gated: round 1's delta from the pretrained policy, with the support gate; asap without it.
    gated = pipeline.finetune_args("asap_gated")
    assert f"agent.init_from={walker.resolve()}" in gated
    assert f"+env.kwargs.delta_action.run={out / 'train_delta'}" in gated
    assert "+env.kwargs.delta_action.support={near: 1.0, far: 2.0}" in gated
    assert not any("support" in a for a in first)
    assert f"hydra.run.dir={out / 'finetune' / 'asap_gated' / 'run'}" in gated
    # Round 2 needs round 1's raw logs to join: refused before minutes of recording, not after.
    pipeline.finetuned_artifact("asap").mkdir(parents=True)
    (pipeline.finetuned_artifact("asap") / "contract.json").write_text("{}")
    (pipeline.finetuned_artifact("asap") / "policy.onnx").write_bytes(b"round 1 actor")
    with pytest.raises(UserError, match="collect/log is missing: round 2 joins every earlier recording"):
        pipeline.rounds()
    # A round-2 recording of another round-1 policy (round 1 trained again since) is refused, not refitted on.
    (pipeline.round_dataset(2)).mkdir(parents=True)
    (pipeline.round_dataset(2) / "metadata.json").write_text("{}")
    (pipeline.round_dir(2) / "recorded_from.json").write_text(json.dumps({"policy_sha256": "another"}))
    with pytest.raises(UserError) as info:
        pipeline.rounds()
    assert "was recorded from another asap policy" in str(info.value) and "\n" not in str(info.value)


def test_the_benchmark_counts_no_asap_arm_as_a_baseline_of_another() -> None:
    """benchmarks/asap.py's claim: an ASAP arm (asap, asap_gated, asap_round<r>) must beat every
    baseline, not the oracle and not the other ASAP arms; the table states it for each of them."""
    import importlib.util
    import sys

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench))  # benchmarks/asap.py imports its sibling locomotion_runs
    try:
        spec = importlib.util.spec_from_file_location("asap_benchmark", bench / "asap.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(bench))

    def row(lin: float) -> dict[str, Any]:
        return {"lin_vel_rms": lin, "yaw_rate_rms": 0.1, "falls": 0, "episodes": 8}

    closed = {
        "vanilla": row(0.2),
        "sysid": row(0.07),
        "asap": row(0.09),
        "asap_gated": row(0.05),
        "asap_round2": row(0.04),
        "oracle": row(0.01),
    }
    assert not module._beats_every_baseline(closed, "asap")  # sysid tracks better
    assert module._beats_every_baseline(closed, "asap_gated")  # asap_round2 and the oracle are no baselines
    text = module.table({"sticky_leg": [{"seed": 2, "closed_loop": closed, "open_loop": {}}]})
    assert (
        "asap: at least as few falls and a lower velocity error than every baseline (not the oracle): 0 of 1"
        in text
    )
    assert "asap_gated: at least as few falls" in text and "asap_gated: at least" in text.split("asap: at")[1]
    closed["asap_gated"] = {**row(0.05), "falls": 1}  # one more fall than the baselines: no win
    assert not module._beats_every_baseline(closed, "asap_gated")
