"""Every config file composes, validates, and picks the RL Zoo's values for its env."""

from __future__ import annotations

import pytest

from robolearn.config.validate import compose_config, group_options, validate_train_config

ENVS = [e for e in group_options("env") if not e.endswith("_schema")]
AGENTS = ["ppo", "sac", "td3"]


def test_every_env_has_a_config_per_zoo_table() -> None:
    assert len(ENVS) >= 12
    assert {"Hopper-v5", "Ant-v5", "Humanoid-v5", "Pendulum-v1", "MountainCarContinuous-v0"} <= set(ENVS)


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("env", ENVS)
def test_env_agent_composes_and_validates(env: str, agent: str) -> None:
    cfg = compose_config("train", [f"env={env}", f"agent={agent}"])
    validate_train_config(cfg)
    assert cfg.agent.algo == agent


def test_tuned_values_are_picked_per_env_and_overridable() -> None:
    hopper = compose_config("train", ["env=Hopper-v5", "agent=ppo"])
    pendulum = compose_config("train", ["env=Pendulum-v1", "agent=ppo"])
    # configs/agent_tuned/ppo/Hopper-v5.yaml: the zoo's tuned PPO Hopper values.
    assert hopper.agent.n_steps == 512 and hopper.agent.normalize_obs is True
    assert pendulum.agent.n_steps != hopper.agent.n_steps
    override = compose_config("train", ["env=Hopper-v5", "agent=ppo", "agent.n_steps=128"])
    assert override.agent.n_steps == 128


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_files_compose(experiment: str) -> None:
    cfg = compose_config("train", [f"+experiment={experiment}"])
    validate_train_config(cfg)


def test_evaluate_config_composes() -> None:
    cfg = compose_config("evaluate", ["run=/some/dir"])
    assert cfg.checkpoint == "final" and cfg.episodes == 10
