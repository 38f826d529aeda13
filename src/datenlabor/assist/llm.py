"""Client for an OpenAI-compatible chat-completions endpoint (vLLM, Ollama, LiteLLM, …).

Authorities run such endpoints on premises or buy them as a service. Only the documented
``POST {base}/chat/completions`` call is used, so any compatible server works. When the
endpoint lies outside the authority (``assist_llm_external``, the default) personal data in
the messages is replaced by placeholders before sending and restored in the answer
(:mod:`datenlabor.assist.redact`).

Example::

    cfg = llm_config(load_settings())
    if cfg is not None:
        result = chat(cfg, [{"role": "user", "content": "Hallo"}])
        print(result.text, result.model, result.usage)

httpx retries only connection set-up, so the short retry loop for timeouts, connection
failures, 429 and 5xx (honouring ``Retry-After``) is written here.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from datenlabor.config import Settings
from datenlabor.errors import BadInput, DatenlaborError

ROLES = ("system", "user", "assistant")
DEFAULT_MAX_TOKENS = 1024
_MAX_BACKOFF_S = 8.0


class LlmError(DatenlaborError):
    """The LLM endpoint could not be reached or answered something unusable."""

    exit_code = 7


@dataclass(frozen=True)
class LlmConfig:
    """Where and how to reach the endpoint; build it with :func:`llm_config`."""

    url: str  # base URL, e.g. http://llm.intern:8000/v1 (no trailing slash)
    model: str = "default"
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    retries: int = 2
    external: bool = True  # outside the authority: redact personal data before sending

    @property
    def endpoint(self) -> str:
        return f"{self.url}/chat/completions"


@dataclass
class ChatResult:
    text: str
    model: str
    usage: dict[str, int]
    finish_reason: str | None = None
    redacted: int = 0  # how many personal-data items were replaced before sending


def llm_config(settings: Settings) -> LlmConfig | None:
    """The configured endpoint, or None when ``assist_llm_url`` is not set."""
    if not settings.assist_llm_url:
        return None
    url = settings.assist_llm_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BadInput(
            f"assist_llm_url must be an http(s) URL, got {settings.assist_llm_url!r}",
            column="assist_llm_url",
        )
    if url.endswith("/chat/completions"):  # people paste the full endpoint
        url = url[: -len("/chat/completions")]
    key = settings.assist_llm_api_key
    return LlmConfig(
        url=url,
        model=settings.assist_llm_model,
        api_key=key.get_secret_value() if key is not None else None,
        timeout_s=settings.assist_llm_timeout_s,
        retries=max(0, settings.assist_llm_retries),
        external=settings.assist_llm_external,
    )


def chat(
    cfg: LlmConfig,
    messages: Sequence[dict[str, str]],
    *,
    temperature: float = 0.0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    json: bool = False,
    redact: bool | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ChatResult:
    """Send ``messages`` and return the first choice's text.

    ``json=True`` asks for a JSON object (``response_format``) and checks that the answer
    parses. ``redact`` defaults to ``cfg.external``: personal data is replaced by
    placeholders before sending and restored in the returned text.
    """
    _check_messages(messages)
    redact = cfg.external if redact is None else redact
    sent = [dict(m) for m in messages]
    restore: Callable[[str], str] = _identity
    replaced = 0
    if redact:
        from datenlabor.assist.redact import Redactor

        redactor = Redactor()
        for m in sent:
            m["content"] = redactor.redact(m["content"])
        replaced = len(redactor.mapping)
        restore = redactor.restore_json if json else redactor.restore
    body: dict[str, Any] = {
        "model": cfg.model,
        "messages": sent,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stream": False,
    }
    if json:
        body["response_format"] = {"type": "json_object"}
    response = _post(cfg, body, transport=transport, sleep=sleep)
    payload = _parse(cfg, response)
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"]
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (KeyError, IndexError, TypeError) as exc:
        raise LlmError(
            f"{cfg.endpoint}: answer without choices[0].message.content ({exc})"
        ) from exc
    text = restore(text)
    if json:
        try:
            jsonlib.loads(_strip_fence(text))
        except ValueError as exc:
            raise LlmError(f"{cfg.endpoint}: asked for JSON, got {text[:200]!r}") from exc
        text = _strip_fence(text)
    usage = payload.get("usage") or {}
    return ChatResult(
        text=text,
        model=str(payload.get("model") or cfg.model),
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int)},
        finish_reason=choice.get("finish_reason"),
        redacted=replaced,
    )


def _identity(text: str) -> str:
    return text


def _check_messages(messages: Sequence[dict[str, str]]) -> None:
    if not messages:
        raise BadInput("chat needs at least one message")
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ROLES:
            raise BadInput(f"message {i}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(m.get("content"), str):
            raise BadInput(f"message {i}: content must be text")


def _strip_fence(text: str) -> str:
    """Some servers wrap JSON in a Markdown code fence even in JSON mode."""
    t = text.strip()
    if t.startswith("```") and t.endswith("```"):
        t = t[3:-3]
        if t.startswith("json"):
            t = t[4:]
    return t.strip()


def _post(
    cfg: LlmConfig,
    body: dict[str, Any],
    *,
    transport: httpx.BaseTransport | None,
    sleep: Callable[[float], None],
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    attempts = cfg.retries + 1
    last = ""
    timeout = httpx.Timeout(cfg.timeout_s, connect=min(10.0, cfg.timeout_s))
    with httpx.Client(transport=transport, timeout=timeout, trust_env=False) as client:
        for attempt in range(attempts):
            pause = min(_MAX_BACKOFF_S, 0.5 * 2**attempt)
            try:
                response = client.post(cfg.endpoint, json=body, headers=headers)
            except httpx.TimeoutException:
                last = f"no answer within {cfg.timeout_s:g} s"
            except httpx.TransportError as exc:
                last = f"connection failed ({exc.__class__.__name__}: {exc})"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise LlmError(
                        f"{cfg.endpoint} refused the API key (HTTP {status}); "
                        "check DATENLABOR_ASSIST_LLM_API_KEY"
                    )
                if status == 429 or status >= 500:
                    last = f"HTTP {status}{_error_text(response)}"
                    pause = _retry_after(response, pause)
                elif status >= 400:
                    raise LlmError(f"{cfg.endpoint} answered HTTP {status}{_error_text(response)}")
                else:
                    return response
            if attempt + 1 < attempts:
                sleep(pause)
    raise LlmError(
        f"{cfg.endpoint} did not answer: {last} (tried {attempts} time(s); "
        "limits: DATENLABOR_ASSIST_LLM_TIMEOUT_S, DATENLABOR_ASSIST_LLM_RETRIES)"
    )


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, min(_MAX_BACKOFF_S, float(value)))
    except ValueError:
        return default


def _error_text(response: httpx.Response) -> str:
    """The server's own error message, shortened (OpenAI style ``{"error": {"message"}}``)."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:200]}" if text else ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return f": {str(err['message'])[:200]}"
    if isinstance(err, str):
        return f": {err[:200]}"
    return ""


def _parse(cfg: LlmConfig, response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise LlmError(
            f"{cfg.endpoint} did not answer JSON (Content-Type "
            f"{response.headers.get('Content-Type', '?')}): {response.text[:200]!r}"
        ) from exc
    if not isinstance(payload, dict):
        raise LlmError(f"{cfg.endpoint} answered {type(payload).__name__}, not an object")
    return payload
