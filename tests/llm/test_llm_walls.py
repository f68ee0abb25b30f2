"""The sandbox holds with the static check bypassed: each wall on its own, and all of them together.

Every attack runs with ``static_check=False``. The OS-level attacks first escape the restricted
namespace the way the issue describes (``().__class__.__base__.__subclasses__()`` to ``os``'s globals and
the real builtins), so they need the guards wall switched off; each test then leaves on only the walls
it is about, and asserts the specific error that wall produces, so removing that wall fails the test.
``test_without_walls_every_attack_succeeds`` shows the attacks are real. Sockets only ever go to a
127.0.0.1 listener the test starts itself.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robolearn.llm.runtime import GuardViolation, compile_prior
from robolearn.llm.sandbox import SandboxLimits, SandboxReport, probe_policy
from robolearn.llm.walls import WALL_NAMES, is_active

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")

OBS = np.zeros((2, 4))  # two observations: the policy (and so the attack) runs three times at most
LOW, HIGH = -np.ones(2), np.ones(2)
LIMITS = SandboxLimits(cpu_s=2.0, memory_mb=256.0, wall_s=20.0, call_budget_ms=1000.0)
IS_LINUX = sys.platform.startswith("linux")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# From the restricted namespace to the real builtins and os, without importing anything.
ESCAPE = """\
def policy(obs):
    wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0]
    B = wrap.__init__.__globals__["__builtins__"]
    os = B["__import__"]("os")
    {body}
    return [0.0, 0.0]
"""

ATTACKS = {
    "fork": "pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)",
    "subprocess": 'B["__import__"]("subprocess").run(["true"], check=True)',
    "os.system": 'rc = os.system("touch {marker}")\n    if rc != 0:\n        raise B["OSError"]("os.system gave " + B["str"](rc))',
    "open-w": 'B["open"]("{marker}", "w").write("x")',
    "os.open": 'os.write(os.open("{marker}", os.O_WRONLY | os.O_CREAT), b"x")',
    "socket": (
        'sock = B["__import__"]("socket").socket()\n    sock.settimeout(2.0)\n'
        '    sock.connect(("127.0.0.1", {port}))\n    sock.sendall(b"escaped")'
    ),
    "raise-limits": (
        'resource = B["__import__"]("resource")\n'
        "    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "    resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))\n"
        '    B["open"]("{marker}", "w").write("x")'
    ),
}

EPERM = "Operation not permitted"


class Target:
    """What an attack aims at: a marker file it tries to create and a local listener it tries to reach."""

    def __init__(self, tmp_path: Path) -> None:
        self.marker = tmp_path / "escaped.marker"
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]

    def source(self, attack: str) -> str:
        body = ATTACKS[attack].format(marker=self.marker, port=self.port)
        return ESCAPE.format(body=body)

    def reached(self) -> bool:
        """True when a connection arrived at the listener."""
        self.listener.settimeout(0.2)
        try:
            conn, _ = self.listener.accept()
        except TimeoutError:
            return False
        conn.close()
        return True

    def run(self, attack: str, disabled: set[str]) -> SandboxReport:
        return probe_policy(
            self.source(attack), OBS, LOW, HIGH, LIMITS, static_check=False, disabled_walls=disabled
        )

    def assert_blocked(self, attack: str, disabled: set[str], expected: str) -> None:
        report = self.run(attack, disabled)
        assert not report.ok, f"{attack} was not stopped with {sorted(disabled)} switched off"
        assert expected in report.reasons[0], report.reasons
        assert not self.marker.exists(), f"{attack} wrote {self.marker}"
        assert not self.reached(), f"{attack} reached the listener"
        for name in set(WALL_NAMES) - disabled:
            assert is_active(report.walls[name]), report.walls


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    t = Target(tmp_path)
    yield t
    t.listener.close()


def only(*walls: str) -> set[str]:
    """The walls to switch off so that only ``walls`` stay up."""
    return set(WALL_NAMES) - set(walls)


def test_every_wall_is_reported_active_here() -> None:
    report = probe_policy("def policy(obs):\n    return [0.0, 0.0]", OBS, LOW, HIGH, LIMITS)
    assert report.ok, report.reasons
    assert set(report.walls) == set(WALL_NAMES)
    expected = ["guards", "rlimits", "privileges"] + (["seccomp"] if IS_LINUX else [])
    for name in expected:
        assert is_active(report.walls[name]), (name, report.walls[name])
    if IS_ROOT:
        assert report.walls["privileges"] == "active: root dropped to uid/gid 65534"
    if IS_LINUX and (IS_ROOT or is_active(report.walls["netns"])):
        assert is_active(report.walls["netns"]), report.walls["netns"]
    elif IS_LINUX:
        pytest.skip(f"this kernel gives users no network namespace: {report.walls['netns']}")


def test_a_disabled_wall_is_reported_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    report = probe_policy(
        "def policy(obs):\n    return [0.0, 0.0]", OBS, LOW, HIGH, LIMITS, disabled_walls={"netns"}
    )
    assert report.ok and report.walls["netns"] == "disabled by the caller"
    assert "sandbox walls not active: netns disabled by the caller" in caplog.text
    with pytest.raises(ValueError, match="unknown sandbox walls"):
        probe_policy(
            "def policy(obs):\n    return [0.0, 0.0]", OBS, LOW, HIGH, LIMITS, disabled_walls={"moat"}
        )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0]',
            '"__subclasses__" is an invalid attribute name',
        ),
        ('policy.__globals__["__builtins__"]', '"__globals__" is an invalid attribute name'),
        ('__builtins__["__import__"]("os")', '"__builtins__" is an invalid variable name'),
        ("(x for x in [1]).gi_frame.f_globals", '"gi_frame" is a restricted name'),
        ("(lambda: 0).gi_frame", '"gi_frame" is a restricted name'),
        ("getattr(obs, '__cl' + 'ass__')", "name 'getattr' is not defined"),
        ("'{0.__class__.__base__}'.format(obs)", "str.format can reach attributes"),
        ("'{o.__class__}'.format_map({'o': obs})", "str.format_map can reach attributes"),
        ("obs.tofile('{marker}')", "attribute 'tofile' is not on the allow-list"),
        ("[0.0].copy().clear()", "attribute 'clear' is not on the allow-list"),
    ],
    ids=[
        "subclasses",
        "globals",
        "builtins",
        "gi_frame",
        "gi_frame-only",
        "getattr",
        "format",
        "format_map",
        "tofile",
        "clear",
    ],
)
def test_guards_refuse_dunder_escapes_without_the_static_check(
    target: Target, body: str, expected: str
) -> None:
    source = (
        f"def policy(obs):\n    x = {body.replace('{marker}', str(target.marker))}\n    return [0.0, 0.0]"
    )
    report = probe_policy(source, OBS, LOW, HIGH, LIMITS, static_check=False)
    assert not report.ok and expected in report.reasons[0], report.reasons
    assert "GuardViolation" in report.reasons[0] or "NameError" in report.reasons[0]
    assert not target.marker.exists()


def test_in_process_priors_are_guarded_too() -> None:
    prior = compile_prior(
        "def policy(obs):\n    return ['{0.__class__}'.format(obs)]", LOW, HIGH, check=False
    )
    with pytest.raises(GuardViolation, match=r"str\.format"):
        prior.raw(np.zeros(4))
    with pytest.raises(GuardViolation, match="__subclasses__"):
        compile_prior("def policy(obs):\n    return ().__subclasses__()", LOW, HIGH, check=False)


@pytest.mark.skipif(not IS_LINUX, reason="fork and os.system as used here are POSIX")
def test_without_walls_every_attack_succeeds(target: Target) -> None:
    """The control: with every wall down the attacks do what they say, so the tests below mean something."""
    for attack in ATTACKS:
        report = target.run(attack, set(WALL_NAMES))
        assert report.ok, (attack, report.reasons)
        if attack == "socket":
            assert target.reached()
        elif attack in ("os.system", "open-w", "os.open", "raise-limits"):
            assert target.marker.exists(), attack
            target.marker.unlink()


@pytest.mark.skipif(not IS_LINUX, reason="seccomp is Linux-only")
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_seccomp_alone_blocks_processes_files_sockets_and_limits(target: Target, attack: str) -> None:
    # With the rlimits wall off, setrlimit(256) lowers the limits and is allowed, but for seccomp;
    # Python reports its EPERM as "not allowed to raise"; glibc's system() reports a failed spawn as
    # exit status 127, and the marker stays absent.
    expected = {"os.system": "os.system gave 32512", "raise-limits": "not allowed to raise maximum limit"}
    target.assert_blocked(attack, only("seccomp"), expected.get(attack, EPERM))


@pytest.mark.skipif(not IS_LINUX, reason="network namespaces are Linux-only")
def test_netns_alone_blocks_the_connection(target: Target) -> None:
    if not IS_ROOT:
        state = target.run("fork", set(WALL_NAMES) - {"netns"}).walls["netns"]
        if not is_active(state):
            pytest.skip(f"this kernel gives users no network namespace: {state}")
    target.assert_blocked("socket", only("netns"), "Network is unreachable")


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("fork", "Resource temporarily unavailable"),  # RLIMIT_NPROC, which binds once root is gone
        ("raise-limits", "not allowed to raise maximum limit"),
        ("open-w", "Too many open files"),
        ("os.open", "Too many open files"),
    ],
)
def test_rlimits_and_dropped_privileges_hold_without_seccomp(
    target: Target, attack: str, expected: str
) -> None:
    target.assert_blocked(attack, only("rlimits", "privileges"), expected)


def _has_capability(bit: int) -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return IS_ROOT


@pytest.mark.skipif(not IS_ROOT, reason="shows why root must be dropped: only root ignores the limits")
@pytest.mark.parametrize("attack", ["fork", "raise-limits"])
def test_as_root_the_rlimits_alone_do_not_hold(target: Target, attack: str) -> None:
    if attack == "raise-limits" and not _has_capability(24):
        pytest.skip("this root has no CAP_SYS_RESOURCE, so it cannot raise limits either")
    report = target.run(attack, only("rlimits"))
    assert report.ok, report.reasons
    assert attack == "fork" or target.marker.exists()


@pytest.mark.skipif(not IS_LINUX, reason="the full set of walls is Linux's")
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_all_process_walls_hold_when_the_namespace_is_escaped(target: Target, attack: str) -> None:
    report = target.run(attack, {"guards"})
    assert not report.ok, attack
    assert not target.marker.exists() and not target.reached()
    assert all(is_active(report.walls[name]) for name in WALL_NAMES if name != "guards"), report.walls
