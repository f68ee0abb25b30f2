"""A scripted OpenAI-compatible chat-completions server for the LLM-prior tests (started by the
`scripted_server` fixture in llm_fixtures.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

GOOD_PENDULUM = """\
import math
import numpy as np


def policy(obs: np.ndarray) -> np.ndarray:
    theta = math.atan2(obs[1], obs[0])
    return np.array([min(max(-10.0 * theta - 2.0 * obs[2], -2.0), 2.0)])
"""


@dataclass
class Scripted:
    """One scripted answer: a JSON body (or raw bytes), an HTTP status and a delay before answering."""

    contents: list[str] | None = None
    raw: bytes | None = None
    status: int = 200
    delay_s: float = 0.0


@dataclass
class ScriptedServer:
    """A local /v1/chat/completions server answering from a script (the last answer repeats)."""

    script: list[Scripted]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def next_answer(self) -> Scripted:
        index = min(len(self.requests) - 1, len(self.script) - 1)
        return self.script[index]


def chat_completion(contents: list[str], model: str) -> dict[str, Any]:
    """The JSON body an OpenAI-compatible server returns for one choice per content."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
            for i, c in enumerate(contents)
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def make_handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            server.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
            answer = server.next_answer()
            if answer.delay_s:
                time.sleep(answer.delay_s)
            if answer.raw is not None:
                data = answer.raw
            elif answer.status != 200:
                data = json.dumps({"error": {"message": "scripted failure", "type": "test"}}).encode()
            else:
                data = json.dumps(chat_completion(answer.contents or [], body.get("model", "?"))).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

    return Handler


# Every env with a card in envs/cards/ (the card and prior tests check each one).
CARDED = [
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "HalfCheetah-v5",
    "InvertedDoublePendulum-v5",
    "MountainCarContinuous-v0",
    "Pendulum-v1",
    "robolearn/Go2Velocity-v1",
]
