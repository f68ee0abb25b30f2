"""generate end to end against a scripted local LLM server: good and bad candidates go in, the good
one comes out screened and saved with a provenance header; plus the CLI wiring."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_scripted import GOOD_PENDULUM, Scripted, ScriptedServer
from omegaconf import DictConfig

from robolearn.config.validate import compose_config
from robolearn.errors import UserError
from robolearn.llm.cards import load_card
from robolearn.llm.client import ChatClient, resolve_settings
from robolearn.llm.pipeline import GenerateOptions, candidate_table, generate_prior
from robolearn.llm.priors import load_prior, read_prior
from robolearn.llm.prompt import build_messages, prompt_hash
from robolearn.llm.sandbox import SandboxLimits
from robolearn.prior import register_prior_schema, run

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")
Start = Callable[[list[Scripted]], ScriptedServer]

# A worse but valid controller, so screening has to rank.
WEAK_PENDULUM = (
    "import numpy as np\n\n\ndef policy(obs: np.ndarray) -> np.ndarray:\n    return np.array([0.0])\n"
)
BAD_PROGRAMS = [
    "import os\n\n\ndef policy(obs):\n    os.system('echo hi')\n    return [0.0]\n",
    "def policy(obs):\n    while True:\n        pass\n",
    "import numpy as np\n\n\ndef policy(obs):\n    return np.array([np.nan])\n",
    "import numpy as np\n\n\ndef policy(obs):\n    return np.zeros(2)\n",
    "import numpy as np\n\n\ndef policy(obs):\n    np.save('stolen.npy', obs)\n    return np.zeros(1)\n",
]


def fenced(*programs: str) -> str:
    return "Here are the candidates.\n\n" + "\n".join(f"```python\n{p}```\n" for p in programs)


def fast_options(**overrides: Any) -> GenerateOptions:
    """Options with two short screening episodes and tight sandbox limits."""
    base = GenerateOptions(
        screen_episodes=2,
        screen_max_steps=60,
        probe_observations=16,
        probe_limits=SandboxLimits(cpu_s=1.0, memory_mb=512.0, wall_s=30.0),
        screen_limits=SandboxLimits(cpu_s=5.0, memory_mb=512.0, wall_s=60.0),
    )
    return replace(base, **overrides)


def test_generate_saves_the_best_good_candidate(scripted_server: Start, tmp_path: Path) -> None:
    replies = [
        fenced(BAD_PROGRAMS[0], WEAK_PENDULUM, BAD_PROGRAMS[1], BAD_PROGRAMS[2]),
        fenced(BAD_PROGRAMS[3], GOOD_PENDULUM, BAD_PROGRAMS[4]),
        "Sorry, I cannot write code today.",
    ]
    server = scripted_server([Scripted(contents=replies)])
    settings = resolve_settings(base_url=server.url, model="scripted-coder", timeout_s=5, retries=0)
    options = fast_options(n_candidates=4, samples=3, model=settings.model, endpoint=settings.base_url)
    out_root = tmp_path / "priors"

    result = generate_prior("Pendulum-v1", ChatClient(settings), out_root, options)

    stages = {c.label: c.stage for c in result.candidates}
    assert stages == {
        "#0": "check",  # import os
        "#1": "screened",  # weak
        "#2": "sandbox",  # infinite loop: CPU limit
        "#3": "sandbox",  # NaN
        "#4": "sandbox",  # wrong shape
        "#5": "screened",  # good
        "#6": "check",  # np.save
        "#7": "extract",  # no code block
    }
    reasons = {c.label: c.reasons[0] for c in result.candidates if c.reasons}
    assert "CPU-time limit" in reasons["#2"] and "non-finite" in reasons["#3"]
    assert "shape (2,)" in reasons["#4"] and "np.save" in reasons["#6"]
    assert "no fenced code block" in reasons["#7"]
    assert result.best is not None and result.best.label == "#5"
    assert "#5" in candidate_table(result.candidates)

    assert result.saved_path is not None and result.saved_path.parent == out_root / "Pendulum-v1"
    saved = read_prior(result.saved_path)
    assert saved.header["origin"] == "llm" and saved.header["model"] == "scripted-coder"
    assert saved.header["prompt_sha256"] == prompt_hash(build_messages(load_card("Pendulum-v1"), 4))
    assert float(saved.header["screened_return"]) == pytest.approx(result.best.screen.mean, abs=0.01)  # type: ignore[union-attr]
    assert "def policy" in saved.text and GOOD_PENDULUM.strip() in saved.text
    assert server.requests[0]["body"]["n"] == 3

    report = json.loads(result.report_path.read_text())  # type: ignore[union-attr]
    assert report["best"] == "#5" and len(report["candidates"]) == 8
    assert report["messages"][1]["role"] == "user"
    assert set(report["sandbox_walls"]) == {"guards", "rlimits", "privileges", "seccomp", "netns"}

    loaded = load_prior(str(result.saved_path), probe=False)
    assert loaded.policy(np.array([1.0, 0.0, 0.0])).shape == (1,)
    assert not Path("stolen.npy").exists()


def test_generate_with_no_survivor_saves_nothing_but_reports_every_reason(
    scripted_server: Start, tmp_path: Path
) -> None:
    replies = [fenced(BAD_PROGRAMS[0], BAD_PROGRAMS[4], BAD_PROGRAMS[1])]
    server = scripted_server([Scripted(contents=replies), Scripted(contents=replies)])
    settings = resolve_settings(base_url=server.url, model="m", timeout_s=5, retries=0)
    options = fast_options(n_candidates=3, model="m")
    result = generate_prior("Pendulum-v1", ChatClient(settings), tmp_path, options)
    assert result.best is None and result.saved_path is None
    assert not any(tmp_path.rglob("*.py"))

    # The table shows the first reason and "(+2 more)"; the report keeps all three.
    assert "(+2 more)" in candidate_table(result.candidates)
    assert result.report_path is not None and result.report_path.name.endswith(".generation.json")
    report = json.loads(result.report_path.read_text())
    assert report["best"] is None and "nothing saved" in report["outcome"]
    first = report["candidates"][0]
    assert first["stage"] == "check" and len(first["reasons"]) == 3
    assert "import of 'os'" in first["reasons"][0] and "'.system'" in first["reasons"][1]
    assert "np.save" in report["candidates"][1]["reasons"][0]
    assert "CPU-time limit" in report["candidates"][2]["reasons"][0]
    assert report["sandbox_walls"]["guards"] == "active"  # from the probe of the looping candidate

    # A second run that saves nothing does not overwrite the first run's report.
    again = generate_prior("Pendulum-v1", ChatClient(settings), tmp_path, options)
    assert again.report_path is not None and again.report_path != result.report_path
    assert result.report_path.is_file() and again.report_path.is_file()


def cli_config(*overrides: str) -> DictConfig:
    register_prior_schema()
    return compose_config("prior", list(overrides))


def test_cli_generate_then_list_and_name_clash(
    scripted_server: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = scripted_server([Scripted(contents=[fenced(GOOD_PENDULUM)])])
    common = [
        "env=Pendulum-v1",
        f"llm.base_url={server.url}",
        "llm.model=scripted",
        "llm.retries=0",
        "n_candidates=1",
        "name=swing",
        "screen.episodes=2",
        "screen.max_steps=50",
        f"user_dir={tmp_path}",
    ]
    assert run(cli_config("action=generate", *common)) == 0
    out = capsys.readouterr().out
    assert "saved #0" in out and (tmp_path / "Pendulum-v1" / "swing.py").is_file()

    assert run(cli_config("action=list", "env=Pendulum-v1", f"user_dir={tmp_path}")) == 0
    listing = capsys.readouterr().out
    assert "swing" in listing and "user" in listing and "pendulum_energy_swingup" in listing

    with pytest.raises(UserError, match="exists; pass overwrite=true"):
        run(cli_config("action=generate", *common))


def test_cli_generate_against_a_dead_server(dead_url: str) -> None:
    cfg = cli_config(
        "action=generate", "env=Pendulum-v1", f"llm.base_url={dead_url}", "llm.model=m", "llm.retries=0"
    )
    with pytest.raises(UserError, match="is unreachable"):
        run(cfg)


def test_cli_rejects_bad_values() -> None:
    with pytest.raises(UserError, match="action=fly is not one of"):
        run(cli_config("action=fly"))
    with pytest.raises(UserError, match="needs env"):
        run(cli_config("action=generate", "llm.model=m", "llm.base_url=http://127.0.0.1:9/v1"))
    with pytest.raises(UserError, match="unknown config key"):
        cli_config("n_candidate=3")
