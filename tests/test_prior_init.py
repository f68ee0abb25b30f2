"""Prior initialisation: the cloned actor acts like the prior, the warm start counts in the run's steps
and clock, a resumed run does not clone again, and bad setups fail with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from train_helpers import tiny_config

from robolearn.config.validate import validate_train_config
from robolearn.errors import UserError
from robolearn.llm.priors import load_prior
from robolearn.methods.camel import batch_prior
from robolearn.methods.prior_init import collect_prior_rollouts
from robolearn.runs.trainer import Trainer

PRIOR = "pendulum_energy_swingup"


def prior_config(*extra: str):  # type: ignore[no-untyped-def]
    return tiny_config(
        "ppo",
        "method=prior_init",
        f"method.prior={PRIOR}",
        "method.probe=false",
        "method.samples=4000",
        "method.batch_size=256",
        "agent.policy_kwargs.net_arch=[64,64]",
        *extra,
    )


def _actor_error(model, observations: np.ndarray, actions: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Mean squared distance between the deterministic actor and the prior's actions."""
    predicted, _ = model.predict(observations.astype(np.float32), deterministic=True)
    return float(np.mean(np.square(predicted - actions)))


def test_cloned_actor_follows_the_prior(tmp_path: Path) -> None:
    trainer = Trainer(prior_config("method.epochs=100"), tmp_path / "w", "test")
    model, venv, _ = trainer._build()
    facts = trainer.method_facts
    # Held-out states: the prior's own noisy rollouts on other seeds, where the clone was trained.
    prior = batch_prior(load_prior(PRIOR, probe=False).policy, venv.action_space)  # type: ignore[arg-type]
    held_obs, held_actions, _ = collect_prior_rollouts(venv, prior, 2000, noise=0.06, seed=7)
    plain, _, _ = Trainer(
        tiny_config("ppo", "agent.policy_kwargs.net_arch=[64,64]"), tmp_path / "p", "t"
    )._build()
    before = _actor_error(plain, held_obs, held_actions)
    after = _actor_error(model, held_obs, held_actions)
    assert after < 0.4 * before, (before, after)
    assert facts["prior_init/status"].startswith("ok") and facts["prior_init/samples"] == 4000
    assert facts["prior_init/bc_loss_last"] < 0.4 * facts["prior_init/bc_loss_first"]
    # The warm start's env steps belong to the run: training continues from them.
    assert model.num_timesteps == 4000 and facts["method/setup_s"] > 0


def test_warm_start_counts_in_the_run_and_is_not_repeated_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = Trainer(prior_config("steps=4600"), run, "test").run_training()
    assert summary["steps"] >= 4600 and summary["prior_init/samples"] == 4000
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # The first row is logged after the warm start: its step and wall clock include it.
    assert rows[0]["step"] > 4000 and rows[0]["wall_time_s"] >= summary["method/setup_s"]
    resumed = Trainer(prior_config("steps=5200"), run, "test").run_training()
    assert resumed["steps"] >= 5200 and resumed["prior_init/status"].startswith("resumed")
    assert "prior_init/samples" not in resumed


def test_prior_init_refuses_off_policy_agents_and_bad_priors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="method=prior_init needs agent=ppo, not agent=sac"):
        validate_train_config(tiny_config("sac", "method=prior_init"))
    with pytest.raises(UserError, match=r"method\.samples=0 is out of range"):
        validate_train_config(prior_config("method.samples=0"))
    with pytest.raises(UserError, match="on_bad_prior=unmasked to train from scratch"):
        Trainer(prior_config("method.prior=no_such_prior"), tmp_path / "bad", "test").run_training()
    summary = Trainer(
        prior_config("method.prior=no_such_prior", "method.on_bad_prior=unmasked", "steps=300"),
        tmp_path / "scratch",
        "test",
    ).run_training()
    assert summary["prior_init/status"].startswith("unmasked:") and "prior_init/samples" not in summary


def test_kickstarting_distils_the_prior_with_a_fading_rate(tmp_path: Path) -> None:
    run = tmp_path / "ks"
    Trainer(
        prior_config("steps=5200", "method.kickstart_steps=700", "logger.log_interval=1"), run, "test"
    ).run_training()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["prior_init/kickstart_lr"] for r in rows if "prior_init/kickstart_lr" in r]
    # 4 envs x 64 steps per update after the 4000-step warm start: the updates at 4256 and 4512 env
    # steps fall inside the 700 kickstart steps, each at 1e-3 * (1 - (steps - 4000) / 700); later
    # updates distil nothing.
    assert rates == pytest.approx([1e-3 * (1 - 256 / 700), 1e-3 * (1 - 512 / 700)])
    assert all(np.isfinite(r["prior_init/kickstart_loss"]) for r in rows if "prior_init/kickstart_loss" in r)


def test_warm_start_reports_its_phases_as_progress_notes(tmp_path: Path) -> None:
    from robolearn.runs.progress import notes_to

    lines: list[str] = []
    trainer = Trainer(prior_config("method.epochs=20"), tmp_path / "w", "test")
    with notes_to(lines.append):
        model, _, _ = trainer._build()
    collecting = [line for line in lines if "collecting prior rollouts" in line]
    fitting = [line for line in lines if "fitting the actor" in line]
    # Five collection lines (every fifth of the rollouts), ending with all 4000 steps.
    assert len(collecting) == 5 and "4000/4000 steps" in collecting[-1], lines
    # 20 epochs are reported every second epoch: 10 lines, the last one the final epoch, with its loss.
    assert len(fitting) == 10 and "epoch 20/20, loss" in fitting[-1], lines
    assert float(fitting[-1].split("loss ")[1].split()[0]) == pytest.approx(
        trainer.method_facts["prior_init/bc_loss_last"], rel=1e-3
    )
    assert lines[0].startswith("warm start: cloning the prior into the actor from 4000 env steps")
    assert lines.index(collecting[-1]) < lines.index(fitting[0]) and model.num_timesteps == 4000
