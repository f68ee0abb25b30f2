"""The static checker: an allow-list that rejects file, process, network, introspection and dunder
access before any candidate code runs, and accepts ordinary numpy controllers."""

from __future__ import annotations

import pytest

from robolearn.llm import checker
from robolearn.llm.checker import check_policy_source, check_source

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")

WELL_FORMED = '''\
"""A PD controller with the constructs LLMs usually write."""
import math

import numpy as np
from numpy.linalg import norm

GAINS = np.array([2.0, 0.5])
LIMIT: float = 1.0


def saturate(x, limit=LIMIT):
    return max(-limit, min(limit, x))


def policy(obs: np.ndarray) -> np.ndarray:
    action = np.zeros(3)
    theta = math.atan2(obs[1], obs[0])
    action[0] = saturate(-GAINS[0] * theta - GAINS[1] * obs[2])
    action[1] += 0.1 * np.tanh(obs[3:5].sum())
    for i, value in enumerate(obs[:2]):
        action[2] -= 0.01 * value * (i + 1)
    scale = [abs(v) for v in obs if v > 0]
    if (n := len(scale)) > 0 and norm(obs) > 0:
        action *= 1.0 / max(1.0, n)
    return np.clip(action.astype(np.float64), -1.0, 1.0)
'''


def test_accepts_a_well_formed_program() -> None:
    result = check_policy_source(WELL_FORMED)
    assert result.ok, result.reasons


BAD = {
    "import os": ("import os\ndef policy(obs):\n    os.system('ls')\n    return obs", "import of 'os'"),
    "import subprocess": ("import subprocess\ndef policy(obs):\n    return obs", "import of 'subprocess'"),
    "from socket": ("from socket import socket\ndef policy(obs):\n    return obs", "import of 'socket'"),
    "import sys": ("import sys\ndef policy(obs):\n    return obs", "import of 'sys'"),
    "open()": (
        "def policy(obs):\n    open('x.txt', 'w').write('1')\n    return obs",
        "'open' is not allowed",
    ),
    "np.save": (
        "import numpy as np\ndef policy(obs):\n    np.save('x', obs)\n    return obs",
        "'np.save' is not allowed",
    ),
    "arr.tofile": ("def policy(obs):\n    obs.tofile('x')\n    return obs", "'.tofile' is not allowed"),
    "np.savetxt": (
        "import numpy as np\ndef policy(obs):\n    np.savetxt('x', obs)\n    return obs",
        "'np.savetxt' is not allowed",
    ),
    "from numpy import savetxt": (
        "from numpy import savetxt\ndef policy(obs):\n    return obs",
        "'np.savetxt' is not allowed",
    ),
    "np.memmap": (
        "import numpy as np\ndef policy(obs):\n    np.memmap('x', mode='w+', shape=(3,))\n    return obs",
        "'np.memmap' is not allowed",
    ),
    "np.load": (
        "import numpy as np\ndef policy(obs):\n    return np.load('x.npy')",
        "'np.load' is not allowed",
    ),
    "np.fromfile": ("import numpy as np\ndef policy(obs):\n    return np.fromfile('x')", "'np.fromfile'"),
    "np.lib": (
        "import numpy as np\ndef policy(obs):\n    np.lib.format.open_memmap('x', mode='w+')\n    return obs",
        "'np.lib.format.open_memmap' is not allowed",
    ),
    "np.ctypeslib": (
        "import numpy as np\ndef policy(obs):\n    return np.ctypeslib.as_array(obs)",
        "'np.ctypeslib",
    ),
    "np.random": ("import numpy as np\ndef policy(obs):\n    return np.random.rand(3)", "deterministic"),
    "eval": ("def policy(obs):\n    return eval('obs')", "'eval' is not allowed"),
    "exec": ("def policy(obs):\n    exec('x = 1')\n    return obs", "'exec' is not allowed"),
    "compile": (
        "def policy(obs):\n    compile('1', 'f', 'eval')\n    return obs",
        "'compile' is not allowed",
    ),
    "__import__": ("def policy(obs):\n    __import__('os')\n    return obs", "dunder name '__import__'"),
    "getattr escape": (
        "import numpy as np\ndef policy(obs):\n    getattr(np, 'sa' + 've')('x', obs)\n    return obs",
        "'getattr' is not allowed",
    ),
    "setattr": (
        "import numpy as np\ndef policy(obs):\n    setattr(np, 'pi', 3)\n    return obs",
        "'setattr'",
    ),
    "globals": ("def policy(obs):\n    return globals()", "'globals' is not allowed"),
    "vars": ("import numpy as np\ndef policy(obs):\n    return vars(np)", "'vars' is not allowed"),
    "class escape": (
        "def policy(obs):\n    return ().__class__.__bases__[0].__subclasses__()",
        "dunder attribute '.__class__'",
    ),
    "obs.__class__": ("def policy(obs):\n    return obs.__class__", "dunder attribute '.__class__'"),
    "__builtins__": ("def policy(obs):\n    return __builtins__", "dunder name '__builtins__'"),
    "format escape": ("def policy(obs):\n    return '{0.__class__}'.format(obs)", "'.format' is not allowed"),
    "private attribute": ("import numpy as np\ndef policy(obs):\n    return np._core", "private attribute"),
    "module as value": (
        "import numpy as np\nM = np\ndef policy(obs):\n    return M.save",
        "may only be used as np.<name>",
    ),
    "class": ("class A:\n    pass\ndef policy(obs):\n    return obs", "class definitions not allowed"),
    "try": ("def policy(obs):\n    try:\n        return obs\n    except:\n        return obs", "try/except"),
    "global": ("S = [0]\ndef policy(obs):\n    global S\n    return obs", "global statements"),
    "mutate constant": (
        "import numpy as np\nSTATE = np.zeros(3)\ndef policy(obs):\n    STATE[0] = obs[0]\n    return STATE",
        "must not modify the module-level constant 'STATE'",
    ),
    "lowercase global": ("gain = 2.0\ndef policy(obs):\n    return obs * gain", "UPPER_CASE"),
    "top-level call": (
        "import numpy as np\nnp.zeros(3)\ndef policy(obs):\n    return obs",
        "not allowed at module level",
    ),
    "no policy": ("def act(obs):\n    return obs", "no top-level 'def policy(obs)'"),
    "two policies": ("def policy(obs):\n    return obs\ndef policy(obs):\n    return obs", "more than once"),
    "two parameters": ("def policy(obs, t):\n    return obs", "exactly one positional parameter"),
    "decorator": ("def d(f):\n    return f\n@d\ndef policy(obs):\n    return obs", "decorators"),
    "unknown name": ("def policy(obs):\n    return print(obs)", "'print' is not allowed"),
    "undefined": ("def policy(obs):\n    return torch.zeros(3)", "name 'torch' is not defined"),
    "syntax": ("def policy(obs)\n    return obs", "syntax error"),
    "lambda getattr": (
        "def policy(obs):\n    f = lambda o: getattr(o, 'tofile')\n    return obs",
        "'getattr'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_rejects(case: str) -> None:
    source, expected = BAD[case]
    reasons = check_source(source)
    assert reasons, f"{case} was accepted"
    assert any(expected in r for r in reasons), reasons
    assert all("\n" not in r for r in reasons)


def test_reasons_name_the_line() -> None:
    reasons = check_source("import numpy as np\n\ndef policy(obs):\n    np.save('x', obs)\n    return obs")
    assert reasons == ["line 4: 'np.save' is not allowed (reads or writes files)"]


def test_size_limits() -> None:
    huge = "def policy(obs):\n    return obs\n" + "# pad\n" * (checker.MAX_SOURCE_CHARS // 6 + 1)
    assert "limit" in check_source(huge)[0]


def test_allow_list_is_what_numpy_and_math_provide() -> None:
    numpy_names = checker.allowed_numpy_names()
    assert "clip" in numpy_names and "linalg.norm" in numpy_names
    for forbidden in ("save", "load", "memmap", "fromfile", "savetxt", "lib", "ctypeslib", "random"):
        assert forbidden not in numpy_names
    assert "sqrt" in checker.allowed_math_names()
    assert "tofile" not in checker.allowed_value_attributes()


def test_restricted_python_is_a_second_opinion() -> None:
    pytest.importorskip("RestrictedPython")
    opinion = checker._restricted_python_opinion
    # Its refusal of `a[i] += x` is waived: it is ordinary policy code.
    assert opinion("def policy(obs):\n    a = [0.0]\n    a[0] += 1.0\n    return a") == []
    assert any("RestrictedPython" in r for r in opinion("def policy(obs):\n    return obs.__class__"))
