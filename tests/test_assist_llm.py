"""The OpenAI-compatible LLM client against a local server speaking the real protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from datenlabor.assist.llm import LlmConfig, LlmError, chat, llm_config
from datenlabor.config import load_settings
from datenlabor.errors import BadInput
from fixtures.openai_server import OpenAIServer, running_openai_server


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAIServer]:
    with running_openai_server(api_key="sk-test-123") as server:
        yield server


@pytest.fixture
def cfg(llm: OpenAIServer) -> LlmConfig:
    llm.requests.clear()
    llm.responder = None
    return LlmConfig(url=llm.url, model="mixtral", api_key="sk-test-123", timeout_s=5, retries=2)


def no_sleep(_: float) -> None:
    pass


def test_config_absent_and_present(tmp_path: Path) -> None:
    assert llm_config(load_settings(pool=tmp_path)) is None
    cfg = llm_config(
        load_settings(
            pool=tmp_path,
            assist_llm_url="http://llm.intern:8000/v1/chat/completions",
            assist_llm_api_key="geheim",
            assist_llm_model="llama3",
            assist_llm_external=False,
        )
    )
    assert cfg is not None
    assert cfg.endpoint == "http://llm.intern:8000/v1/chat/completions"
    assert (cfg.model, cfg.api_key, cfg.external) == ("llama3", "geheim", False)
    assert "geheim" not in repr(cfg)
    with pytest.raises(BadInput, match="assist_llm_url"):
        llm_config(load_settings(pool=tmp_path, assist_llm_url="llm.intern:8000"))


def test_chat_round_trip_sends_protocol_fields(llm: OpenAIServer, cfg: LlmConfig) -> None:
    llm.reply("Guten Tag, der Antrag ist vollständig.")
    result = chat(
        cfg,
        [{"role": "system", "content": "Du bist hilfreich."}, {"role": "user", "content": "Hallo"}],
        max_tokens=50,
    )
    assert result.text == "Guten Tag, der Antrag ist vollständig."
    assert result.model == "local-test-model"
    assert result.usage["completion_tokens"] == 6
    assert result.finish_reason == "stop"
    sent = llm.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-123"
    assert sent.body["model"] == "mixtral"
    assert sent.body["temperature"] == 0.0
    assert sent.body["max_tokens"] == 50
    assert [m["role"] for m in sent.messages] == ["system", "user"]
    assert "response_format" not in sent.body


def test_json_mode(llm: OpenAIServer, cfg: LlmConfig) -> None:
    llm.reply('```json\n{"label": "Wohngeld", "confidence": 0.8}\n```')
    result = chat(cfg, [{"role": "user", "content": "Einordnen"}], json=True)
    assert json.loads(result.text) == {"label": "Wohngeld", "confidence": 0.8}
    assert llm.requests[-1].body["response_format"] == {"type": "json_object"}
    llm.reply("Das ist kein JSON")
    with pytest.raises(LlmError, match="asked for JSON"):
        chat(cfg, [{"role": "user", "content": "Einordnen"}], json=True)


def test_retries_on_5xx_and_429(llm: OpenAIServer, cfg: LlmConfig) -> None:
    pauses: list[float] = []
    llm.reply(status=503)
    llm.reply(status=429, headers={"Retry-After": "1.5"})
    llm.reply("endlich")
    assert chat(cfg, [{"role": "user", "content": "x"}], sleep=pauses.append).text == "endlich"
    assert len(llm.requests) == 3
    assert pauses == [0.5, 1.5]  # backoff, then the server's Retry-After


def test_gives_up_after_retries_with_clear_error(llm: OpenAIServer, cfg: LlmConfig) -> None:
    llm.reply(status=502, times=3)
    with pytest.raises(LlmError, match=r"HTTP 502.*tried 3 time"):
        chat(cfg, [{"role": "user", "content": "x"}], sleep=no_sleep)
    assert len(llm.requests) == 3


def test_client_errors_are_not_retried(llm: OpenAIServer, cfg: LlmConfig) -> None:
    bad_key = LlmConfig(url=cfg.url, api_key="falsch", retries=3)
    with pytest.raises(LlmError, match="refused the API key"):
        chat(bad_key, [{"role": "user", "content": "x"}], sleep=no_sleep)
    llm.reply(status=400)
    with pytest.raises(LlmError, match="HTTP 400: simulated"):
        chat(cfg, [{"role": "user", "content": "x"}], sleep=no_sleep)
    assert len(llm.requests) == 2


def test_unusable_answers(llm: OpenAIServer, cfg: LlmConfig) -> None:
    llm.reply(raw="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(LlmError, match="did not answer JSON"):
        chat(cfg, [{"role": "user", "content": "x"}])
    llm.reply(raw='{"choices": []}', headers={"Content-Type": "application/json"})
    with pytest.raises(LlmError, match="without choices"):
        chat(cfg, [{"role": "user", "content": "x"}])


def test_timeout_and_unreachable(llm: OpenAIServer, cfg: LlmConfig) -> None:
    quick = LlmConfig(url=cfg.url, api_key="sk-test-123", timeout_s=0.3, retries=0)
    llm.reply("zu spät", delay_s=1.0)
    with pytest.raises(LlmError, match=r"no answer within 0.3 s"):
        chat(quick, [{"role": "user", "content": "x"}])
    from fixtures.oidc_provider import free_port

    closed = LlmConfig(url=f"http://127.0.0.1:{free_port()}/v1", retries=1)
    with pytest.raises(LlmError, match="connection failed"):
        chat(closed, [{"role": "user", "content": "x"}], sleep=no_sleep)


def test_bad_messages_rejected_before_sending(llm: OpenAIServer, cfg: LlmConfig) -> None:
    with pytest.raises(BadInput, match="role must be"):
        chat(cfg, [{"role": "tool", "content": "x"}])
    with pytest.raises(BadInput, match="at least one"):
        chat(cfg, [])
    assert llm.requests == []


PERSONAL = {
    "name": "Erika Mustermann",
    "iban": "DE89 3704 0044 0532 0130 00",
    "steuer_id": "86095742719",
    "email": "erika.mustermann@example.org",
    "phone": "0351 4881234",
    "street": "Heidestraße 17",
    "svnr": "15 070649 C 10 3",
}


def test_external_endpoint_never_receives_personal_data(llm: OpenAIServer, cfg: LlmConfig) -> None:
    request = (
        f"Ich, {PERSONAL['name']}, wohnhaft {PERSONAL['street']}, 01099 Dresden, bitte um "
        f"Erstattung auf {PERSONAL['iban']}. Steuer-ID {PERSONAL['steuer_id']}, "
        f"RV-Nummer {PERSONAL['svnr']}, Tel. {PERSONAL['phone']}, {PERSONAL['email']}."
    )

    def echo_placeholders(body: dict[str, object]) -> str:
        # A model that addresses the person and repeats the account, by placeholder.
        user = str(body["messages"][-1]["content"])  # type: ignore[index]
        import re

        phs = re.findall(r"\[\[[A-Z_]+_\d+\]\]", user)
        return "Sehr geehrte/r " + " ".join(phs)

    llm.responder = echo_placeholders
    result = chat(cfg, [{"role": "user", "content": request}])
    sent = llm.requests[-1].text
    for value in PERSONAL.values():
        assert value not in sent
    assert "Dresden" in sent or "[[ADDRESS" in sent
    assert "Erstattung" in sent  # the request itself still goes out
    for value in PERSONAL.values():
        assert value in result.text  # restored for the caseworker
    assert result.redacted >= len(PERSONAL)


def test_internal_endpoint_gets_text_unchanged(llm: OpenAIServer, cfg: LlmConfig) -> None:
    internal = LlmConfig(url=cfg.url, api_key="sk-test-123", external=False)
    llm.reply("ok")
    chat(internal, [{"role": "user", "content": f"Von {PERSONAL['name']}"}])
    assert PERSONAL["name"] in llm.requests[-1].text


def test_json_restore_escapes_values(llm: OpenAIServer, cfg: LlmConfig) -> None:
    llm.responder = lambda body: '{"anrede": "Frau [[PERSON_1]]"}'
    result = chat(cfg, [{"role": "user", "content": "Frau Erika Mustermann fragt"}], json=True)
    assert json.loads(result.text) == {"anrede": "Frau Erika Mustermann"}
