"""Register robolearn's gymnasium ids whenever gymnasium is imported, so that a fresh interpreter's
`import gymnasium; gymnasium.make("robolearn/Go2Velocity-v1")` works without importing robolearn.

Gymnasium 1.x removed the `gymnasium.envs` entry-point plugins that 0.26-0.29 loaded on import (release
notes of v1.0.0a1, "Removing the plugin system"; 1.4's gymnasium/envs/__init__.py and registration.py read
no entry points), so an entry point in pyproject.toml does nothing. Instead the wheel installs robolearn-gymnasium.pth into site-packages (pyproject.toml's wheel
force-include), and Python's site module runs its one line at start-up: `import robolearn._gym_plugin`.
This module costs a few microseconds there: it imports nothing and only puts a finder on sys.meta_path.
When something imports gymnasium, the finder lets the normal import run and then calls
robolearn.envs.tasks.register_envs() (gym.register calls only: no MuJoCo model is compiled).
"""

from __future__ import annotations

import sys

# Typing names for the checker only: `typing` is not loaded at start-up, and this module runs there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any


def _register_ids() -> None:
    tasks = sys.modules.get("robolearn.envs.tasks")
    if tasks is not None and not hasattr(tasks, "register_envs"):
        # robolearn.envs.tasks is itself importing gymnasium (`import robolearn.envs` came first): the
        # package registers the ids as soon as that import finishes.
        return
    try:
        from robolearn.envs.tasks import register_envs

        register_envs()
    except Exception as exc:  # a broken robolearn must never break `import gymnasium`
        import warnings

        warnings.warn(f"robolearn could not register its gymnasium ids: {exc!r}", stacklevel=2)


class GymnasiumImportHook:
    """A sys.meta_path finder that registers robolearn's ids right after gymnasium finishes importing."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        """gymnasium's own spec, its loader wrapped to register our ids after the module runs."""
        if fullname != "gymnasium":
            return None
        # One shot: gymnasium is imported once per interpreter.
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            _register_ids()

        # The loader object belongs to this one spec, so patching it touches no other import.
        loader.exec_module = exec_module
        return spec


def install() -> None:
    """Put the hook on sys.meta_path (or register at once if gymnasium is already imported)."""
    if "gymnasium" in sys.modules:
        _register_ids()
    elif not any(isinstance(f, GymnasiumImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, GymnasiumImportHook())


install()
