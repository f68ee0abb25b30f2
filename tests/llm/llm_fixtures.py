"""Fixtures for the LLM-prior tests: a scripted OpenAI-compatible server and an isolated environment.

Not a conftest.py: tests/conftest.py is imported by name (`from conftest import ...`) in other tests,
and a second conftest module would shadow it. Test modules load this file with
`pytest_plugins = ["llm_fixtures"]` and opt in with `pytestmark = pytest.mark.usefixtures("isolated_llm_env")`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from llm_scripted import Scripted, ScriptedServer, make_handler


@pytest.fixture
def scripted_server() -> Iterator[Callable[[list[Scripted]], ScriptedServer]]:
    """Start scripted servers on 127.0.0.1 (random ports) in threads; all stop after the test."""
    started: list[ThreadingHTTPServer] = []

    def start(script: list[Scripted]) -> ScriptedServer:
        state = ScriptedServer(script=script)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        return state

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def dead_url() -> str:
    """A URL on a local port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def isolated_llm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ambient LLM settings, a temporary user priors folder, and a temporary cwd (MuJoCo writes
    MUJOCO_LOG.TXT into the cwd on model warnings)."""
    for var in ("ROBOLEARN_LLM_BASE_URL", "ROBOLEARN_LLM_API_KEY", "ROBOLEARN_LLM_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    user = tmp_path / "user_priors"
    monkeypatch.setenv("ROBOLEARN_PRIORS_DIR", str(user))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return user
