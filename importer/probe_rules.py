"""Probe: what to send through the gateway to try a deployment, and what the answer means.

Pure. No I/O. The model decides the operation (embeddings models get an embeddings request, the rest
a chat completion), the mode decides where the deployment is named (path or body), and every answer
is put down to whoever made it: the gateway (APIM's own ``{"statusCode", "message"}`` errors and the
allow-list's 404) or the model endpoint behind it (``{"error": {...}}`` bodies and successes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from lxml import etree

from importer.model import Mode
from importer.render import NOT_FOUND_CODE, NOT_FOUND_MESSAGE

CHAT = "chat completions"
EMBEDDINGS = "embeddings"

# api-version per mode: the GA data-plane version of Azure OpenAI, the version the Azure AI Inference
# SDKs send, and none for v1 (its routes are versionless).
API_VERSION: dict[Mode, str | None] = {
    Mode.AZURE_OPENAI: "2024-10-21",
    Mode.AZURE_AI: "2024-05-01-preview",
    Mode.AZURE_OPENAI_V1: None,
}
ROUTING_PROBE_DEPLOYMENT = "apim-importer-routing-probe"
TOKEN_LIMIT_HEADER_ATTRIBUTES = ("remaining-tokens-header-name", "tokens-consumed-header-name",
                                 "remaining-quota-tokens-header-name", "retry-after-header-name")

_EMBEDDINGS = re.compile(r"embed", re.IGNORECASE)
# Models that answer neither chat completions nor embeddings: not called, reported as skipped.
_NOT_CHAT = re.compile(r"dall-e|gpt-image|whisper|tts|sora|transcribe|realtime|audio", re.IGNORECASE)
# Reasoning models refuse max_tokens on the OpenAI routes; they take max_completion_tokens.
_REASONING = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)
_ALLOW_LIST_MESSAGE = re.compile("^" + ".*".join(re.escape(p) for p in NOT_FOUND_MESSAGE.split("{}")) + "$",
                                 re.DOTALL)
_MAX_MESSAGE = 240


def operation_for(deployment: str, model_name: str = "") -> str | None:
    """``embeddings`` for embedding models, ``chat completions`` for the rest, None for image, audio
    and realtime models (nothing cheap to send them). Decided by the model name, else the
    deployment's name (a deployment the account does not have)."""
    name = model_name or deployment
    if _EMBEDDINGS.search(name):
        return EMBEDDINGS
    if _NOT_CHAT.search(name):
        return None
    return CHAT


@dataclass(frozen=True)
class ProbeRequest:
    """One request below the API's path. Carries no key: the adapter adds it as a header."""

    deployment: str
    operation: str
    method: str
    path: str  # e.g. /deployments/gpt-4o/chat/completions
    query: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    def url(self, gateway_url: str, api_path: str) -> str:
        base = gateway_url.rstrip("/") + "/" + api_path.strip("/")
        return base + self.path + (("?" + urlencode(self.query)) if self.query else "")


def build_request(mode: Mode, deployment: str, operation: str, model_name: str = "", *,
                  stream: bool = False) -> ProbeRequest:
    """The smallest request of ``operation`` for ``deployment`` in ``mode``: one short input, one
    output token (a few for reasoning models). ``stream`` asks a chat completion for server-sent
    events with usage in the last one; embeddings have no streamed form and ignore it."""
    mode = Mode(mode)
    body: dict[str, Any]
    if operation == CHAT:
        body = {"messages": [{"role": "user", "content": "ping"}]}
        if _REASONING.search(model_name or deployment) and mode is not Mode.AZURE_AI:
            body["max_completion_tokens"] = 16
        else:
            body["max_tokens"] = 1
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        route = "/chat/completions"
    elif operation == EMBEDDINGS:
        body = {"input": "ping"}
        route = "/embeddings"
    else:
        raise ValueError(f"no probe request for operation {operation!r}")
    if mode.deployment_in_path:
        path = f"/deployments/{quote(deployment, safe='')}{route}"
    else:
        path, body = route, {"model": deployment, **body}
    version = API_VERSION[mode]
    return ProbeRequest(deployment, operation, "POST", path, (("api-version", version),) if version else (),
                        body)


def routing_request(mode: Mode, taken: Iterable[str] = ()) -> ProbeRequest:
    """A chat request for a deployment that does not exist: the allow-list must answer it with its
    404 before the model is called, so it costs no tokens."""
    names = {n.lower() for n in taken}
    name, n = ROUTING_PROBE_DEPLOYMENT, 1
    while name in names:
        n += 1
        name = f"{ROUTING_PROBE_DEPLOYMENT}-{n}"
    return build_request(mode, name, CHAT)


def token_limit_headers(policy_xml: str | None) -> tuple[str, ...]:
    """Header names a token-limit statement in the policy asks the gateway to add, in policy order."""
    if not policy_xml:
        return ()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(policy_xml.encode("utf-8"), parser)
    except etree.XMLSyntaxError:
        return ()
    names: list[str] = []
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.endswith("-token-limit"):
            names += [el.get(a) for a in TOKEN_LIMIT_HEADER_ATTRIBUTES if el.get(a)]
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True)
class Answer:
    """What came back (the gateway adapter's output). ``status`` None: no HTTP answer at all."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: str = ""
    latency_ms: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt: int | None
    completion: int | None
    total: int | None

    def to_json(self) -> dict[str, int | None]:
        return {"prompt": self.prompt, "completion": self.completion, "total": self.total}


@dataclass(frozen=True)
class Stream:
    """What a streamed answer held: its ``data:`` events (without ``[DONE]``), whether ``[DONE]``
    ended it, and the usage of the last event that had one."""

    events: int
    done: bool
    usage: Usage | None

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "done": self.done}


def read_stream(text: str) -> Stream:
    """Server-sent events: ``data:`` lines, JSON each, ``data: [DONE]`` last."""
    events, done, usage = 0, False, None
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        events += 1
        found = _usage(_json(data))
        usage = found or usage
    return Stream(events, done, usage)


@dataclass(frozen=True)
class CallResult:
    deployment: str
    operation: str
    ok: bool
    status: int | None
    source: str  # model | gateway | allow-list | network | skipped
    reason: str
    latency_ms: int = 0
    usage: Usage | None = None
    headers: tuple[tuple[str, str], ...] = ()  # the token-limit headers the policy names
    stream: Stream | None = None  # a streamed call's events

    def to_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "operation": self.operation, "ok": self.ok,
                "status": self.status, "source": self.source, "reason": self.reason,
                "latencyMs": self.latency_ms, "usage": self.usage.to_json() if self.usage else None,
                "headers": dict(self.headers), "stream": self.stream.to_json() if self.stream else None}


def skipped(deployment: str, model_name: str) -> CallResult:
    return CallResult(deployment, "-", True, None, "skipped",
                      f"model {model_name or deployment} takes neither chat completions nor embeddings: "
                      "not called")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _short(text: object) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= _MAX_MESSAGE else s[:_MAX_MESSAGE - 1] + "…"


def is_gateway_error(body: Any) -> bool:
    """APIM's own error shape (key check, routing, token limits, policy failures)."""
    return isinstance(body, dict) and "statusCode" in body and "message" in body and "error" not in body


def is_allow_list_404(status: int | None, body: Any) -> bool:
    """The importer's allow-list answer: 404 with the policy's DeploymentNotFound body (its message
    names the deployment; the model endpoint's own 404 has the same code and other words)."""
    if status != 404 or not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    err = body["error"]
    return bool(err.get("code") == NOT_FOUND_CODE and _ALLOW_LIST_MESSAGE.match(str(err.get("message"))))


def _usage(body: Any) -> Usage | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None

    def num(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return Usage(num("prompt_tokens"), num("completion_tokens"), num("total_tokens"))


def _gateway_reason(status: int, message: str, request: ProbeRequest, answer: Answer) -> str:
    where = f"{request.method} …{request.path}"
    if status == 401:
        return (f"the gateway refused the subscription key (401: {message}): send a key of an active "
                "subscription scoped to this API, one of its products or all APIs (--key), or leave "
                "--key out to use the importer's own")
    if status == 404:
        return (f"no API or operation on the gateway matches {where} (404: {message}): the API or its "
                "operations are missing (run apply), or the gateway has not loaded a new API yet")
    if status == 429:
        wait = answer.headers.get("retry-after")
        return (f"the gateway's token limit refused the call (429: {message}): this key's tokens per "
                "minute are spent" + (f"; retry after {wait} s" if wait else ""))
    if status == 403:
        return (f"the gateway refused the call (403: {message}): the token quota for this key is spent, "
                "or another policy (content safety, IP filter) blocked it")
    if status >= 500:
        return (f"the gateway failed ({status}: {message}): a policy error, or the model endpoint could "
                "not be reached")
    return f"the gateway answered {status}: {message}"


def _model_reason(status: int, code: str, message: str, request: ProbeRequest) -> str:
    what = f"{status} {code}".strip() + (f": {message}" if message else "")
    if status == 404 and code == "DeploymentNotFound":
        return (f"the gateway routed '{request.deployment}', but the account has no such deployment "
                f"({what}): it was removed or renamed since the last reconcile; run apply to update the "
                "allow-list")
    if status in (401, 403):
        return (f"the account refused the gateway's managed identity ({what}): APIM's role on the "
                "account is missing or still propagating (minutes); see python -m importer explain")
    if status == 429:
        return f"the deployment's own rate limit on the account answered ({what}): retry later"
    if status >= 500:
        return f"the model endpoint failed ({what}): retry later"
    return f"the model endpoint refused the request ({what})"


def classify(request: ProbeRequest, answer: Answer, token_headers: Iterable[str] = ()) -> CallResult:
    """A CallResult that says who answered and what to do about it."""
    found = tuple((h, answer.headers[h.lower()]) for h in token_headers if h.lower() in answer.headers)

    def result(ok: bool, source: str, reason: str, usage: Usage | None = None,
               stream: Stream | None = None) -> CallResult:
        return CallResult(request.deployment, request.operation, ok, answer.status, source, reason,
                          answer.latency_ms, usage, found, stream)

    status = answer.status
    if status is None:
        return result(False, "network", f"no answer from the gateway: {answer.error}")
    body = _json(answer.body)
    if 200 <= status < 300 and request.stream:
        return _streamed(request, answer, result)
    if 200 <= status < 300:
        usage = _usage(body)
        return result(True, "model", "the model answered" + ("" if usage else " (no usage in the reply)"),
                      usage)
    if is_allow_list_404(status, body):
        return result(False, "allow-list", (
            f"the gateway's allow-list refused '{request.deployment}' (404 DeploymentNotFound): it is not a "
            "deployment in state Succeeded on the account, or the policy predates it (run apply)"))
    if is_gateway_error(body):
        return result(False, "gateway", _gateway_reason(status, _short(body["message"]), request, answer))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return result(False, "model", _model_reason(status, _short(err.get("code") or ""),
                                                    _short(err.get("message") or ""), request))
    text = _short(answer.body) or "(empty body)"
    return result(False, "gateway" if status in (401, 404) else "model", f"HTTP {status}: {text}")


def _streamed(request: ProbeRequest, answer: Answer, result: Callable[..., CallResult]) -> CallResult:
    """A 2xx to a streamed request: server-sent events, ended by ``[DONE]``, usage in the last event."""
    kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "text/event-stream":
        return result(False, "model", f"a streamed call got {kind or 'no content type'} instead of "
                      "text/event-stream: something between the client and the model (a policy that reads "
                      "or rewrites the response, a cache) does not pass streams through")
    stream = read_stream(answer.body)
    if not stream.events or not stream.done:
        what = "no data events" if not stream.events else "no closing data: [DONE]"
        return result(False, "model", f"the stream was cut short ({what}, {stream.events} event(s)): a "
                      "proxy or policy buffered or truncated it", stream.usage, stream)
    return result(True, "model", f"the model streamed {stream.events} event(s)" + (
        "" if stream.usage else " (no usage in the last event)"), stream.usage, stream)


def routing_ok(result: CallResult) -> bool:
    return result.source == "allow-list" and result.status == 404


def probe_record(kind: str, routing: CallResult, checked_at: str,
                 calls: Iterable[CallResult] = ()) -> dict[str, Any]:
    """The small dict a run records (Run.probe). Never holds a key."""
    ok = routing_ok(routing)
    if ok:
        summary = (f"routing ok: an unknown deployment got the allow-list's 404 from the gateway in "
                   f"{routing.latency_ms} ms")
    else:
        got = f"{routing.status} from the {routing.source}" if routing.status else routing.source
        summary = f"routing probe failed: expected the allow-list's 404 DeploymentNotFound, got {got}: " \
                  f"{routing.reason}"
    record: dict[str, Any] = {"ok": ok, "kind": kind, "status": routing.status,
                              "latency_ms": routing.latency_ms, "summary": summary, "checked_at": checked_at}
    done = [c for c in calls if c.source != "skipped"]
    if kind == "call":
        failed = [c for c in done if not c.ok]
        record["ok"] = ok and not failed
        record["calls"] = [{"deployment": c.deployment, "ok": c.ok, "status": c.status,
                            "latency_ms": c.latency_ms,
                            "total_tokens": c.usage.total if c.usage else None} for c in done]
        record["summary"] = summary + f"; calls {len(done) - len(failed)}/{len(done)} ok" + "".join(
            f"; {c.deployment}: {c.reason}" for c in failed)
    return record
