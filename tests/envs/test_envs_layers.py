"""Import direction of the env layers: tasks use backends, backends never import tasks (issue 15)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import robolearn.envs.backends as backends_package

BACKENDS_DIR = Path(backends_package.__file__).parent
FORBIDDEN = "robolearn.envs.tasks"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in a file, relative ones resolved against its package."""
    package = "robolearn.envs.backends"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(FORBIDDEN)
        ):
            # importlib.import_module("robolearn.envs.tasks...") counts too.
            found.append((node.lineno, node.value))
    return found


def test_no_backend_module_imports_the_tasks() -> None:
    files = sorted(BACKENDS_DIR.glob("*.py"))
    assert {"__init__.py", "base.py", "batch_backend.py", "mujoco_backend.py"} <= {f.name for f in files}
    offenders = [
        f"{path.name}:{line} imports {module}"
        for path in files
        for line, module in _imported_modules(path)
        if module == FORBIDDEN or module.startswith(FORBIDDEN + ".")
    ]
    assert offenders == []


def test_the_checker_sees_a_task_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ..tasks.base import RobotTask\nimport robolearn.envs.tasks.velocity\n"
        "from robolearn.envs import tasks\nimportlib.import_module('robolearn.envs.tasks.base')\n"
    )
    modules = [m for _, m in _imported_modules(bad)]
    assert "robolearn.envs.tasks.base" in modules
    assert "robolearn.envs.tasks.velocity" in modules
    assert "robolearn.envs.tasks" in modules


def test_importing_every_backend_loads_no_task_module() -> None:
    # A fresh interpreter: robolearn.envs's own __init__ registers ids through robolearn.envs.tasks
    # (a table, no task class), so the check is that no task implementation module gets loaded.
    names = [
        f"robolearn.envs.backends.{p.stem}" for p in sorted(BACKENDS_DIR.glob("*.py")) if p.stem != "__init__"
    ]
    names = [n for n in names if not n.endswith(("warp_backend", "warp_kernels"))]  # need the gpu extra
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('robolearn.envs.tasks.'))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_adapters_stay_importable_from_their_old_homes() -> None:
    from robolearn.envs import vector
    from robolearn.envs.backends import make_batched_env, make_batched_vector_env
    from robolearn.envs.backends.vector import BatchedVecEnv, BatchedVectorEnv

    assert make_batched_env is vector.make_batched_env
    assert make_batched_vector_env is vector.make_batched_vector_env
    assert BatchedVecEnv is vector.BatchedVecEnv and BatchedVectorEnv is vector.BatchedVectorEnv
