"""Every verb's --help says what the verb does, lists its keys and exits 0; every console script resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from collections.abc import Callable

import pytest
from train_helpers import REPO

from robolearn.config.validate import compose_config

# module, console script, the config it composes, keys its help must name
VERBS = {
    "train": ("robolearn-train", "train", ("env", "agent", "+experiment", "steps", "resume")),
    "evaluate": ("robolearn-evaluate", "evaluate", ("run", "checkpoint", "episodes", "video")),
    "export": ("robolearn-export", "export", ("run", "checkpoint", "out", "reference")),
    "prior": ("robolearn-prior", "prior", ("action", "env", "prior", "llm.")),
    "deploy": ("robolearn-deploy", "deploy", ("robot", "policy", "backend", "duration_s")),
    "doctor": ("robolearn-doctor", "doctor", ("robot", "interface", "domain_id", "listen_s")),
    "deploy.sim_bridge": ("robolearn-sim-bridge", "deploy", ("robot", "bridge.loss", "bridge.state_hz")),
    "continual": ("robolearn-continual", "continual", ("sequence", "learner", "seed", "loop", "resume")),
    "collect": ("robolearn-collect", "collect", ("env", "kind", "size", "seed")),
    "offline": ("robolearn-offline", "offline", ("dataset", "algo", "filter", "seed", "resume")),
    "imitation.collect": (
        "robolearn-imitation-collect",
        "imitation/collect",
        ("task", "demos", "split", "out"),
    ),
    "imitation.pretrain": (
        "robolearn-imitation-pretrain",
        "imitation/pretrain",
        ("objective", "data", "resume"),
    ),
    "imitation.finetune": (
        "robolearn-imitation-finetune",
        "imitation/finetune",
        ("encoder", "data", "finetune"),
    ),
    "imitation.label": ("robolearn-imitation-label", "imitation/label", ("labeled", "unlabeled", "out")),
    "imitation.train": ("robolearn-imitation-train", "imitation/train", ("policy", "data", "resume")),
}
# Config entries a verb's help need not list: composed groups documented as settings.* / robot.
NOT_KEYS = {"hydra", "settings", "loop", "record", "mujoco", "bridge", "llm", "screen", "sandbox"}


def _main(verb: str) -> Callable[[], object]:
    module = "robolearn.deploy.__main__" if verb == "deploy" else f"robolearn.{verb}"
    main = importlib.import_module(module).main
    assert callable(main)
    return main  # type: ignore[no-any-return]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("verb", list(VERBS))
def test_help_describes_the_verb_and_exits_0(
    verb: str, flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script, _, keys = VERBS[verb]
    monkeypatch.setattr(sys, "argv", [script, flag])
    assert _main(verb)() is None  # a console script returning None exits 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m robolearn.{verb} ")
    assert f"\n       {script} " in text and "\nexamples:\n" in text
    for key in keys:
        assert f"\n  {key}" in text, f"{verb} --help does not list {key}"
    # Hydra's generated help (config groups, *_schema entries) is not what a user gets.
    assert "powered by Hydra" not in text and "_schema" not in text


@pytest.mark.parametrize("verb", ["evaluate", "export", "doctor"])
def test_help_lists_every_top_level_key(
    verb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script, config, _ = VERBS[verb]
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    _main(verb)()
    text = capsys.readouterr().out
    args = ["run=x"] if verb == "evaluate" else []
    for key in set(compose_config(config, args).keys()) - NOT_KEYS:
        assert f"\n  {key} " in text, f"{verb} --help does not list {key}"


def test_every_console_script_resolves_to_a_main() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["robolearn-sim-bridge"] == "robolearn.deploy.sim_bridge:main"
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_sim_bridge_help_from_a_fresh_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "robolearn.deploy.sim_bridge", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "robolearn-sim-bridge" in result.stdout and "bridge.loss" in result.stdout
