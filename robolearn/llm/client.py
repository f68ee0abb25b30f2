"""An OpenAI-compatible chat client: any server that speaks /v1/chat/completions (OpenAI, vLLM,
Ollama, llama.cpp's server, hosted gateways).

Settings come from the config, else the environment (ROBOLEARN_LLM_BASE_URL, ROBOLEARN_LLM_API_KEY,
ROBOLEARN_LLM_MODEL). Connection errors, timeouts, HTTP 429 and 5xx are retried with exponential
backoff; anything else (a 4xx, a reply that is not the chat-completions JSON) fails at once. Every
failure is a one-line UserError naming the endpoint.

``complete(messages, n)`` returns ``n`` reply texts: it asks for ``n`` choices per request and repeats
the request for the rest, because several servers (Ollama, llama.cpp) return one choice whatever ``n``
says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robolearn.errors import UserError, require
from robolearn.llm.prompt import Message

ENV_BASE_URL = "ROBOLEARN_LLM_BASE_URL"
ENV_API_KEY = "ROBOLEARN_LLM_API_KEY"
ENV_MODEL = "ROBOLEARN_LLM_MODEL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers (vLLM without --api-key, Ollama, llama.cpp) accept any key, but the client needs one.
PLACEHOLDER_API_KEY = "not-needed"


@dataclass(frozen=True)
class LLMSettings:
    """Resolved connection settings for one endpoint."""

    base_url: str
    model: str
    api_key: str
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 2.0
    temperature: float = 0.8
    max_tokens: int = 4096


def resolve_settings(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 120.0,
    retries: int = 3,
    backoff_s: float = 2.0,
    temperature: float = 0.8,
    max_tokens: int = 4096,
) -> LLMSettings:
    """Settings from explicit values, else the ROBOLEARN_LLM_* environment variables, else defaults."""
    url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    chosen_model = model or os.environ.get(ENV_MODEL)
    if not chosen_model:
        raise UserError(f"no LLM model set: pass llm.model=<name> or set {ENV_MODEL}")
    key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY")
    if not key:
        if url.rstrip("/") == DEFAULT_BASE_URL:
            raise UserError(f"no API key for {url}: pass llm.api_key=... or set {ENV_API_KEY}")
        key = PLACEHOLDER_API_KEY
    if timeout_s <= 0:
        raise UserError(f"llm.timeout_s must be positive, got {timeout_s}")
    if retries < 0:
        raise UserError(f"llm.retries must be 0 or more, got {retries}")
    return LLMSettings(
        base_url=url.rstrip("/"),
        model=chosen_model,
        api_key=key,
        timeout_s=float(timeout_s),
        retries=int(retries),
        backoff_s=float(backoff_s),
        temperature=float(temperature),
        max_tokens=int(max_tokens),
    )


class ChatClient:
    """Chat completions against one OpenAI-compatible endpoint, with retries and clear errors."""

    def __init__(self, settings: LLMSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        openai: Any = require("openai", "LLM prior generation", "llm", "openai")
        self.settings = settings
        self._openai = openai
        self._sleep = sleep
        # Retries are ours (max_retries=0) so the backoff and what counts as retryable are visible here.
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout_s,
            max_retries=0,
        )

    def complete(self, messages: list[Message], n: int = 1) -> list[str]:
        """``n`` reply texts for the messages (several requests if the server returns fewer choices)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        replies: list[str] = []
        # A server that keeps returning no usable choice must not loop forever.
        for _ in range(n):
            replies.extend(self._request(messages, n - len(replies)))
            if len(replies) >= n:
                return replies[:n]
        raise UserError(
            f"LLM endpoint {self.settings.base_url} returned {len(replies)} of {n} replies after {n} requests"
        )

    def _request(self, messages: list[Message], n: int) -> list[str]:
        s = self.settings
        errors = self._openai
        last: str = ""
        for attempt in range(s.retries + 1):
            if attempt:
                self._sleep(s.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.chat.completions.create(
                    model=s.model,
                    messages=messages,
                    n=n,
                    temperature=s.temperature,
                    max_tokens=s.max_tokens,
                )
            except errors.APITimeoutError:
                last = f"did not answer within {s.timeout_s:g} s"
                continue
            except errors.APIConnectionError as exc:
                last = f"is unreachable ({_root_cause(exc)})"
                continue
            except errors.APIStatusError as exc:
                detail = _status_detail(exc)
                if exc.status_code == 429 or exc.status_code >= 500:
                    last = f"answered HTTP {exc.status_code}{detail}"
                    continue
                raise UserError(
                    f"LLM endpoint {s.base_url} rejected the request: HTTP {exc.status_code}{detail}"
                ) from None
            except (ValueError, errors.APIResponseValidationError) as exc:
                # A 200 whose body is not JSON (json.JSONDecodeError is a ValueError) or not the schema.
                raise UserError(
                    f"LLM endpoint {s.base_url} sent a malformed reply: {_first_line(exc)}"
                ) from None
            return _reply_texts(response, s.base_url)
        tries = s.retries + 1
        raise UserError(f"LLM endpoint {s.base_url} {last} ({tries} {'try' if tries == 1 else 'tries'})")


def _reply_texts(response: object, base_url: str) -> list[str]:
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise UserError(f"LLM endpoint {base_url} sent a malformed reply: no 'choices'")
    texts = []
    for choice in choices:
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if isinstance(content, str) and content.strip():
            texts.append(content)
    if not texts:
        raise UserError(f"LLM endpoint {base_url} sent a malformed reply: no message content in any choice")
    return texts


def _root_cause(exc: BaseException) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return _first_line(cause) or type(cause).__name__


def _status_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message", message)
    return f": {_first_line(message)[:200]}" if message else ""


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""
