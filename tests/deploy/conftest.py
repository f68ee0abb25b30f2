"""Fixtures of the deploy tests (helpers live in deploy_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("unitree_sdk2py")
pytest.importorskip("onnxruntime")

from deploy_helpers import DomainPool, Proc


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
