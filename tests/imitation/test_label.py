"""Non-causal IDM labelling (robolearn.imitation.label): action recovery and the pseudo-labelled dataset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from imitation_toys import write_linear

from robolearn.datasets import load_dataset
from robolearn.imitation.data import load_demos
from robolearn.imitation.label import IDMTrainer, label_job
from robolearn.imitation.verbs import compose_config

TINY = ["encoder.latent_dim=16", "encoder.state_hidden=[64]", "idm.hidden=[64]", "batch_size=128"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_idm_recovers_the_actions_of_a_linear_system(tmp_path: Path) -> None:
    """s' = A s + B u with random u: u is a function of (s_t, s_t+1), so held-out error must be small."""
    torch.manual_seed(0)
    labeled = write_linear(tmp_path / "l", episodes=20, steps=20, seed=0)
    cfg = compose_config(
        "label",
        [f"labeled={labeled}", f"unlabeled={labeled}", "out=x", "lr=3e-3", "heldout_fraction=0.2", *TINY],
    )
    trainer = IDMTrainer(cfg, load_demos(labeled), "cpu")
    for _ in range(600):
        trainer.iterate()
    error = trainer.heldout_error()
    # Uniform actions in [-1, 1] have variance 1/3: predicting their mean scores about 0.33.
    assert error["mean_baseline_mse"] > 0.25
    assert error["mse"] < 0.1 * error["mean_baseline_mse"], error
    fresh = load_demos(write_linear(tmp_path / "u", episodes=5, steps=20, seed=7))
    labels = trainer.idm.label(fresh)
    assert labels.shape == fresh.actions.shape
    assert np.mean((labels - fresh.actions) ** 2) < 0.1 * error["mean_baseline_mse"]


def test_label_writes_a_pseudo_labelled_dataset_with_provenance(tmp_path: Path) -> None:
    labeled = write_linear(tmp_path / "l", episodes=6, steps=10, seed=0)
    unlabeled = write_linear(tmp_path / "u", episodes=8, steps=10, seed=3)
    out = tmp_path / "out"
    cfg = compose_config(
        "label",
        [f"labeled={labeled}", f"unlabeled={unlabeled}", f"out={out}", "steps=20", "idm.past=2", *TINY],
    )
    label_job(cfg, tmp_path / "run", "test")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    written = load_dataset(out)
    source = load_dataset(unlabeled)
    prov = written.provenance
    assert prov["labels"] == "idm" and prov["idm_run"] == str((tmp_path / "run").resolve())
    assert prov["idm_heldout_action_mse"] == summary["label/heldout_action_mse"] is not None
    assert prov["task"] == "linear" and prov["idm_window"] == {"past": 2, "future": 1}
    assert len(written.episodes) == 8
    for new, old in zip(written.episodes, source.episodes, strict=True):
        np.testing.assert_array_equal(new.observations, old.observations)
        assert new.actions.shape == old.actions.shape and not np.array_equal(new.actions, old.actions)
        assert np.all(np.abs(new.actions) <= 1.0)  # clipped to the action space


def test_label_refuses_datasets_of_other_spaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_data import write_demos

    labeled = write_linear(tmp_path / "l", episodes=4, steps=5)
    other = write_demos(tmp_path / "o", task="linear")
    cfg = compose_config(
        "label", [f"labeled={labeled}", f"unlabeled={other}", f"out={tmp_path / 'x'}", *TINY]
    )
    with pytest.raises(SystemExit) as stop:
        label_job(cfg, tmp_path / "run", "test")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "observation space" in err and "does not match" in err
