"""The process sandbox (CPU, memory, files, wall clock) and the in-process compiled prior."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from robolearn.llm.runtime import PriorError, compile_prior
from robolearn.llm.sandbox import SandboxLimits, probe_policy

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")

OBS = np.random.default_rng(0).normal(size=(16, 4))
LOW = -np.ones(2)
HIGH = np.ones(2)
FAST = SandboxLimits(cpu_s=1.0, memory_mb=256.0, wall_s=20.0, call_budget_ms=5.0)

GOOD = """\
import numpy as np


def policy(obs: np.ndarray) -> np.ndarray:
    return np.clip(np.array([-0.5 * obs[0], 0.2 * obs[1] - 0.1 * obs[3]]), -1.0, 1.0)
"""


def probe(source: str, limits: SandboxLimits = FAST, **kwargs: object) -> list[str]:
    report = probe_policy(source, OBS, LOW, HIGH, limits, **kwargs)  # type: ignore[arg-type]
    return list(report.reasons)


def test_accepts_a_well_formed_program() -> None:
    report = probe_policy(GOOD, OBS, LOW, HIGH, FAST)
    assert report.ok, report.reasons
    assert report.n_calls == len(OBS)
    assert report.mean_call_ms < FAST.call_budget_ms
    assert report.clipped_fraction == 0.0


def test_out_of_bounds_is_clipped_and_reported_or_rejected() -> None:
    source = "import numpy as np\ndef policy(obs):\n    return np.array([3.0, 0.0])"
    report = probe_policy(source, OBS, LOW, HIGH, FAST)
    assert report.ok and report.clipped_fraction == pytest.approx(0.5)
    assert "clipped" in report.notes[0]
    assert "outside the bounds" in probe(source, reject_out_of_bounds=True)[0]


def test_static_check_runs_first() -> None:
    assert "import of 'os'" in probe("import os\ndef policy(obs):\n    return obs")[0]


def test_infinite_loop_is_killed_by_the_cpu_limit() -> None:
    start = time.monotonic()
    reasons = probe("def policy(obs):\n    while True:\n        pass")
    assert reasons == ["exceeded the CPU-time limit of 1 s"]
    assert time.monotonic() - start < 10


def test_wall_clock_limit() -> None:
    limits = SandboxLimits(cpu_s=30.0, memory_mb=256.0, wall_s=1.0)
    assert probe("def policy(obs):\n    while True:\n        pass", limits) == [
        "exceeded the wall-clock limit of 1 s"
    ]


@pytest.mark.parametrize(
    "body",
    ["x = np.ones((100000, 100000))", "x = list(range(10 ** 9))"],
    ids=["numpy", "list"],
)
def test_huge_allocation_hits_the_memory_limit(body: str) -> None:
    source = f"import numpy as np\ndef policy(obs):\n    {body}\n    return np.zeros(2)"
    reasons = probe(source)
    assert len(reasons) == 1 and "out of memory (limit 256 MB)" in reasons[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return np.zeros(3)", "returned shape (3,), expected (2,)"),
        ("return np.array([np.nan, 0.0])", "returned a non-finite action"),
        ("return np.array([np.inf, 0.0])", "returned a non-finite action"),
        ("return np.array([1.0, 0.0]) / (obs[0] * 0.0)", "non-finite"),
        (
            "return [1 // 0, 0]",
            "policy raised ZeroDivisionError: integer division or modulo by zero (line 3)",
        ),
        ("return np.zeros(2) + UNDEFINED_NAME", "name 'UNDEFINED_NAME' is not defined"),
    ],
)
def test_bad_outputs_are_rejected(body: str, expected: str) -> None:
    source = f"import numpy as np\ndef policy(obs):\n    {body}"
    reasons = probe(source)
    assert reasons and expected in reasons[0], reasons


def test_slow_policy_exceeds_the_call_budget() -> None:
    source = (
        "def policy(obs):\n    x = 0.0\n    for i in range(300000):\n        x += i\n    return [0.0, 0.0]"
    )
    limits = SandboxLimits(cpu_s=5.0, memory_mb=256.0, wall_s=20.0, call_budget_ms=1.0)
    report = probe_policy(source, OBS[:4], LOW, HIGH, limits)
    assert "exceeds the budget of 1 ms" in report.reasons[0]


def test_hidden_state_is_caught_as_nondeterminism() -> None:
    # The checker cannot see mutation through a method call; the repeated observation can.
    source = (
        "CALLS = []\ndef policy(obs):\n    CALLS.append(1.0)\n    return [0.0, min(len(CALLS), 50) / 50.0]"
    )
    assert "not deterministic" in probe(source)[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("open({path!r}, 'w').write('x')", "NameError"),
        ("np.save({path!r}, obs)", "has no attribute 'save'"),
        ("np.savetxt({path!r}, obs)", "has no attribute 'savetxt'"),
        ("np.memmap({path!r}, mode='w+', shape=(3,))", "has no attribute 'memmap'"),
        ("obs.tofile({path!r})", "policy raised"),
        ("__import__('os').system('touch ' + {path!r})", '"__import__" is an invalid variable name'),
    ],
    ids=["open", "np.save", "np.savetxt", "np.memmap", "tofile", "__import__"],
)
def test_runtime_layers_block_file_writes_without_the_checker(
    tmp_path: Path, body: str, expected: str
) -> None:
    target = tmp_path / "written.bin"
    source = (
        "import numpy as np\ndef policy(obs):\n    "
        + body.format(path=str(target))
        + "\n    return [0.0, 0.0]"
    )
    reasons = probe(source, static_check=False)
    assert reasons and expected in reasons[0], reasons
    assert not target.exists()


def test_runtime_refuses_imports_without_the_checker() -> None:
    reasons = probe("import subprocess\ndef policy(obs):\n    return [0.0, 0.0]", static_check=False)
    assert "import of 'subprocess' is not allowed" in reasons[0]


def test_compiled_prior_validates_clips_and_is_cheap() -> None:
    prior = compile_prior(GOOD, LOW, HIGH, name="good")
    obs = np.array([10.0, 0.0, 0.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(prior(obs), [-1.0, 0.0])
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        prior(obs)
    per_call_us = (time.perf_counter() - start) / n * 1e6
    print(f"compiled prior: {per_call_us:.1f} us per call")
    assert per_call_us < 500  # generous for slow CI; about 10 us on a laptop core

    with pytest.raises(PriorError, match="returned shape"):
        compile_prior("import numpy as np\ndef policy(obs):\n    return np.zeros(3)", LOW, HIGH)(obs)
    with pytest.raises(PriorError, match="non-finite"):
        compile_prior("def policy(obs):\n    return [float('nan'), 0.0]", LOW, HIGH)(obs)
    with pytest.raises(PriorError, match="ZeroDivisionError"):
        compile_prior("def policy(obs):\n    return [1 / 0, 0.0]", LOW, HIGH)(obs)
    with pytest.raises(PriorError, match=r"np\.save"):
        compile_prior(
            "import numpy as np\ndef policy(obs):\n    np.save('x', obs)\n    return obs", LOW, HIGH
        )


def test_compiled_prior_cannot_modify_the_callers_observation() -> None:
    prior = compile_prior("def policy(obs):\n    obs[0] = 99.0\n    return [0.0, 0.0]", LOW, HIGH)
    obs = np.zeros(4)
    prior(obs)
    assert obs[0] == 0.0
