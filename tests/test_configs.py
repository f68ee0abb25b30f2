"""Every config file composes, validates, and picks the RL Zoo's values for its env."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from robolearn.config.validate import compose_config, group_options, validate_train_config
from robolearn.resources import configs_dir

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
    env_file = yaml.safe_load((configs_dir() / "env" / f"{env}.yaml").read_text())
    assert cfg.env.id == env_file["id"]
    # The RL Zoo's tuned values for this pair, where a file exists, win over the agent's defaults.
    tuned = configs_dir() / "agent_tuned" / agent / f"{env}.yaml"
    if tuned.is_file():
        agent_cfg = OmegaConf.create(OmegaConf.to_container(cfg.agent, resolve=True))
        for key, value in _leaves(yaml.safe_load(tuned.read_text()) or {}):
            assert OmegaConf.select(agent_cfg, key) == value, key


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
    # Every value the experiment file sets is in the composed config (nothing dropped or shadowed).
    raw = yaml.safe_load((configs_dir() / "experiment" / f"{experiment}.yaml").read_text())
    resolved = OmegaConf.to_container(cfg, resolve=True)
    checked = 0
    # hydra.* (sweep dirs, launcher) is Hydra's own, checked by the sweep tests.
    for key, value in _leaves({k: v for k, v in raw.items() if k not in ("defaults", "hydra")}):
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: resolved against the composed config, not comparable raw
        assert OmegaConf.select(OmegaConf.create(resolved), key) == value, f"{experiment}: {key}"
        checked += 1
    assert checked > 0, f"{experiment} sets no values"


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _leaves(value, path + ".")
        else:
            out.append((path, value))
    return out


def test_evaluate_config_composes() -> None:
    from robolearn.evaluate import _episodes

    cfg = compose_config("evaluate", ["run=/some/dir"])
    assert cfg.checkpoint == "final" and _episodes(cfg) == 10
    assert _episodes(compose_config("evaluate", ["policy=/some/artifact"])) == 3  # sim2sim's default
