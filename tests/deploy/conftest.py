"""Fixtures of the deploy tests (helpers live in deploy_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("unitree_sdk2py")
pytest.importorskip("onnxruntime")

from deploy_helpers import DomainPool, Proc, record_in_process


@pytest.fixture
def domains() -> Iterator[DomainPool]:
    """Take unique domain ids with domains.take()."""
    with ExitStack() as stack:
        yield DomainPool(stack)


@pytest.fixture
def procs() -> Iterator[Callable[[list[str], str], Proc]]:
    """Start subprocesses with procs(args, name); all are killed at teardown."""
    started: list[Proc] = []

    def start(args: list[str], name: str) -> Proc:
        p = Proc(args, name)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture(scope="session")
def kp065_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ASAP's delta dataset from 1.5 s of the standing policy on the 0.65 x Kp target (the in-process
    backend, pushed so the joints move); shared by the delta-task and the SysID/oracle tests."""
    from robolearn.sim2real.recordings import write_delta_dataset

    root = tmp_path_factory.mktemp("kp065")
    log = record_in_process(
        root / "log",
        "mismatch=kp065",
        "duration_s=1.5",
        "mujoco.push_interval_s=[0.2,0.4]",
        "mujoco.push_velocity=0.4",
    )
    return write_delta_dataset(log, log / "truth", root / "delta")


@pytest.fixture(scope="session")
def delay1_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ASAP's delta dataset from 1.5 s of the shipped walker (standing still on command, its actions
    changing from step to step as it is pushed) on a target with one control period of command delay
    (mismatch=delay1)."""
    from deploy_helpers import REPO

    from robolearn.sim2real.recordings import write_delta_dataset

    root = tmp_path_factory.mktemp("delay1")
    log = record_in_process(
        root / "log",
        "mismatch=delay1",
        "duration_s=1.5",
        "mujoco.push_interval_s=[0.2,0.4]",
        "mujoco.push_velocity=0.4",
        policy=REPO / "policies" / "reference" / "go2_walk",
    )
    return write_delta_dataset(log, log / "truth", root / "delta")
