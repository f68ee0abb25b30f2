"""The OpenAI-compatible client against a local scripted server: good replies, malformed replies,
timeouts, HTTP errors and a server that is down all end in replies or one-line UserErrors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llm_scripted import GOOD_PENDULUM, Scripted, ScriptedServer

from robolearn.errors import UserError
from robolearn.llm.client import ChatClient, LLMSettings, resolve_settings
from robolearn.llm.extract import NoCodeBlockError, extract_programs

pytest_plugins = ["llm_fixtures"]
pytestmark = pytest.mark.usefixtures("isolated_llm_env")

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
Start = Callable[[list[Scripted]], ScriptedServer]


def client(url: str, timeout_s: float = 2.0, retries: int = 0) -> ChatClient:
    settings = LLMSettings(
        base_url=url, model="test-model", api_key="k", timeout_s=timeout_s, retries=retries, backoff_s=0.01
    )
    return ChatClient(settings)


def test_good_reply(scripted_server: Start) -> None:
    server = scripted_server([Scripted(contents=[f"```python\n{GOOD_PENDULUM}```"])])
    replies = client(server.url).complete(MESSAGES)
    assert extract_programs(replies[0]) == [GOOD_PENDULUM]
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "test-model" and request["body"]["messages"] == MESSAGES
    assert request["auth"] == "Bearer k"


def test_n_replies_from_a_server_that_ignores_n(scripted_server: Start) -> None:
    server = scripted_server([Scripted(contents=["one"])])  # one choice whatever n says
    assert client(server.url).complete(MESSAGES, n=3) == ["one", "one", "one"]
    assert [r["body"]["n"] for r in server.requests] == [3, 2, 1]


def test_n_replies_in_one_request(scripted_server: Start) -> None:
    server = scripted_server([Scripted(contents=["a", "b", "c"])])
    assert client(server.url).complete(MESSAGES, n=3) == ["a", "b", "c"]
    assert len(server.requests) == 1


def test_malformed_json_reply(scripted_server: Start) -> None:
    server = scripted_server([Scripted(raw=b"{this is not json")])
    with pytest.raises(UserError, match="sent a malformed reply") as info:
        client(server.url).complete(MESSAGES)
    assert "\n" not in str(info.value)


def test_reply_without_choices(scripted_server: Start) -> None:
    server = scripted_server([Scripted(raw=b'{"id": "x", "object": "chat.completion"}')])
    with pytest.raises(UserError, match="no 'choices'"):
        client(server.url).complete(MESSAGES)


def test_reply_without_a_code_block(scripted_server: Start) -> None:
    server = scripted_server([Scripted(contents=["I would use a PD controller with gains 2 and 0.5."])])
    (reply,) = client(server.url).complete(MESSAGES)
    with pytest.raises(NoCodeBlockError, match="no fenced code block"):
        extract_programs(reply)


def test_server_slower_than_the_timeout(scripted_server: Start) -> None:
    server = scripted_server([Scripted(contents=["late"], delay_s=1.5)])
    with pytest.raises(UserError, match=r"did not answer within 0.3 s \(2 tries\)"):
        client(server.url, timeout_s=0.3, retries=1).complete(MESSAGES)
    assert len(server.requests) == 2


def test_retry_after_a_server_error(scripted_server: Start) -> None:
    server = scripted_server([Scripted(status=503), Scripted(contents=["recovered"])])
    assert client(server.url, retries=2).complete(MESSAGES) == ["recovered"]
    assert len(server.requests) == 2


def test_client_error_is_not_retried(scripted_server: Start) -> None:
    server = scripted_server([Scripted(status=401)])
    with pytest.raises(UserError, match="rejected the request: HTTP 401: scripted failure"):
        client(server.url, retries=3).complete(MESSAGES)
    assert len(server.requests) == 1


def test_server_down(dead_url: str) -> None:
    with pytest.raises(UserError, match=r"is unreachable .*\(2 tries\)") as info:
        client(dead_url, retries=1).complete(MESSAGES)
    assert dead_url in str(info.value) and "\n" not in str(info.value)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOLEARN_LLM_BASE_URL", "http://localhost:11434/v1/")
    monkeypatch.setenv("ROBOLEARN_LLM_MODEL", "qwen2.5-coder")
    settings = resolve_settings()
    assert settings.base_url == "http://localhost:11434/v1"
    assert settings.model == "qwen2.5-coder" and settings.api_key == "not-needed"
    assert resolve_settings(model="explicit").model == "explicit"


def test_missing_model_or_key_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="no LLM model set"):
        resolve_settings(base_url="http://localhost:8000/v1")
    with pytest.raises(UserError, match="no API key"):
        resolve_settings(model="gpt-x")


def test_extract_keeps_policy_blocks_and_drops_demo_harnesses() -> None:
    reply = (
        "Idea one:\n```python\nimport numpy as np\n\ndef policy(obs):\n    return np.zeros(1)\n\n"
        'if __name__ == "__main__":\n    print(policy(np.zeros(3)))\n```\n'
        "A helper that is not a program:\n```\ndef helper(x):\n    return x\n```\n"
        "Idea two (truncated reply):\n```py\ndef policy(obs):\n    return [0.0]"
    )
    assert extract_programs(reply) == [
        "import numpy as np\n\ndef policy(obs):\n    return np.zeros(1)\n",
        "def policy(obs):\n    return [0.0]\n",
    ]
    with pytest.raises(NoCodeBlockError, match="none defining"):
        extract_programs("```python\nx = 1\n```")
