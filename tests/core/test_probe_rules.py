"""importer/probe_rules.py: what a gateway test sends per model and mode, and whom an answer is put down to.

Pure functions, tested with tables.
"""

from __future__ import annotations

import json

import pytest

from importer import probe_rules as probe
from importer.model import Mode
from importer.probe_rules import CHAT, EMBEDDINGS, Answer
from importer.render import not_found_body


@pytest.mark.parametrize("deployment, model, expected", [
    ("gpt-4o", "gpt-4o", CHAT),
    ("chat", "gpt-4o-mini", CHAT),
    ("Phi-4", "Phi-4", CHAT),
    ("o3-mini", "o3-mini", CHAT),
    ("emb", "text-embedding-3-small", EMBEDDINGS),
    ("cohere", "Cohere-embed-v3-english", EMBEDDINGS),
    ("my-embedding", "", EMBEDDINGS),  # not on the account: the deployment's name decides
    ("nope", "", CHAT),
    ("img", "dall-e-3", None),
    ("img2", "gpt-image-1", None),
    ("stt", "whisper", None),
    ("voice", "gpt-4o-realtime-preview", None),
])
def test_the_operation_follows_the_model(deployment: str, model: str, expected: str | None) -> None:
    assert probe.operation_for(deployment, model) == expected


@pytest.mark.parametrize("mode, operation, path, query, body_model", [
    (Mode.AZURE_OPENAI, CHAT, "/deployments/gpt-4o/chat/completions", (("api-version", "2024-10-21"),), None),
    (Mode.AZURE_OPENAI, EMBEDDINGS, "/deployments/gpt-4o/embeddings", (("api-version", "2024-10-21"),), None),
    (Mode.AZURE_AI, CHAT, "/chat/completions", (("api-version", "2024-05-01-preview"),), "gpt-4o"),
    (Mode.AZURE_AI, EMBEDDINGS, "/embeddings", (("api-version", "2024-05-01-preview"),), "gpt-4o"),
    (Mode.AZURE_OPENAI_V1, CHAT, "/chat/completions", (), "gpt-4o"),
    (Mode.AZURE_OPENAI_V1, EMBEDDINGS, "/embeddings", (), "gpt-4o"),
])
def test_the_mode_decides_where_the_deployment_goes(mode: Mode, operation: str, path: str,
                                                    query: tuple[tuple[str, str], ...],
                                                    body_model: str | None) -> None:
    req = probe.build_request(mode, "gpt-4o", operation, "gpt-4o")
    assert (req.method, req.path, req.query) == ("POST", path, query)
    assert req.body.get("model") == body_model
    if operation == CHAT:
        assert req.body["max_tokens"] == 1 and req.body["messages"][0]["content"] == "ping"
    else:
        assert req.body["input"] == "ping"
    url = req.url("https://contoso-apim.azure-api.net/", "/contoso-aoai/openai/")
    assert url.startswith("https://contoso-apim.azure-api.net/contoso-aoai/openai/")


def test_reasoning_models_get_max_completion_tokens_on_the_openai_routes() -> None:
    assert "max_completion_tokens" in probe.build_request(Mode.AZURE_OPENAI, "o3", CHAT, "o3-mini").body
    assert "max_tokens" in probe.build_request(Mode.AZURE_AI, "o3", CHAT, "o3-mini").body


def test_deployment_names_are_quoted_into_the_path() -> None:
    req = probe.build_request(Mode.AZURE_OPENAI, "a/b?c", CHAT)
    assert req.path == "/deployments/a%2Fb%3Fc/chat/completions"


def test_the_routing_probe_names_a_deployment_that_does_not_exist() -> None:
    req = probe.routing_request(Mode.AZURE_AI, ["gpt-4o"])
    assert req.body["model"] == probe.ROUTING_PROBE_DEPLOYMENT and req.operation == CHAT
    taken = [probe.ROUTING_PROBE_DEPLOYMENT.upper(), probe.ROUTING_PROBE_DEPLOYMENT + "-2"]
    assert probe.routing_request(Mode.AZURE_OPENAI, taken).deployment == probe.ROUTING_PROBE_DEPLOYMENT + "-3"


def test_token_limit_header_names_come_from_the_policy() -> None:
    xml = ('<policies><inbound><base/><llm-token-limit counter-key="@(context.Subscription.Id)" '
           'tokens-per-minute="10" estimate-prompt-tokens="true" remaining-tokens-header-name="x-left" '
           'tokens-consumed-header-name="x-used"/></inbound></policies>')
    assert probe.token_limit_headers(xml) == ("x-left", "x-used")
    assert probe.token_limit_headers("<policies><inbound/></policies>") == ()
    assert probe.token_limit_headers("not xml") == ()
    assert probe.token_limit_headers(None) == ()


CHAT_REQ = probe.build_request(Mode.AZURE_OPENAI, "gpt-4o", CHAT)


def _answer(status: int | None, body: object = None, headers: dict[str, str] | None = None,
            error: str | None = None) -> Answer:
    text = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    return Answer(status, headers or {}, text, 7, error)


def _apim(status: int, message: str) -> dict[str, object]:
    return {"statusCode": status, "message": message}


def _model(code: str, message: str = "m") -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize("answer, ok, source, words", [
    (_answer(200, {"usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}), True, "model",
     "answered"),
    (_answer(200, {"choices": []}), True, "model", "no usage"),
    (_answer(404, not_found_body("gpt-4o")), False, "allow-list", "allow-list refused 'gpt-4o'"),
    (_answer(401, _apim(401, "Access denied due to invalid subscription key.")), False, "gateway",
     "refused the subscription key"),
    (_answer(404, _apim(404, "Resource not found")), False, "gateway", "no API or operation"),
    (_answer(429, _apim(429, "Token limit is exceeded."), {"retry-after": "12"}), False, "gateway",
     "retry after 12 s"),
    (_answer(403, _apim(403, "Token quota is exceeded.")), False, "gateway", "token quota"),
    (_answer(500, _apim(500, "Internal server error")), False, "gateway", "the gateway failed"),
    (_answer(404, _model("DeploymentNotFound", "The API deployment for this resource does not exist.")),
     False, "model", "has no such deployment"),
    (_answer(401, _model("PermissionDenied")), False, "model", "managed identity"),
    (_answer(403, _model("AuthorizationFailed")), False, "model", "managed identity"),
    (_answer(429, _model("429")), False, "model", "deployment's own rate limit"),
    (_answer(400, _model("OperationNotSupported")), False, "model", "refused the request"),
    (_answer(503, _model("ServiceUnavailable")), False, "model", "model endpoint failed"),
    (_answer(502, "<html>bad gateway</html>"), False, "model", "HTTP 502"),
    (_answer(None, error="ConnectionRefusedError: refused"), False, "network", "no answer"),
])
def test_answers_are_put_down_to_the_gateway_or_the_model(answer: Answer, ok: bool, source: str,
                                                         words: str) -> None:
    result = probe.classify(CHAT_REQ, answer)
    assert (result.ok, result.source, result.status) == (ok, source, answer.status)
    assert words in result.reason, result.reason
    assert result.latency_ms == 7


def test_usage_and_token_limit_headers_are_reported() -> None:
    answer = _answer(200, {"usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}},
                     {"x-left": "990", "x-used": "10", "other": "x"})
    result = probe.classify(CHAT_REQ, answer, ("x-left", "X-Used", "x-absent"))
    assert result.usage == probe.Usage(9, 1, 10)
    assert result.headers == (("x-left", "990"), ("X-Used", "10"))
    assert result.to_json()["usage"] == {"prompt": 9, "completion": 1, "total": 10}


def test_a_model_404_in_the_allow_list_shape_but_another_message_is_the_model() -> None:
    assert probe.classify(CHAT_REQ, _answer(404, _model("DeploymentNotFound", "other"))).source == "model"


def test_the_probe_record_is_small_and_says_what_happened() -> None:
    routing_req = probe.routing_request(Mode.AZURE_OPENAI)
    good = probe.classify(routing_req, _answer(404, not_found_body(routing_req.deployment)))
    record = probe.probe_record("routing", good, "2025-01-01T00:00:00.000+00:00")
    assert set(record) == {"ok", "kind", "status", "latency_ms", "summary", "checked_at"}
    assert record["ok"] is True and record["status"] == 404 and "routing ok" in record["summary"]

    bad = probe.classify(routing_req, _answer(500, _apim(500, "Internal server error")))
    record = probe.probe_record("routing", bad, "t")
    assert record["ok"] is False and "got 500 from the gateway" in record["summary"]

    call = probe.classify(CHAT_REQ, _answer(200, {"usage": {"total_tokens": 3}}))
    failed = probe.classify(CHAT_REQ, _answer(400, _model("OperationNotSupported")))
    record = probe.probe_record("call", good, "t", [call, failed, probe.skipped("img", "dall-e-3")])
    assert record["ok"] is False and "calls 1/2 ok" in record["summary"]
    assert record["calls"][0] == {"deployment": "gpt-4o", "ok": True, "status": 200, "latency_ms": 7,
                                  "total_tokens": 3}


# ---------------------------------------------------------------------------------------------
# Streamed calls (python -m importer test --stream)

SSE = {"content-type": "text/event-stream; charset=utf-8"}
CHUNK = {"choices": [{"index": 0, "delta": {"content": "pong"}}]}
LAST = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}


def _sse(*events: object, done: bool = True) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + ("data: [DONE]\n\n" if done else "")


@pytest.mark.parametrize("mode", list(Mode))
def test_a_streamed_chat_request_asks_for_usage_and_embeddings_do_not_stream(mode: Mode) -> None:
    chat = probe.build_request(mode, "gpt-4o", CHAT, stream=True)
    assert chat.stream and chat.body["stream_options"] == {"include_usage": True}
    assert not probe.build_request(mode, "gpt-4o", CHAT).stream
    assert not probe.build_request(mode, "embed", EMBEDDINGS, stream=True).stream


@pytest.mark.parametrize(("answer", "ok", "reason"), [
    (_answer(200, _sse(CHUNK, LAST), SSE), True, "streamed 2 event(s)"),
    (_answer(200, _sse(CHUNK), SSE), True, "no usage in the last event"),
    (_answer(200, _sse(CHUNK, LAST, done=False), SSE), False, "no closing data: [DONE]"),
    (_answer(200, "", SSE), False, "no data events"),
    (_answer(200, {"choices": [], "usage": LAST["usage"]}, {"content-type": "application/json"}), False,
     "instead of text/event-stream"),
])
def test_a_streamed_answer_must_be_server_sent_events_ending_in_done(answer: Answer, ok: bool,
                                                                    reason: str) -> None:
    request = probe.build_request(Mode.AZURE_OPENAI, "gpt-4o", CHAT, stream=True)
    result = probe.classify(request, answer)
    assert (result.ok, result.source) == (ok, "model") and reason in result.reason
    if ok and "no usage" not in reason:
        assert result.usage == probe.Usage(9, 1, 10)
        assert result.to_json()["stream"] == {"events": 2, "done": True}


def test_errors_to_a_streamed_request_are_classified_as_before() -> None:
    request = probe.build_request(Mode.AZURE_AI, "nope", CHAT, stream=True)
    result = probe.classify(request, _answer(404, not_found_body("nope")))
    assert (result.ok, result.source, result.stream) == (False, "allow-list", None)
