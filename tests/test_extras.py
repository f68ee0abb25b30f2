"""Every verb that needs an optional dependency, run with that module missing, exits 2 with one line
naming the extra to install; the table behind those lines agrees with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from robolearn.cli import DIST_LAUNCHERS
from robolearn.errors import OPTIONAL_MODULES, MissingExtraError, require_extra

ROOT = Path(__file__).resolve().parents[1]
GO2_STAND = str(ROOT / "policies" / "reference" / "go2_stand")

# Runs a verb's console entry with some modules made unimportable (None in sys.modules makes
# `import x` raise ImportError, as an absent package does).
RUNNER = """
import importlib, sys
missing, module, *argv = sys.argv[1:]
for name in missing.split(","):
    sys.modules[name] = None
sys.argv = [module, *argv]
importlib.import_module(module).main()
"""

# (missing modules, verb module, argv, the extra the line must name)
CASES = [
    ("onnx", "robolearn.export", ["reference=go2_stand", "out={tmp}/ref"], "deploy"),
    ("onnxruntime", "robolearn.export", ["reference=go2_stand", "out={tmp}/ref"], "deploy"),
    ("onnxruntime", "robolearn.deploy.__main__", ["robot=go2", f"policy={GO2_STAND}"], "deploy"),
    ("cyclonedds", "robolearn.deploy.__main__", ["robot=go2", "backend=dds"], "deploy"),
    ("unitree_sdk2py", "robolearn.deploy.__main__", ["robot=go2", "backend=dds"], "deploy"),
    ("cyclonedds", "robolearn.deploy.sim_bridge", ["robot=go2"], "deploy"),
    ("cyclonedds", "robolearn.doctor", ["robot=go2"], "deploy"),
    (
        "openai",
        "robolearn.prior",
        ["action=generate", "env=Hopper-v5", "llm.base_url=http://127.0.0.1:9/v1", "llm.model=m"],
        "llm",
    ),
    (
        "ray",
        "robolearn.train",
        ["-m", "hydra/launcher=ray_local", "seed=0,1", "hydra.sweep.dir={tmp}/s"],
        "dist",
    ),
    (
        "warp,mujoco_warp",
        "robolearn.train",
        ["env=Go2Velocity-v1", "env.kwargs.backend=warp", "steps=8", "hydra.run.dir={tmp}/run"],
        "gpu",
    ),
]


@pytest.mark.parametrize(
    ("missing", "module", "argv", "extra"),
    CASES,
    ids=[f"{c[1].removeprefix('robolearn.').removesuffix('.__main__')}-{c[0]}" for c in CASES],
)
def test_a_verb_missing_its_extra_says_what_to_install(
    missing: str, module: str, argv: list[str], extra: str, tmp_path: Path
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, missing, module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    package = OPTIONAL_MODULES[missing.split(",")[0]][0]
    assert f"'{package}'" in errors[0]
    assert errors[0].endswith(f'pip install "robolearn[{extra}]"')
    # Nothing was built: export wrote no artifact.
    assert not (tmp_path / "ref").exists()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_optional_module_table_matches_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # Pulled in by a launcher plugin the extra lists, not named there itself.
    transitive = {"submitit": "hydra-submitit-launcher"}
    for module, (package, extra) in OPTIONAL_MODULES.items():
        assert extra in extras, f"{module}: extra [{extra}] is not in pyproject.toml"
        names = _requirement_names(extras[extra])
        assert package.lower() in names or transitive.get(package) in names, (module, package, extra)


def test_dist_launchers_cover_our_launcher_configs() -> None:
    ours = {p.stem for p in (ROOT / "configs" / "hydra" / "launcher").glob("*.yaml")}
    assert ours - {"local"} <= set(DIST_LAUNCHERS)
    assert "local" not in DIST_LAUNCHERS  # joblib: a base dependency


def test_require_extra_message_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "unitree_sdk2py", None)
    with pytest.raises(MissingExtraError) as info:
        require_extra("backend=dds", "cyclonedds", "unitree_sdk2py")
    assert str(info.value) == (
        "backend=dds needs the 'unitree-sdk2py-dimos' package: pip install \"robolearn[deploy]\""
    )
    with pytest.raises(KeyError, match="OPTIONAL_MODULES"):
        require_extra("x", "not_a_known_module")
    require_extra("anything", "onnxruntime", "diffusers")  # installed here: no error


def test_every_dist_launcher_name_checks_its_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from robolearn.cli import require_launcher

    monkeypatch.setitem(sys.modules, "submitit", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    for name, modules in DIST_LAUNCHERS.items():
        package = OPTIONAL_MODULES[modules[-1]][0]
        with pytest.raises(MissingExtraError, match=rf"hydra/launcher={name} needs the '{package}' package"):
            require_launcher(["-m", f"hydra/launcher={name}", "seed=0,1"])
    require_launcher(["-m", "hydra/launcher=local", "seed=0,1"])  # joblib: base install
    require_launcher(["hydra/launcher=rayy"])  # a typo is the config check's to report
