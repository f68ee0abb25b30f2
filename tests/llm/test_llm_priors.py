"""Prior files: every shipped prior loads, passes the checker and the sandbox, and runs; headers,
lookup in the shipped and user folders, and the prior CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from llm_scripted import CARDED

from robolearn.errors import UserError
from robolearn.llm.checker import check_source
from robolearn.llm.priors import (
    HAND_WRITTEN_LABEL,
    find_prior,
    list_priors,
    load_prior,
    parse_prior_text,
    prior_code,
    prior_path,
    read_prior,
    shipped_dir,
    update_screening,
    write_prior,
)
from robolearn.llm.runtime import PriorError
from robolearn.llm.screen import make_env

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(str(p.relative_to(shipped_dir())) for p in shipped_dir().glob("*/*.py"))


def test_one_shipped_prior_per_carded_env_and_the_negated_pendulum() -> None:
    envs = {read_prior(shipped_dir() / rel).env_id for rel in SHIPPED}
    assert envs == set(CARDED)
    assert "Pendulum-v1/pendulum_negated.py" in SHIPPED


@pytest.mark.parametrize("rel", SHIPPED)
def test_shipped_prior_loads_checks_and_runs(rel: str) -> None:
    prior = read_prior(shipped_dir() / rel, "shipped")
    assert check_source(prior.text) == []
    # Honest provenance: hand-written priors say so, and every shipped prior was screened.
    assert prior.header["origin"] == "hand-written" and prior.header["model"] == "none"
    assert HAND_WRITTEN_LABEL in prior.header["label"] and "not by an LLM" in prior.header["label"]
    assert len(prior.header["prompt_sha256"]) == 64
    assert prior.screened_return is not None and prior.header["screened_episodes"] == "10"

    loaded = load_prior(str(prior.path), env_id=prior.env_id)  # static check + sandbox probe
    env = make_env(prior.env_id, prior.env_kwargs)  # registers robolearn/ ids first
    assert isinstance(env.action_space, gym.spaces.Box)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        action = loaded.policy(obs)
        assert action.shape == env.action_space.shape
        assert np.all(action >= env.action_space.low) and np.all(action <= env.action_space.high)
        obs, _, terminated, truncated, _ = env.step(action.astype(env.action_space.dtype))
        if terminated or truncated:
            break
    env.close()


def test_negated_pendulum_prior_is_the_negated_swing_up() -> None:
    good = load_prior("pendulum_energy_swingup", probe=False).policy
    bad = load_prior("pendulum_negated", probe=False).policy
    for obs in np.random.default_rng(0).uniform([-1, -1, -8], [1, 1, 8], size=(50, 3)):
        np.testing.assert_allclose(bad(obs), -good(obs))
    negated = read_prior(shipped_dir() / "Pendulum-v1" / "pendulum_negated.py")
    swing_up = read_prior(shipped_dir() / "Pendulum-v1" / "pendulum_energy_swingup.py")
    assert "deliberately bad" in negated.header["label"]
    assert negated.screened_return is not None and swing_up.screened_return is not None
    assert negated.screened_return < swing_up.screened_return


HEADER = {
    "robolearn-prior": "1",
    "env": "robolearn/Go2Velocity-v1",
    "name": "trot",
    "origin": "llm",
    "label": "test",
    "model": "m",
    "prompt_sha256": "0" * 64,
    "created": "2025-01-01",
}
CODE = "import numpy as np\n\n\ndef policy(obs):\n    return np.zeros(1)\n"


def test_write_read_and_sanitised_folder(tmp_path: Path) -> None:
    path = write_prior(prior_path(tmp_path, HEADER["env"], "trot"), HEADER, "# a comment\n" + CODE)
    assert path == tmp_path / "robolearn_Go2Velocity-v1" / "trot.py"
    prior = read_prior(path)
    assert prior.env_id == "robolearn/Go2Velocity-v1" and prior.screened_return is None
    assert prior_code(prior).startswith("# a comment")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CODE, "is not '# key: value'"),
        ("# robolearn-prior: 1\n# env: X\n\n" + CODE, "header is missing"),
        (
            "".join(f"# {k}: {v}\n" for k, v in {**HEADER, "robolearn-prior": "9"}.items()) + "\n" + CODE,
            "format version",
        ),
        (
            "".join(f"# {k}: {v}\n" for k, v in {**HEADER, "name": "bad name"}.items()) + "\n" + CODE,
            "prior name",
        ),
    ],
)
def test_bad_headers(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_prior_text(text, tmp_path / "x.py")


def test_lookup_in_user_and_shipped_folders(isolated_llm_env: Path) -> None:
    user = isolated_llm_env
    header = {**HEADER, "env": "Pendulum-v1", "name": "mine"}
    write_prior(prior_path(user, "Pendulum-v1", "mine"), header, CODE)
    assert find_prior("mine").location == "user"
    assert find_prior("Pendulum-v1/mine").location == "user"
    assert find_prior("idp_lqr").location == "shipped"
    assert {p.location for p in list_priors("Pendulum-v1")} == {"user", "shipped"}
    with pytest.raises(UserError, match="did you mean mine"):
        find_prior("mnie")
    clash = {**header, "name": "pendulum_energy_swingup"}
    write_prior(prior_path(user, "Pendulum-v1", "pendulum_energy_swingup"), clash, CODE)
    with pytest.raises(UserError, match="ambiguous"):
        find_prior("pendulum_energy_swingup")


def test_a_prior_that_fails_the_checks_is_a_one_line_error(isolated_llm_env: Path) -> None:
    header = {**HEADER, "env": "Pendulum-v1", "name": "evil"}
    evil = "import os\n\n\ndef policy(obs):\n    return [0.0]\n"
    write_prior(prior_path(isolated_llm_env, "Pendulum-v1", "evil"), header, evil)
    with pytest.raises(PriorError, match=r"evil.py fails the checker: line 10: import of 'os'") as info:
        load_prior("evil")
    assert "\n" not in str(info.value)
    header = {**header, "name": "loops"}
    write_prior(
        prior_path(isolated_llm_env, "Pendulum-v1", "loops"),
        header,
        "def policy(obs):\n    while True:\n        pass\n",
    )
    from robolearn.llm.sandbox import SandboxLimits

    with pytest.raises(PriorError, match="fails the sandbox: exceeded the CPU-time limit"):
        load_prior("loops", limits=SandboxLimits(cpu_s=1.0, memory_mb=256.0, wall_s=20.0))


def test_update_screening_keeps_the_code(tmp_path: Path) -> None:
    path = write_prior(
        prior_path(tmp_path, "Pendulum-v1", "p"), {**HEADER, "env": "Pendulum-v1", "name": "p"}, CODE
    )
    updated = update_screening(read_prior(path), [-100.0, -200.0], seed=3)
    assert updated.screened_return == -150.0 and updated.header["screened_seed"] == "3"
    assert prior_code(updated) == CODE and updated.header["created"] == "2025-01-01"


def run_prior_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "robolearn.prior", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_cli_list_screen_and_errors(isolated_llm_env: Path, tmp_path: Path) -> None:
    listing = run_prior_cli("action=list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "idp_lqr" in listing.stdout and "9359" in listing.stdout

    source = read_prior(shipped_dir() / "Pendulum-v1" / "pendulum_energy_swingup.py")
    copy = write_prior(
        prior_path(isolated_llm_env, "Pendulum-v1", "copy"),
        {**source.header, "name": "copy"},
        prior_code(source),
    )
    screened = run_prior_cli(
        "action=screen", "env=Pendulum-v1", "prior=copy", "screen.episodes=2", cwd=tmp_path
    )
    assert screened.returncode == 0, screened.stderr
    assert "over 2 episodes" in screened.stdout and "random policy" in screened.stdout
    assert read_prior(copy).header["screened_episodes"] == "2"

    bad = run_prior_cli("action=fly", cwd=tmp_path)
    assert (
        bad.returncode == 2 and bad.stderr.strip() == "error: action=fly is not one of generate, screen, list"
    )


def test_a_prior_needing_env_options_refuses_a_run_without_them(tmp_path: Path) -> None:
    loaded = load_prior("go2_clock_pattern", env_id="robolearn/Go2Velocity-v1", probe=False)
    assert loaded.file.env_kwargs == {"gait_period_s": 0.5}
    with pytest.raises(UserError, match=r"needs env.kwargs.gait_period_s=0.5, but the run has null"):
        load_prior("go2_clock_pattern", env_id="robolearn/Go2Velocity-v1", probe=False, env_kwargs={})
    text = (shipped_dir() / "robolearn_Go2Velocity-v1" / "go2_clock_pattern.py").read_text()
    bad = tmp_path / "go2_clock_pattern.py"
    bad.write_text(text.replace('{"gait_period_s": 0.5}', "gait_period_s=0.5"))
    with pytest.raises(UserError, match=r"env_kwargs .gait_period_s=0\.5. is not a JSON object"):
        read_prior(bad)


def test_best_prior_only_considers_priors_whose_env_options_the_run_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robolearn.methods.camel_prior import best_prior_name

    text = (shipped_dir() / "robolearn_Go2Velocity-v1" / "go2_clock_pattern.py").read_text()
    text = text.replace("# name: go2_clock_pattern", "# name: clock_high").replace(
        "# screened_return: 6.32", "# screened_return: 99.0"
    )
    folder = tmp_path / "robolearn_Go2Velocity-v1"
    folder.mkdir()
    (folder / "clock_high.py").write_text(text)
    monkeypatch.setenv("ROBOLEARN_PRIORS_DIR", str(tmp_path))
    assert best_prior_name("robolearn/Go2Velocity-v1", {"gait_period_s": 0.5}) == "clock_high"
    # Without the clock the clocked priors are out, however well they screened.
    assert best_prior_name("robolearn/Go2Velocity-v1", {}) == "go2_stand_trot"
