"""robolearn's gymnasium ids resolve in a fresh interpreter that imports only gymnasium (the installed
robolearn-gymnasium.pth hook) and on `import robolearn.envs`, and registering them stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from robolearn.envs.tasks import BUILDABLE, TASKS

ROOT = Path(__file__).resolve().parents[1]
REINSTALL = 'the robolearn-gymnasium.pth hook is not installed here; run pip install -e ".[dev]" again'


def _python(code: str) -> dict:
    """Run code in a fresh interpreter (site-packages .pth files processed) and parse its JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/", check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plain_gymnasium_make_builds_every_robolearn_id() -> None:
    code = f"""
import json, sys
import gymnasium
out = {{"ids": sorted(k for k in gymnasium.registry if k.startswith("robolearn/"))}}
# What `import gymnasium` alone loaded: registration must not build models or load the trainers.
out["loaded"] = sorted(m for m in ("mujoco", "torch", "stable_baselines3", "robolearn.envs.factory") if m in sys.modules)
out["envs"] = {{}}
for env_id in {list(BUILDABLE)!r}:
    env = gymnasium.make(env_id)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample() * 0)
    out["envs"][env_id] = [type(env.unwrapped).__name__, list(obs.shape), env.spec.max_episode_steps]
    env.close()
print(json.dumps(out))
"""
    out = _python(code)
    assert out["ids"] == sorted(TASKS), REINSTALL
    assert out["loaded"] == []
    assert set(out["envs"]) == set(BUILDABLE)
    for env_id in BUILDABLE:
        entry = TASKS[env_id]
        cls, shape, max_steps = out["envs"][env_id]
        assert cls == entry.entry_point.rsplit(":", 1)[1]
        assert len(shape) == 1 and shape[0] > 0
        assert max_steps == entry.max_episode_steps


def test_import_robolearn_envs_registers_without_the_hook() -> None:
    # The hook is taken off first, so only `import robolearn.envs` can register the ids.
    code = """
import json, sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "GymnasiumImportHook"]
import gymnasium
before = sorted(k for k in gymnasium.registry if k.startswith("robolearn/"))
import robolearn.envs
after = sorted(k for k in gymnasium.registry if k.startswith("robolearn/"))
lazy = "robolearn.envs.factory" not in sys.modules and "mujoco" not in sys.modules
print(json.dumps({"before": before, "after": after, "lazy": lazy}))
"""
    out = _python(code)
    assert out["before"] == []
    assert out["after"] == sorted(TASKS)
    assert out["lazy"] is True


def test_the_factory_names_load_on_first_use() -> None:
    import robolearn.envs
    import robolearn.envs.factory

    assert robolearn.envs.make_vec_env is robolearn.envs.factory.make_vec_env
    with pytest.raises(AttributeError, match="make_envs"):
        robolearn.envs.make_envs  # noqa: B018 - the lookup is the test


def test_the_wheel_installs_the_hook_at_site_packages_root() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force.get("robolearn/robolearn-gymnasium.pth") == "robolearn-gymnasium.pth"
    assert (ROOT / "robolearn/robolearn-gymnasium.pth").read_text() == "import robolearn._gym_plugin\n"


def test_the_hook_registers_when_gymnasium_was_imported_first() -> None:
    code = """
import json, sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "GymnasiumImportHook"]
import gymnasium
for k in [k for k in gymnasium.registry if k.startswith("robolearn/")]:
    del gymnasium.registry[k]
import robolearn._gym_plugin as plugin
plugin.install()
print(json.dumps(sorted(k for k in gymnasium.registry if k.startswith("robolearn/"))))
"""
    assert _python(code) == sorted(TASKS)
