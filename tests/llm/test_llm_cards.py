"""Env cards: every shipped card validates and matches its gymnasium env; bad cards fail in one line."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from llm_scripted import CARDED

from robolearn.errors import UserError
from robolearn.llm.cards import available_cards, cards_dir, load_card, sanitize_env_id
from robolearn.llm.prompt import build_messages, prompt_hash, render_card
from robolearn.llm.screen import make_env

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")


def test_every_required_env_has_a_card() -> None:
    assert set(CARDED) <= set(available_cards())


@pytest.mark.parametrize("env_id", CARDED)
def test_card_matches_the_gymnasium_env(env_id: str) -> None:
    card = load_card(env_id)
    env = make_env(env_id)  # registers robolearn/ ids first
    assert env.observation_space.shape == (card.obs_dim,)
    assert env.action_space.shape == (card.action_dim,)
    assert isinstance(env.action_space, gym.spaces.Box)
    np.testing.assert_allclose(env.action_space.low, np.array(card.action_low))
    np.testing.assert_allclose(env.action_space.high, np.array(card.action_high))
    assert env.spec is not None and env.spec.max_episode_steps == card.episode_steps
    # Every observation index is described exactly once (validation guarantees it; check the sum too).
    assert sum(t.last - t.first + 1 for t in card.obs_terms) == card.obs_dim
    env.close()


def test_ant_card_describes_the_contact_forces_as_blocks() -> None:
    card = load_card("Ant-v5")
    blocks = [t for t in card.obs_terms if t.first >= 27]
    assert len(blocks) == 13 and all(t.last - t.first == 5 for t in blocks)
    assert blocks[-1].last == 104


def _write_card(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load((cards_dir() / "Pendulum-v1.yaml").read_text())
    mutate(data)  # type: ignore[operator]
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("goal"), "goal: missing"),
        (lambda d: d["observation"]["terms"].pop(1), "missing 1"),
        (lambda d: d["observation"]["terms"].append(dict(d["observation"]["terms"][0])), "repeated 0"),
        (lambda d: d["action"]["dims"][0].update(low=3.0), "low < high"),
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d.update(schema_version=7), "schema_version"),
        (lambda d: d["observation"]["terms"][0].pop("unit"), "observation.terms[0].unit"),
    ],
)
def test_bad_card_is_a_one_line_user_error(tmp_path: Path, mutate: object, message: str) -> None:
    path = _write_card(tmp_path, mutate)
    with pytest.raises(UserError, match="env card") as info:
        load_card(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_env_names_the_known_cards() -> None:
    with pytest.raises(UserError, match="did you mean Hopper-v5"):
        load_card("Hoper-v5")


def test_sanitised_env_ids() -> None:
    assert sanitize_env_id("robolearn/Go2Velocity-v1") == "robolearn_Go2Velocity-v1"
    assert sanitize_env_id("Hopper-v5") == "Hopper-v5"
    with pytest.raises(UserError):
        sanitize_env_id("//")


def test_prompt_covers_the_card_and_hash_is_stable() -> None:
    card = load_card("Ant-v5")
    messages = build_messages(card, 3)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Write 3 different candidate controllers" in user
    assert "| 27-32 | cfrc_ext_torso |" in user
    assert all(f"| {d.index} | {d.name} |" in user for d in card.action_dims)
    assert "def policy(obs: np.ndarray) -> np.ndarray" in messages[0]["content"]
    assert "np.clip" in messages[0]["content"] and "np.save" not in messages[0]["content"]
    digest = prompt_hash(messages)
    assert digest == prompt_hash(build_messages(load_card("Ant-v5"), 3))
    assert digest != prompt_hash(build_messages(card, 4))
    assert len(digest) == 64
    assert render_card(card).startswith("# Task: Ant")
