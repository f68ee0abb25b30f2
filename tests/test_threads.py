"""The training entry point's thread policy (robolearn/threads.py): OMP_WAIT_POLICY=PASSIVE is in the
environment before torch loads OpenMP, a user's own setting wins, and it can be switched off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from train_helpers import REPO

from robolearn.threads import SWITCH, apply_thread_policy

# Records OMP_WAIT_POLICY at the moment `import torch` starts, then imports the training entry point.
SPY = """
import importlib.abc, os, sys
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch":
            print("torch loads with OMP_WAIT_POLICY=" + os.environ.get("OMP_WAIT_POLICY", "unset"))
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, Spy())
import robolearn.train
from robolearn import threads
print("policy", threads.applied["policy"])
"""


def _spy(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", SWITCH)}
    out = subprocess.run(
        [sys.executable, "-c", SPY],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_train_sets_the_passive_policy_before_torch_loads() -> None:
    assert _spy() == ["torch loads with OMP_WAIT_POLICY=PASSIVE", "policy passive"]


def test_a_users_own_setting_wins() -> None:
    assert _spy(OMP_WAIT_POLICY="ACTIVE")[0] == "torch loads with OMP_WAIT_POLICY=ACTIVE"


def test_inherit_leaves_the_environment_alone() -> None:
    assert _spy(**{SWITCH: "inherit"}) == ["torch loads with OMP_WAIT_POLICY=unset", "policy inherit"]


def test_the_policy_function_on_a_given_environment() -> None:
    env: dict[str, str] = {}
    assert apply_thread_policy(env) == {"policy": "passive", "OMP_WAIT_POLICY": "PASSIVE"}
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    user = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert apply_thread_policy(user)["OMP_WAIT_POLICY"] == "ACTIVE (user)"
    assert user == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_a_bad_switch_value_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        apply_thread_policy({SWITCH: "spin"})
    assert info.value.code == 2
    assert capsys.readouterr().err == f"error: {SWITCH}=spin is not allowed; choose one of passive, inherit\n"
