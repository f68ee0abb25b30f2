"""Encoders, pretraining objectives, and the pretrain -> finetune verbs (robolearn.imitation)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from imitation_toys import write_linear

# The pixel task renders offscreen; mujoco reads MUJOCO_GL once, at its first import (by whichever test).
os.environ.setdefault("MUJOCO_GL", "egl")

from robolearn.errors import UserError
from robolearn.imitation.data import load_demos
from robolearn.imitation.encoders import EncoderConfig, ObservationEncoder, obs_to_torch
from robolearn.imitation.objectives import ObjectiveConfig, PairBatch, make_objective, random_shift
from robolearn.imitation.verbs import compose_config

TINY_PIXELS = EncoderConfig(
    latent_dim=8, conv_channels=(4, 4), conv_strides=(2, 2), keypoints=4, state_hidden=(16,)
)
TINY_STATE = ["encoder.latent_dim=8", "encoder.state_hidden=[32]", "objective.head_hidden=[32]"]
TINY_PROJ = ["objective.projection_hidden=[32]", "objective.projection_dim=16"]
PIXEL_SPACE = spaces.Dict(
    {
        "pixels": spaces.Box(0, 255, (16, 16, 3), np.uint8),
        "state": spaces.Box(-np.inf, np.inf, (4,), np.float32),
    }
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny networks on a shared machine: more threads only contend (0.5 s a step instead of 0.02 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pixel_obs(batch: int, *lead: int) -> dict[str, torch.Tensor]:
    return {
        "pixels": torch.randint(0, 256, (batch, *lead, 16, 16, 3), dtype=torch.uint8),
        "state": torch.randn(batch, *lead, 4),
    }


def test_encoders_shapes_bounds_and_keys() -> None:
    torch.manual_seed(0)
    fused = ObservationEncoder(PIXEL_SPACE, TINY_PIXELS)
    z = fused(_pixel_obs(5))
    assert z.shape == (5, 8) and float(z.detach().abs().max()) <= 1.0  # LayerNorm + tanh keeps it in [-1, 1]
    assert fused(_pixel_obs(5, 3)).shape == (5, 3, 8)  # windows keep their leading dims
    pixels_only = ObservationEncoder(
        PIXEL_SPACE, EncoderConfig(**{**TINY_PIXELS.__dict__, "keys": ("pixels",)})
    )
    obs = _pixel_obs(2)
    changed = {**obs, "state": obs["state"] + 10}
    assert torch.equal(pixels_only(obs), pixels_only(changed))  # the state is not read
    state = ObservationEncoder(spaces.Box(-1, 1, (6,), np.float32), TINY_PIXELS)
    assert state(torch.randn(7, 6)).shape == (7, 8)
    with pytest.raises(UserError, match="too small"):
        ObservationEncoder(PIXEL_SPACE, EncoderConfig(conv_channels=(4,) * 4, conv_strides=(2,) * 4))
    shifted = random_shift(obs)
    assert isinstance(shifted, dict) and shifted["pixels"].shape == obs["pixels"].shape


@pytest.mark.parametrize("name", ["id", "bc", "contrastive", "contrastive_noact", "forward"])
def test_objective_shapes_on_pixels(name: str) -> None:
    torch.manual_seed(0)
    cfg = ObjectiveConfig.from_mapping(
        {"name": name, "head_hidden": [16], "projection_hidden": [16], "projection_dim": 8}
    )
    objective = make_objective(ObservationEncoder(PIXEL_SPACE, TINY_PIXELS), 2, cfg)
    loss, info = objective.loss(PairBatch(_pixel_obs(6), _pixel_obs(6), torch.rand(6, 2) * 2 - 1))
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in objective.encoder.parameters() if p.grad is not None]
    assert grads, f"{name} sends no gradient into the encoder"
    assert all(np.isfinite(v) for v in info.values())


@pytest.mark.parametrize("name", ["id", "bc", "contrastive", "contrastive_noact", "forward"])
def test_each_objective_loss_falls_on_a_toy_problem(tmp_path: Path, name: str) -> None:
    from robolearn.imitation.pretrain import Pretrainer

    torch.manual_seed(0)
    data = write_linear(tmp_path / "d", episodes=10, steps=20, feedback=True)
    extra = (
        ["objective.nstep=1"] if name == "contrastive_noact" else []
    )  # state data: no augmentation, so o_t+1
    if name.startswith("contrastive"):
        extra += TINY_PROJ
    cfg = compose_config(
        "pretrain",
        [f"objective={name}", f"data={data}", "batch_size=64", "heldout_fraction=0", *TINY_STATE, *extra],
    )
    trainer = Pretrainer(cfg, load_demos(data), "cpu")
    losses = [trainer.iterate()["loss"] for _ in range(150)]
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    # InfoNCE with temperature 1 on unit vectors cannot go below log(1 + 63 e^-2) = 2.25 from log(64) = 4.16.
    factor = 0.9 if name.startswith("contrastive") else 0.7
    assert last < factor * first, f"{name}: loss {first:.3f} -> {last:.3f}"


def test_objective_config_errors_are_one_line() -> None:
    with pytest.raises(UserError, match="objective=nope is not known"):
        ObjectiveConfig.from_mapping({"name": "nope"})
    with pytest.raises(UserError, match=r"unknown config key objective\.temp"):
        ObjectiveConfig.from_mapping({"name": "id", "temp": 1})
    with pytest.raises(UserError, match=r"encoder\.conv_channels has 2 layers"):
        EncoderConfig.from_mapping({"conv_channels": [4, 4], "conv_strides": [2]})


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_pretrain_resume_extends_and_saves_the_encoder(tmp_path: Path) -> None:
    from robolearn.imitation.pretrain import load_encoder, pretrain_job

    data = write_linear(tmp_path / "d", episodes=6, steps=10)
    over = ["objective=id", f"data={data}", "batch_size=16", "log_every=2", "checkpoint.every=2", *TINY_STATE]
    run = tmp_path / "run"
    pretrain_job(compose_config("pretrain", [*over, "steps=4", "logger.progress=none"]), run, "test")
    pretrain_job(compose_config("pretrain", [*over, "steps=8", "logger.progress=none"]), run, "test")
    summary = _summary(run)
    assert summary["steps"] == 8 and summary["resumes"] == 1 and summary["pretrain/objective"] == "id"
    encoder, record = load_encoder(run)
    assert record["task"] == "linear" and encoder(obs_to_torch(np.zeros((3, 4)))).shape == (3, 8)


def test_pretrain_then_finetune_on_pointmass_pixels(tmp_path: Path) -> None:
    """The real pixel task end to end, a few steps each: collect, pretrain (ID), finetune, rollouts."""
    from robolearn.config.validate import compose_config as compose_root
    from robolearn.imitation.collect import collect
    from robolearn.imitation.finetune import finetune_job
    from robolearn.imitation.pretrain import pretrain_job

    pre, ft = tmp_path / "pre", tmp_path / "ft"
    collect(
        compose_root(
            "imitation/collect", ["task=pointmass_pixels", "demos=4", "split=pretrain", f"out={pre}"]
        )
    )
    collect(
        compose_root("imitation/collect", ["task=pointmass_pixels", "demos=3", "split=finetune", f"out={ft}"])
    )
    tiny = [
        "encoder.latent_dim=8",
        "encoder.conv_channels=[4,4]",
        "encoder.conv_strides=[2,2]",
        "encoder.keypoints=4",
        "encoder.keys=[pixels]",
        "objective.head_hidden=[16]",
    ]
    enc = tmp_path / "enc"
    cfg = compose_config("pretrain", ["objective=id", f"data={pre}", "steps=3", "batch_size=8", *tiny])
    pretrain_job(cfg, enc, "test")
    run = tmp_path / "ft_run"
    over = [f"encoder={enc}", f"data={ft}", "steps=3", "batch_size=8", "head.hidden=[16]", "eval.episodes=2"]
    finetune_job(compose_config("finetune", [*over, "finetune.demos=2"]), run, "test")
    summary = _summary(run)
    assert summary["finetune/demos"] == 2 and summary["finetune/freeze"] is True
    assert summary["eval/episodes"] == 2 and 0.0 <= summary["eval/success_rate"] <= 1.0
    assert np.isfinite(summary["eval/mean_return"])
    config = (run / "config.yaml").read_text()
    assert "name: pretrain_id" in config and "id: pointmass_pixels_2demos" in config


def test_finetune_refuses_demos_of_other_spaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robolearn.imitation.finetune import finetune_job
    from robolearn.imitation.pretrain import pretrain_job

    enc = tmp_path / "enc"
    data = write_linear(tmp_path / "d", episodes=4, steps=5)
    pretrain_job(compose_config("pretrain", ["objective=none", f"data={data}", *TINY_STATE[:2]]), enc, "test")
    other = write_linear(tmp_path / "o", episodes=2, steps=5, task="reacher")
    with pytest.raises(SystemExit) as stop:
        finetune_job(
            compose_config("finetune", [f"encoder={enc}", f"data={other}", "eval.episodes=0"]),
            tmp_path / "r",
            "t",
        )
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "demos of task reacher, but the encoder" in err
