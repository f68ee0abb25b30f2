"""Executing a checked policy program: a restricted namespace and an in-process callable.

The namespace holds only the allow-listed names: ``np`` and ``math`` are stand-in namespaces that carry
just the allowed functions (no ``np.save``, no ``np.lib``), the builtins are the allowed few, and
``import`` resolves only numpy, numpy.linalg and math to those stand-ins. This is the second layer
behind the static checker: code that slipped past it still cannot name anything dangerous.

This module imports only numpy, math and the checker so the sandbox child process starts quickly.
"""

from __future__ import annotations

import builtins
import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from robolearn.errors import UserError
from robolearn.llm.checker import ALLOWED_BUILTINS, allowed_math_names, allowed_numpy_names, check_source

POLICY_FILENAME = "<policy>"


class PriorError(UserError):
    """A prior policy program that fails a check, or misbehaves when it is called."""


def _numpy_namespace() -> types.SimpleNamespace:
    submodules: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name in allowed_numpy_names():
        if "." in name:
            sub, leaf = name.split(".", 1)
            submodules.setdefault(sub, {})[leaf] = getattr(getattr(np, sub), leaf)
        else:
            top[name] = getattr(np, name)
    for sub, members in submodules.items():
        top[sub] = types.SimpleNamespace(**members)
    return types.SimpleNamespace(**top)


_NUMPY_NS = _numpy_namespace()
_MATH_NS = types.SimpleNamespace(**{name: getattr(math, name) for name in allowed_math_names()})
_MODULES: dict[str, types.SimpleNamespace] = {"numpy": _NUMPY_NS, "math": _MATH_NS}


def _guarded_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> types.SimpleNamespace:
    """``__import__`` for policy programs: numpy, numpy.linalg and math only, as stand-ins."""
    root = name.split(".")[0]
    if level != 0 or root not in _MODULES:
        raise ImportError(f"import of {name!r} is not allowed in a policy")
    module = _MODULES[root]
    if fromlist and "." in name:
        # "from numpy.linalg import norm" asks for the submodule itself.
        for part in name.split(".")[1:]:
            module = getattr(module, part)
    return module


def build_namespace() -> dict[str, Any]:
    """Fresh globals for one policy program: allowed builtins and the numpy/math stand-ins only."""
    allowed = {name: getattr(builtins, name) for name in sorted(ALLOWED_BUILTINS)}
    allowed["__import__"] = _guarded_import
    return {"__builtins__": allowed, "__name__": "robolearn_prior"}


def load_policy_function(source: str, check: bool = True) -> Callable[[np.ndarray], Any]:
    """Execute a program in a fresh restricted namespace and return its raw ``policy`` function."""
    if check:
        reasons = check_source(source)
        if reasons:
            raise PriorError(
                reasons[0] if len(reasons) == 1 else f"{reasons[0]} (and {len(reasons) - 1} more)"
            )
    namespace = build_namespace()
    code = compile(source, POLICY_FILENAME, "exec")
    exec(code, namespace)  # the namespace is the restricted one built above
    fn = namespace.get("policy")
    if not callable(fn):
        raise PriorError("the program does not define a callable 'policy'")
    return fn


class CompiledPrior:
    """A checked policy program as an in-process callable: obs -> float64 action, validated and clipped.

    The observation is copied (as float64) before the call so a policy cannot modify the caller's
    array; the action must have the expected shape and be finite, and is clipped to the bounds.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        action_low: np.ndarray,
        action_high: np.ndarray,
        name: str = "prior",
    ) -> None:
        self._fn = fn
        self.action_low = np.asarray(action_low, dtype=np.float64)
        self.action_high = np.asarray(action_high, dtype=np.float64)
        self.action_shape = self.action_low.shape
        self.name = name

    def raw(self, obs: np.ndarray) -> Any:
        """The policy's own output, unvalidated (for tests and diagnostics)."""
        return self._fn(np.array(obs, dtype=np.float64))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The prior's action for one observation, clipped to the action bounds."""
        try:
            action = np.asarray(self._fn(np.array(obs, dtype=np.float64)), dtype=np.float64)
        except Exception as exc:
            raise PriorError(f"prior {self.name!r} raised {describe_exception(exc)}") from exc
        if action.shape != self.action_shape:
            raise PriorError(
                f"prior {self.name!r} returned shape {action.shape}, expected {self.action_shape}"
            )
        if not np.isfinite(action).all():
            raise PriorError(f"prior {self.name!r} returned a non-finite action {action.tolist()}")
        return np.minimum(np.maximum(action, self.action_low), self.action_high)


def compile_prior(
    source: str,
    action_low: Sequence[float] | np.ndarray,
    action_high: Sequence[float] | np.ndarray,
    name: str = "prior",
    check: bool = True,
) -> CompiledPrior:
    """Statically check a program, execute it in the restricted namespace and wrap its ``policy``.

    Run the sandbox (robolearn.llm.sandbox) first for code you have not run before: this executes the
    module code in this process.
    """
    fn = load_policy_function(source, check=check)
    return CompiledPrior(fn, np.asarray(action_low), np.asarray(action_high), name=name)


def describe_exception(exc: BaseException) -> str:
    """'ZeroDivisionError: division by zero (line 7)' with the policy's own line when known."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == POLICY_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    message = str(exc).splitlines()[0] if str(exc) else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{text} (line {line})" if line is not None else text
