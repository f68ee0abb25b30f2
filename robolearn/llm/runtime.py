"""Executing a checked policy program: guarded compilation, a restricted namespace, an in-process callable.

Two walls of the sandbox live here (robolearn.llm.walls has the process-level ones):

- the restricted namespace: ``np`` and ``math`` are stand-in namespaces that carry just the allowed
  functions (no ``np.save``, no ``np.lib``), the builtins are the allowed few, and ``import`` resolves
  only numpy, numpy.linalg and math to those stand-ins;
- the guards (RestrictedPython): the program is compiled with ``compile_restricted``, which refuses
  names and attributes starting with ``_`` and the frame/code/generator attributes (``gi_frame``,
  ``f_globals``...), and turns every attribute read into a call of ``_guarded_getattr``: it refuses
  the same names at run time, ``str.format``/``format_map`` (format strings reach attributes on their
  own) and anything that is not on the checker's allow-list (stand-in members, value methods such as
  ``shape`` or ``append``). A program that slipped past the static check therefore cannot walk
  ``().__class__.__base__.__subclasses__()`` to ``os.system``.

When RestrictedPython is not installed the guards are reported unavailable (and logged) and the
program is compiled plainly; the restricted namespace and the static check still apply.

This module imports only numpy, math, RestrictedPython and the checker so the sandbox child process
starts quickly.
"""

from __future__ import annotations

import ast
import builtins
import logging
import math
import operator
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from robolearn.errors import UserError
from robolearn.llm.checker import (
    ALLOWED_BUILTINS,
    allowed_math_names,
    allowed_numpy_names,
    allowed_value_attributes,
    check_source,
)

try:
    from RestrictedPython import compile_restricted_exec
    from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
    from RestrictedPython.transformer import RestrictingNodeTransformer

    _HAVE_RESTRICTED_PYTHON = True
except ImportError:  # the [llm] extra is missing: the guards report themselves unavailable
    _HAVE_RESTRICTED_PYTHON = False

POLICY_FILENAME = "<policy>"
_log = logging.getLogger(__name__)


class PriorError(UserError):
    """A prior policy program that fails a check, or misbehaves when it is called."""


class GuardViolation(PriorError):
    """A policy program reached for something the runtime guards refuse (a dunder, ``str.format``...)."""


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


# Stand-ins whose members a policy may read (every member is allowed by construction).
_STAND_IN_IDS = frozenset(
    id(ns) for ns in (_NUMPY_NS, _MATH_NS, *vars(_NUMPY_NS).values()) if isinstance(ns, types.SimpleNamespace)
)
_VALUE_ATTRS = frozenset(allowed_value_attributes())
# Frame, code, generator and traceback attributes lead back to globals and builtins without a dunder.
_INTROSPECTION_ATTRS = frozenset(
    {
        "ag_await", "ag_code", "ag_frame", "cr_await", "cr_code", "cr_frame", "cr_origin",
        "f_back", "f_builtins", "f_code", "f_generator", "f_globals", "f_locals", "f_trace",
        "gi_code", "gi_frame", "gi_yieldfrom", "tb_frame", "tb_next", "mro",
    }
)  # fmt: skip
_FORMAT_ATTRS = frozenset({"format", "format_map"})
# The mutable values a policy builds itself; item assignment into anything else is refused.
_WRITABLE_TYPES = (list, dict, set, np.ndarray)


def _guarded_getattr(obj: object, name: str) -> Any:
    """``obj.name`` for guarded programs: the checker's allow-list, enforced at run time."""
    if not isinstance(name, str):
        raise GuardViolation(f"attribute names must be strings, got {type(name).__name__}")
    if name.startswith("_"):
        raise GuardViolation(f"attribute {name!r} starts with '_' (refused by the runtime guard)")
    if name in _INTROSPECTION_ATTRS:
        raise GuardViolation(
            f"attribute {name!r} reaches interpreter internals (refused by the runtime guard)"
        )
    if name in _FORMAT_ATTRS and (isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))):
        raise GuardViolation(f"str.{name} can reach attributes (refused by the runtime guard)")
    if id(obj) in _STAND_IN_IDS:
        return getattr(obj, name)  # AttributeError names the missing member: not on the allow-list
    if name not in _VALUE_ATTRS:
        raise GuardViolation(f"attribute {name!r} is not on the allow-list (refused by the runtime guard)")
    return getattr(obj, name)


def _guarded_write(obj: Any) -> Any:
    """The target of an item (or attribute) assignment: only lists, dicts, sets and arrays."""
    if isinstance(obj, _WRITABLE_TYPES):
        return obj
    raise GuardViolation(f"cannot modify a {type(obj).__name__} (refused by the runtime guard)")


def _guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def _guarded_getiter(obj: Iterable[Any]) -> Iterator[Any]:
    return iter(obj)


def _apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "@=": operator.imatmul,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
}


def _inplace(op: str, target: Any, value: Any) -> Any:
    return _INPLACE_OPS[op](target, value)


def guards_available() -> bool:
    """True when RestrictedPython is installed, so programs are compiled with the runtime guards."""
    return _HAVE_RESTRICTED_PYTHON


def guards_status() -> str:
    """'active' or 'unavailable: <why and the fix>' (the sandbox reports it as the 'guards' wall)."""
    if guards_available():
        return "active"
    return "unavailable: RestrictedPython is not installed (pip install 'robolearn[llm]')"


if _HAVE_RESTRICTED_PYTHON:

    class _PolicyTransformer(RestrictingNodeTransformer):
        """RestrictedPython's policy, with two waivers the allow-list also makes: ``a[i] += x`` (the
        target is still passed through ``_write_``) and annotated assignments."""

        def visit_AugAssign(self, node: Any) -> Any:
            if isinstance(node.target, ast.Subscript):
                return self.node_contents_visit(node)
            return super().visit_AugAssign(node)

        def visit_AnnAssign(self, node: Any) -> Any:
            return self.node_contents_visit(node)


def build_namespace(guards: bool = True) -> dict[str, Any]:
    """Fresh globals for one policy program: allowed builtins, the numpy/math stand-ins, and (with
    ``guards``) the guard functions RestrictedPython's compiled code calls."""
    allowed = {name: getattr(builtins, name) for name in sorted(ALLOWED_BUILTINS)}
    allowed["__import__"] = _guarded_import
    namespace: dict[str, Any] = {"__builtins__": allowed, "__name__": "robolearn_prior"}
    if guards:
        namespace.update(
            _getattr_=_guarded_getattr,
            _getitem_=_guarded_getitem,
            _getiter_=_guarded_getiter,
            _write_=_guarded_write,
            _apply_=_apply,
            _inplacevar_=_inplace,
            _iter_unpack_sequence_=guarded_iter_unpack_sequence,
            _unpack_sequence_=guarded_unpack_sequence,
        )
    return namespace


def compile_policy(source: str, guards: bool = True) -> types.CodeType:
    """Compile a program, with RestrictedPython's guards when ``guards`` and RestrictedPython is
    installed (GuardViolation when it refuses the program); plainly otherwise."""
    if not (guards and guards_available()):
        if guards:
            _log.warning("policy compiled without runtime guards: %s", guards_status())
        return compile(source, POLICY_FILENAME, "exec")
    result = compile_restricted_exec(source, filename=POLICY_FILENAME, policy=_PolicyTransformer)
    if result.errors or result.code is None:
        errors = list(dict.fromkeys(result.errors)) or ["no code produced"]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise GuardViolation(f"the runtime guards refuse the program: {' '.join(errors[:3])}{more}")
    code: types.CodeType = result.code
    return code


def load_policy_function(source: str, check: bool = True, guards: bool = True) -> Callable[[np.ndarray], Any]:
    """Execute a program in a fresh restricted namespace and return its raw ``policy`` function.

    ``guards=False`` compiles without RestrictedPython's guards; only the sandbox child uses it, when a
    test switches that wall off to show the process-level walls hold on their own.
    """
    if check:
        reasons = check_source(source)
        if reasons:
            raise PriorError(
                reasons[0] if len(reasons) == 1 else f"{reasons[0]} (and {len(reasons) - 1} more)"
            )
    use_guards = guards and guards_available()
    code = compile_policy(source, guards=guards)
    namespace = build_namespace(guards=use_guards)
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
