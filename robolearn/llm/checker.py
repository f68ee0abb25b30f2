"""Static check of LLM-written policy code before anything runs: an AST allow-list.

A program passes only if every syntax node, name, attribute and import is on an explicit allow-list:

- top level: a docstring, ``import numpy [as np]``, ``import math``, ``from numpy|math import <allowed>``,
  UPPER_CASE constant assignments, helper function definitions and exactly one ``def policy(obs)``
  with one positional parameter;
- names: the program's own bindings, the builtins in ``ALLOWED_BUILTINS`` and the numpy/math module
  aliases, the latter only as ``np.<name>`` / ``math.<name>``;
- module attributes: the numpy names in ``_NUMPY_ALLOWED`` (``linalg.norm`` etc. for submodules) and the
  math names in ``_MATH_ALLOWED``;
- attributes of values (arrays, lists, dicts): the methods in ``_VALUE_ATTRS_ALLOWED``;
- no name, attribute, keyword or string containing ``__``, no other leading underscore;
- no classes, try/except, with, raise, global/nonlocal, del, f-strings, decorators, async or yield;
- no attribute assignment, and no item assignment into module-level constants (``policy`` is pure).

Everything else is rejected with a one-line reason naming the line. Functions that touch files
(``np.save``, ``np.load``, ``np.fromfile``, ``np.memmap``, ``arr.tofile``, ``np.savetxt``...), ``np.lib``,
``np.ctypeslib``, introspection (``getattr``, ``globals``, ``vars``...) and dynamic code (``eval``,
``exec``, ``compile``, ``__import__``) get a specific reason, but they would be rejected anyway because
they are not on the allow-list.

When RestrictedPython is installed its compiler is run as a second, independent opinion on programs
the allow-list accepted; its two rules that forbid ordinary policy code (``a[i] += x`` and annotated
assignments, which it refuses because it cannot guard them, not because they reach anything) are waived.

The runtime namespace (robolearn.llm.runtime) exposes exactly the same names and its RestrictedPython
guards enforce the same attribute allow-list, so a program that slips past this check still finds no
``np.save``, ``open`` or ``__subclasses__`` when it runs; the sandbox child adds process-level walls
(robolearn.llm.walls).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

MAX_SOURCE_CHARS = 50_000
MAX_AST_NODES = 20_000

ALLOWED_BUILTINS = frozenset(
    {
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "int",
        "len",
        "list",
        "max",
        "min",
        "pow",
        "range",
        "reversed",
        "round",
        "sorted",
        "sum",
        "tuple",
        "zip",
    }
)

# numpy names a controller needs: elementwise maths, reductions, constructors, stacking, linear algebra.
_NUMPY_CANDIDATES = [
    "abs",
    "absolute",
    "add",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "append",
    "arange",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "argmax",
    "argmin",
    "argsort",
    "around",
    "array",
    "asarray",
    "atleast_1d",
    "average",
    "bool_",
    "cbrt",
    "ceil",
    "clip",
    "concatenate",
    "copysign",
    "cos",
    "cosh",
    "cross",
    "cumprod",
    "cumsum",
    "deg2rad",
    "degrees",
    "diag",
    "diff",
    "divide",
    "dot",
    "e",
    "einsum",
    "exp",
    "exp2",
    "expm1",
    "eye",
    "fabs",
    "flip",
    "float32",
    "float64",
    "floor",
    "floor_divide",
    "fmax",
    "fmin",
    "fmod",
    "full",
    "full_like",
    "heaviside",
    "hstack",
    "hypot",
    "inf",
    "int32",
    "int64",
    "interp",
    "isclose",
    "isfinite",
    "isinf",
    "isnan",
    "linspace",
    "log",
    "log10",
    "log1p",
    "log2",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "matmul",
    "max",
    "maximum",
    "mean",
    "median",
    "min",
    "minimum",
    "mod",
    "multiply",
    "nan",
    "nan_to_num",
    "ndarray",
    "negative",
    "newaxis",
    "ones",
    "ones_like",
    "outer",
    "pi",
    "power",
    "prod",
    "rad2deg",
    "radians",
    "ravel",
    "reciprocal",
    "remainder",
    "repeat",
    "reshape",
    "rint",
    "roll",
    "round",
    "sign",
    "signbit",
    "sin",
    "sinh",
    "sort",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "subtract",
    "sum",
    "take",
    "tan",
    "tanh",
    "tile",
    "trace",
    "transpose",
    "trunc",
    "unwrap",
    "var",
    "vstack",
    "where",
    "zeros",
    "zeros_like",
]
_NUMPY_SUBMODULES = {"linalg": ("norm", "solve", "inv", "pinv", "det")}

_MATH_CANDIDATES = [
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "copysign",
    "cos",
    "cosh",
    "degrees",
    "e",
    "exp",
    "expm1",
    "fabs",
    "floor",
    "fmod",
    "hypot",
    "inf",
    "isclose",
    "isfinite",
    "isinf",
    "isnan",
    "log",
    "log10",
    "log1p",
    "log2",
    "pi",
    "pow",
    "radians",
    "remainder",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "tau",
    "trunc",
]

_NUMPY_ALLOWED = frozenset(n for n in _NUMPY_CANDIDATES if hasattr(np, n)) | frozenset(
    f"{sub}.{n}" for sub, names in _NUMPY_SUBMODULES.items() for n in names if hasattr(getattr(np, sub), n)
)
_MATH_ALLOWED = frozenset(n for n in _MATH_CANDIDATES if hasattr(math, n))

# Methods and attributes of arrays, lists and dicts that neither reach the file system nor memory.
_VALUE_ATTRS_ALLOWED = frozenset(
    [
        "T",
        "all",
        "any",
        "append",
        "argmax",
        "argmin",
        "argsort",
        "astype",
        "clip",
        "copy",
        "count",
        "cumsum",
        "dot",
        "dtype",
        "extend",
        "fill",
        "flatten",
        "get",
        "imag",
        "index",
        "item",
        "items",
        "keys",
        "max",
        "mean",
        "min",
        "ndim",
        "pop",
        "prod",
        "ravel",
        "real",
        "reshape",
        "round",
        "shape",
        "size",
        "sort",
        "squeeze",
        "std",
        "sum",
        "tolist",
        "transpose",
        "values",
        "var",
    ]
)

# Reasons for names that are rejected anyway but deserve a precise message.
_FILE_REASON = "reads or writes files"
_FORBIDDEN_NUMPY = {
    "save": _FILE_REASON,
    "savez": _FILE_REASON,
    "savez_compressed": _FILE_REASON,
    "savetxt": _FILE_REASON,
    "load": _FILE_REASON,
    "loadtxt": _FILE_REASON,
    "genfromtxt": _FILE_REASON,
    "fromfile": _FILE_REASON,
    "fromregex": _FILE_REASON,
    "memmap": _FILE_REASON,
    "DataSource": _FILE_REASON,
    "lib": "exposes file formats and internals",
    "ctypeslib": "exposes raw memory and C libraries",
    "random": "policies must be deterministic",
    "frompyfunc": "wraps arbitrary callables",
    "vectorize": "wraps arbitrary callables",
    "testing": "exposes test helpers that reach the system",
    "f2py": "exposes a compiler",
}
_FORBIDDEN_VALUE_ATTRS = {
    "tofile": _FILE_REASON,
    "dump": _FILE_REASON,
    "dumps": "serialises objects (pickle)",
    "ctypes": "exposes raw memory",
    "data": "exposes the raw buffer",
    "base": "exposes the underlying buffer",
    "view": "reinterprets raw memory",
    "format": "string formatting can reach attributes",
}
_FORBIDDEN_NAMES = {
    "eval": "runs dynamic code",
    "exec": "runs dynamic code",
    "compile": "builds dynamic code",
    "__import__": "imports modules",
    "getattr": "reaches attributes dynamically",
    "setattr": "writes attributes dynamically",
    "delattr": "deletes attributes dynamically",
    "hasattr": "probes attributes dynamically",
    "globals": "exposes the module namespace",
    "locals": "exposes the local namespace",
    "vars": "exposes object namespaces",
    "dir": "introspects objects",
    "open": _FILE_REASON,
    "file": _FILE_REASON,
    "input": "reads from the terminal",
    "print": "writes to the terminal",
    "breakpoint": "starts a debugger",
    "help": "starts the help system",
    "type": "reaches classes and can build new ones",
    "object": "reaches the class hierarchy",
    "super": "reaches the class hierarchy",
    "memoryview": "exposes raw memory",
    "exit": "ends the process",
    "quit": "ends the process",
}
_FORBIDDEN_MODULES = {
    "os": "the operating system",
    "sys": "the interpreter",
    "subprocess": "processes",
    "socket": "the network",
    "shutil": "files",
    "pathlib": "files",
    "io": "files",
    "importlib": "imports",
    "ctypes": "raw memory",
    "pickle": "arbitrary code through deserialisation",
    "builtins": "every builtin",
    "multiprocessing": "processes",
    "threading": "threads",
    "signal": "signals",
    "urllib": "the network",
    "http": "the network",
    "requests": "the network",
    "time": "clocks (policies must be deterministic)",
    "random": "randomness (policies must be deterministic)",
}

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Module,
    ast.Expr,
    ast.Constant,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Return,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.If,
    ast.For,
    ast.While,
    ast.Break,
    ast.Continue,
    ast.Pass,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.keyword,
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.List,
    ast.Dict,
    ast.Set,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.Lambda,
    ast.NamedExpr,
    ast.Starred,
    ast.Import,
    ast.ImportFrom,
    ast.alias,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
)
_NODE_NAMES = {
    "ClassDef": "class definitions",
    "Try": "try/except",
    "TryStar": "try/except*",
    "With": "with blocks",
    "AsyncWith": "async with blocks",
    "Raise": "raise",
    "Global": "global statements",
    "Nonlocal": "nonlocal statements",
    "Delete": "del statements",
    "AsyncFunctionDef": "async functions",
    "AsyncFor": "async for loops",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield from",
    "JoinedStr": "f-strings",
    "FormattedValue": "f-strings",
    "Match": "match statements",
    "Assert": "assert",
}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a static check: ok when ``reasons`` is empty."""

    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the program passed every rule."""
        return not self.reasons

    def summary(self) -> str:
        """All reasons on one line."""
        return "; ".join(self.reasons) if self.reasons else "ok"


def allowed_numpy_names() -> list[str]:
    """Sorted numpy names a policy may use (``linalg.norm`` style for submodules)."""
    return sorted(_NUMPY_ALLOWED)


def allowed_math_names() -> list[str]:
    """Sorted math names a policy may use."""
    return sorted(_MATH_ALLOWED)


def allowed_value_attributes() -> list[str]:
    """Sorted array/list/dict attributes a policy may use."""
    return sorted(_VALUE_ATTRS_ALLOWED)


def check_source(source: str) -> list[str]:
    """One-line reasons why ``source`` is not an acceptable policy program; empty when it is."""
    return list(check_policy_source(source).reasons)


def check_policy_source(source: str) -> CheckResult:
    """Run the allow-list (and RestrictedPython when installed) over a policy program."""
    if len(source) > MAX_SOURCE_CHARS:
        return CheckResult((f"program is {len(source)} characters, the limit is {MAX_SOURCE_CHARS}",))
    try:
        tree = ast.parse(source, filename="<policy>", mode="exec")
    except SyntaxError as exc:
        return CheckResult((f"line {exc.lineno}: syntax error: {exc.msg}",))
    except (ValueError, RecursionError, MemoryError) as exc:
        return CheckResult((f"cannot parse the program: {type(exc).__name__}",))
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_AST_NODES:
        return CheckResult((f"program has {n_nodes} syntax nodes, the limit is {MAX_AST_NODES}",))
    checker = _AllowListChecker(tree)
    reasons = sorted(checker.run(), key=_line_number)
    if not reasons:
        reasons = _restricted_python_opinion(source)
    return CheckResult(tuple(_dedupe(reasons)))


def _line_number(reason: str) -> int:
    """Sort key: the line a reason names (reasons without a line come first)."""
    head = reason.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


# RestrictedPython refuses these for its guarded-object model; both are plain local operations here.
_RP_WAIVED = (
    "Augmented assignment of object items and slices is not allowed",
    "AnnAssign statements are not allowed",
)


def _restricted_python_opinion(source: str) -> list[str]:
    try:
        from RestrictedPython import compile_restricted_exec
    except ImportError:
        return []
    result = compile_restricted_exec(source, filename="<policy>")
    return [
        f"RestrictedPython: {err}" for err in result.errors if not any(waived in err for waived in _RP_WAIVED)
    ]


class _AllowListChecker:
    """One pass over the module collecting bindings, then one pass checking every node."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.reasons: list[str] = []
        # alias -> dotted module path ("np" -> "numpy", "la" -> "numpy.linalg", "math" -> "math")
        self.module_aliases: dict[str, str] = {}
        self.bound_names: set[str] = set()
        self.module_level_names: set[str] = set()
        self._parent_map: dict[int, ast.AST] | None = None

    def fail(self, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", None)
        self.reasons.append(f"line {line}: {message}" if line is not None else message)

    def run(self) -> list[str]:
        self._check_top_level()
        self._collect_bindings()
        for node in ast.walk(self.tree):
            self._check_node(node)
        return self.reasons

    # -- structure -------------------------------------------------------------------------------

    def _check_top_level(self) -> None:
        policies: list[ast.FunctionDef] = []
        for i, stmt in enumerate(self.tree.body):
            if isinstance(stmt, ast.FunctionDef):
                if stmt.name == "policy":
                    policies.append(stmt)
            elif isinstance(stmt, ast.Import | ast.ImportFrom):
                self._check_import(stmt)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    for name in _target_names(target):
                        if name != name.upper():
                            self.fail(stmt, f"module-level name '{name}' must be an UPPER_CASE constant")
                    if not isinstance(target, ast.Name | ast.Tuple):
                        self.fail(stmt, "module-level assignments may only bind names")
            elif i == 0 and _is_docstring(stmt):
                continue
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a stray string or number is inert
            elif type(stmt).__name__ in _NODE_NAMES:
                continue  # reported with its reason by the node walk
            else:
                self.fail(stmt, f"{type(stmt).__name__} is not allowed at module level")
        if not policies:
            self.reasons.append("no top-level 'def policy(obs)' found")
        elif len(policies) > 1:
            self.fail(policies[1], "'policy' is defined more than once")
        else:
            args = policies[0].args
            n_positional = len(args.posonlyargs) + len(args.args)
            if n_positional != 1 or args.vararg or args.kwarg or args.kwonlyargs:
                self.fail(policies[0], "policy must take exactly one positional parameter: def policy(obs)")

    def _check_import(self, stmt: ast.Import | ast.ImportFrom) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                root = alias.name.split(".")[0]
                if root not in ("numpy", "math"):
                    self.fail(stmt, _import_reason(alias.name))
                    continue
                sub = alias.name.split(".")[1:]
                if sub and (root == "math" or ".".join(sub) not in _NUMPY_SUBMODULES):
                    self.fail(stmt, f"import of '{alias.name}' is not allowed")
                    continue
                if alias.asname is None and sub:
                    self.fail(stmt, f"write 'import {alias.name} as <name>'")
                    continue
                self.module_aliases[alias.asname or alias.name] = alias.name
            return
        module = stmt.module or ""
        if stmt.level or module.split(".")[0] not in ("numpy", "math"):
            self.fail(stmt, _import_reason(module or "." * stmt.level))
            return
        for alias in stmt.names:
            if alias.name == "*":
                self.fail(stmt, f"'from {module} import *' is not allowed; import names explicitly")
                continue
            dotted = f"{module}.{alias.name}"
            if module == "numpy" and alias.name in _NUMPY_SUBMODULES:
                self.module_aliases[alias.asname or alias.name] = dotted
                continue
            reason = self._module_attr_reason(dotted)
            if reason is not None:
                self.fail(stmt, reason)
            else:
                self.bound_names.add(alias.asname or alias.name)

    def _collect_bindings(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.bound_names.add(node.id)
            elif isinstance(node, ast.FunctionDef):
                self.bound_names.add(node.name)
            elif isinstance(node, ast.arg):
                self.bound_names.add(node.arg)
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    self.module_level_names.update(_target_names(target))
        # A module alias rebound as a variable would make attribute checks ambiguous.
        for alias in set(self.module_aliases) & self.bound_names:
            self.reasons.append(f"the module alias '{alias}' is reassigned")

    # -- nodes -----------------------------------------------------------------------------------

    def _check_node(self, node: ast.AST) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            kind = type(node).__name__
            self.fail(node, f"{_NODE_NAMES.get(kind, kind)} not allowed")
            return
        if isinstance(node, ast.Name):
            self._check_name(node)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node)
        elif isinstance(node, ast.FunctionDef):
            if node.decorator_list:
                self.fail(node, "decorators are not allowed")
            if _bad_identifier(node.name):
                self.fail(node, f"function name '{node.name}' must not start with an underscore")
        elif isinstance(node, ast.arg):
            if _bad_identifier(node.arg):
                self.fail(node, f"parameter name '{node.arg}' must not start with an underscore")
        elif isinstance(node, ast.keyword):
            if node.arg is not None and node.arg.startswith("_"):
                self.fail(node, f"keyword '{node.arg}' must not start with an underscore")
        elif isinstance(node, ast.Constant):
            value = node.value
            if (isinstance(value, str) and "__" in value) or (isinstance(value, bytes) and b"__" in value):
                self.fail(node, "strings containing '__' are not allowed")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                self._check_store_target(node, target)
        elif isinstance(node, ast.NamedExpr | ast.comprehension | ast.For):
            self._check_store_target(node, node.target)

    def _check_name(self, node: ast.Name) -> None:
        name = node.id
        if "__" in name:
            self.fail(node, f"dunder name '{name}' is not allowed")
            return
        if name in _FORBIDDEN_NAMES and name not in self.bound_names:
            self.fail(node, f"'{name}' is not allowed ({_FORBIDDEN_NAMES[name]})")
            return
        if _bad_identifier(name):
            self.fail(node, f"name '{name}' must not start with an underscore")
            return
        if not isinstance(node.ctx, ast.Load):
            return
        if name in self.module_aliases:
            if not self._is_attribute_base(node):
                self.fail(node, f"the module '{name}' may only be used as {name}.<name>")
            return
        if name in self.bound_names or name in ALLOWED_BUILTINS:
            return
        self.fail(node, f"name '{name}' is not defined or not on the allow-list")

    def _check_attribute(self, node: ast.Attribute) -> None:
        if "__" in node.attr:
            self.fail(node, f"dunder attribute '.{node.attr}' is not allowed")
            return
        if node.attr.startswith("_"):
            self.fail(node, f"private attribute '.{node.attr}' is not allowed")
            return
        if not isinstance(node.ctx, ast.Load):
            self.fail(node, f"assigning to attribute '.{node.attr}' is not allowed")
            return
        dotted = self._module_path(node)
        if dotted is not None:
            # In np.linalg.norm only the whole chain is checked, so np.linalg is not a reason on its own.
            if not self._is_attribute_base(node):
                reason = self._module_attr_reason(dotted)
                if reason is not None:
                    self.fail(node, reason)
            return
        if node.attr in _FORBIDDEN_VALUE_ATTRS:
            self.fail(node, f"'.{node.attr}' is not allowed ({_FORBIDDEN_VALUE_ATTRS[node.attr]})")
        elif node.attr not in _VALUE_ATTRS_ALLOWED:
            self.fail(node, f"attribute '.{node.attr}' is not on the allow-list")

    def _check_store_target(self, stmt: ast.AST, target: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._check_store_target(stmt, element)
        elif isinstance(target, ast.Starred):
            self._check_store_target(stmt, target.value)
        elif isinstance(target, ast.Subscript):
            base = target.value
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name) and base.id in self.module_level_names:
                self.fail(stmt, f"policy code must not modify the module-level constant '{base.id}'")

    # -- helpers ---------------------------------------------------------------------------------

    def _module_path(self, node: ast.AST) -> str | None:
        """'numpy.linalg.norm' for np.linalg.norm, None when the chain does not start at a module alias."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.module_aliases:
            return ".".join([self.module_aliases[node.id], *reversed(parts)])
        return None

    def _module_attr_reason(self, dotted: str) -> str | None:
        """None when a dotted module name is allowed, otherwise the reason."""
        module, _, rest = dotted.partition(".")
        if module == "math":
            if rest in _MATH_ALLOWED:
                return None
            return f"'math.{rest}' is not on the allow-list"
        first = rest.split(".")[0]
        if first in _FORBIDDEN_NUMPY:
            return f"'np.{rest}' is not allowed ({_FORBIDDEN_NUMPY[first]})"
        if rest in _NUMPY_ALLOWED:
            return None
        return f"'np.{rest}' is not on the allow-list"

    def _is_attribute_base(self, node: ast.AST) -> bool:
        parent = self._parents().get(id(node))
        return isinstance(parent, ast.Attribute) and parent.value is node

    def _parents(self) -> dict[int, ast.AST]:
        if self._parent_map is None:
            self._parent_map = {
                id(child): parent for parent in ast.walk(self.tree) for child in ast.iter_child_nodes(parent)
            }
        return self._parent_map


def _import_reason(module: str) -> str:
    root = module.split(".")[0]
    if root in _FORBIDDEN_MODULES:
        return (
            f"import of '{module}' is not allowed (reaches {_FORBIDDEN_MODULES[root]}; only numpy and math)"
        )
    return f"import of '{module}' is not allowed (only numpy and math)"


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for element in target.elts for n in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _bad_identifier(name: str) -> bool:
    """Leading underscores are reserved (dunders reach internals); the bare '_' placeholder is fine."""
    return name.startswith("_") and name != "_"
