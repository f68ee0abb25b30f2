"""`python -m robolearn.imitation.collect`: Minari datasets of hidden-context demos, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pytest

from robolearn.config.validate import compose_config
from robolearn.datasets import load_dataset
from robolearn.errors import UserError
from robolearn.imitation.collect import CONFIG, collect, validate_collect_config


def _cfg(*overrides: str):  # type: ignore[no-untyped-def]
    return compose_config(CONFIG, list(overrides))


def test_collect_pixels_pretrain_round_trips_through_minari(tmp_path: Path) -> None:
    """Pixel demos: minari itself opens the dataset; contexts in infos, provenance in the metadata."""
    out = tmp_path / "pm"
    result = collect(_cfg("task=pointmass_pixels", "demos=4", "seed=2", f"out={out}"), command="test")
    assert result["expert_success_rate"] == 1.0
    ds = minari.MinariDataset(str(out / "data"))
    assert ds.total_episodes == 4
    episode = ds[0]
    assert episode.observations["pixels"].shape[1:] == (64, 64, 3)
    assert episode.observations["pixels"].dtype == np.uint8
    steps = len(episode.actions)
    assert episode.infos["context"].shape == (steps + 1, 2)
    ours = load_dataset(out)
    meta = ours.metadata["robolearn"]
    assert meta["task"] == "pointmass_pixels" and meta["split"] == "pretrain" and meta["pixels"] is True
    assert meta["expert_success_rate"] == 1.0 and meta["demos"] == 4 and meta["context_dim"] == 2
    assert meta["command"] == "test" and meta["seed"] == 2
    contexts = np.array([e.infos["context"][0] for e in ours.episodes])
    assert len(np.unique(contexts, axis=0)) == 4  # pretraining: one context per demo
    for e in ours.episodes:  # the context is constant within a demo, and the demo ends at the goal
        assert np.all(e.infos["context"] == e.infos["context"][0])
        assert e.terminations[-1] and e.infos["success"][-1]


def test_collect_finetune_uses_one_new_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finetuning data: every demo shares one context, drawn from the finetune split, under a minari id."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    collect(_cfg("task=reacher", "demos=3", "split=finetune", "out=test/reacher-ft-v0"))
    ds = load_dataset("test/reacher-ft-v0")
    assert (tmp_path / "root" / "test" / "reacher-ft-v0" / "data" / "metadata.json").is_file()
    assert ds.dataset_id == "test/reacher-ft-v0"
    contexts = np.array([e.infos["context"][0] for e in ds.episodes])
    assert np.all(contexts == contexts[0])
    angle = np.mod(np.arctan2(contexts[0, 1], contexts[0, 0]), 2 * np.pi)
    assert int(angle // (2 * np.pi / 12)) % 2 == 1  # a finetuning sector
    assert ds.observation_space.shape == (8,)


def test_collect_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing dataset is kept unless overwrite=true."""
    out = tmp_path / "bi"
    collect(_cfg("task=bimodal", "demos=2", f"out={out}"))
    with pytest.raises(UserError, match="already holds a dataset"):
        collect(_cfg("task=bimodal", "demos=2", f"out={out}"))
    collect(_cfg("task=bimodal", "demos=3", f"out={out}", "overwrite=true"))
    assert len(load_dataset(out).episodes) == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task=pointmas", "task=pointmas is not known"),
        ("split=train", "split=train is not known"),
        ("demos=0", "demos=0 is out of range"),
        ("contexts=9", "contexts=9 is more than demos=2"),
        ("expert=some/dir", "expert= is for task=go2_command only"),
        ("task=go2_command", "task=go2_command needs expert="),
    ],
)
def test_bad_settings_are_one_line_errors(override: str, message: str, tmp_path: Path) -> None:
    """Each bad value fails the check that runs before any rollout, naming the value."""
    with pytest.raises(UserError, match=message):
        validate_collect_config(_cfg("demos=2", f"out={tmp_path}", override))


def test_command_line_error_is_one_line(tmp_path: Path) -> None:
    """The verb exits 2 with one stderr line for a bad value, and with no dataset written."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "robolearn.imitation.collect",
            "task=reacher",
            "demos=-1",
            f"out={tmp_path / 'x'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: demos=-1 is out of range; use an integer >= 1"]
    assert not (tmp_path / "x").exists()


def test_collect_go2_command_with_an_artifact_expert(tmp_path: Path) -> None:
    """Go2 plumbing with the shipped standing artifact: 42-value observations, commands in infos,
    the tracking error in infos and provenance; a folder without contract.json is refused up front."""
    stand = Path(__file__).resolve().parents[2] / "policies" / "reference" / "go2_stand"
    with pytest.raises(UserError, match="holds no policy artifact"):
        validate_collect_config(
            _cfg("task=go2_command", "demos=1", f"expert={tmp_path}", f"out={tmp_path / 'g'}")
        )
    collect(_cfg("task=go2_command", "demos=2", f"expert={stand}", f"out={tmp_path / 'g'}"))
    ds = load_dataset(tmp_path / "g")
    assert ds.observation_space.shape == (42,)
    assert ds.episodes[0].infos["context"].shape[1] == 3
    meta = ds.metadata["robolearn"]
    assert meta["expert"] == str(stand) and meta["expert_tracking_error"] > 0.0


def test_help_lists_every_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--help prints usage with each config key and exits before any work."""
    from robolearn.imitation import collect as verb

    monkeypatch.setattr(sys, "argv", ["collect", "--help"])
    verb.main()
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m robolearn.imitation.collect")
    keys = set(compose_config(CONFIG, ["out=x"]))
    assert all(f"  {key} " in text for key in keys), keys
