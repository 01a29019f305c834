"""The request table: what the importer's allow-list decides for each request, per mode.

Each row is sent to the compiled policy (tests/expressions/test_run.py) and to the stand-in's gateway,
which must decide the same. Decisions: ``pass`` (on to the backend), ``deny`` (the policy's 404
DeploymentNotFound), ``invalid-json`` (the policy's 400 InvalidJson).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from importer.model import Mode

SERVICE = "contoso-apim"
ACCOUNT = "contoso-limits"
MAX_NAME = "max-" + "0123456789" * 6  # 64 characters: the longest deployment name
assert len(MAX_NAME) == 64
TOO_LONG = MAX_NAME + "x"  # 65: no deployment can have it
DEPLOYMENTS = ("gpt-4o", "Phi-4", "text-embedding-3-small", "x", "k", MAX_NAME, "v2.mini_ft-1")
API_PATH = {Mode.AZURE_OPENAI: "openai", Mode.AZURE_AI: "models", Mode.AZURE_OPENAI_V1: "openai/v1"}
JSON = "application/json"
CHAT = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
MULTIPART = ('--b0undary\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
             '--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
             'Content-Type: audio/wav\r\n\r\nRIFF\r\n--b0undary--\r\n')
MULTIPART_TYPE = "multipart/form-data; boundary=b0undary"
# Where each mode reads the deployment from a JSON body.
BODY_OPERATION = {Mode.AZURE_OPENAI: "/responses?api-version=2025-04-01-preview",
                  Mode.AZURE_AI: "/chat/completions?api-version=2024-05-01-preview",
                  Mode.AZURE_OPENAI_V1: "/chat/completions"}


@dataclass(frozen=True)
class Row:
    id: str
    method: str
    path: str  # below the API's path, with the query
    body: str | None
    expected: str
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, mode: Mode) -> dict[str, Any]:
        """The row as the C# runner reads it (a gateway path, as the stand-in serves it)."""
        path, _, query = self.path.partition("?")
        full = f"/{SERVICE}/{ACCOUNT}/{API_PATH[mode]}{path}"
        params = {}
        parts = path.split("/")
        if mode is Mode.AZURE_OPENAI and len(parts) > 2 and parts[1] == "deployments":
            params["deployment-id"] = parts[2]
        pairs = [p.partition("=") for p in query.split("&") if p]
        return {"id": f"{mode.value}:{self.id}", "method": self.method, "path": full,
                "queryString": f"?{query}" if query else "", "query": {k: [v] for k, _, v in pairs},
                "headers": {k: [v] for k, v in self.headers.items()}, "body": self.body, "params": params}


def _json(value: Any) -> str:
    return json.dumps(value)


def _nested(depth: int) -> str:
    return '{"model":"gpt-4o","x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def _body_rows(mode: Mode) -> list[Row]:
    """The same body cases in every mode, on the operation that reads ``model`` from the body."""
    op = BODY_OPERATION[mode]
    ct = {"Content-Type": JSON}

    def row(name: str, body: str | None, expected: str, headers: dict[str, str] | None = None,
            method: str = "POST") -> Row:
        return Row(f"body-{name}", method, op, body, expected, ct if headers is None else headers)

    return [
        row("known", _json({"model": "gpt-4o", **CHAT}), "pass"),
        row("known-upper-case", _json({"model": "GPT-4O", **CHAT}), "pass"),
        row("unknown", _json({"model": "nope", **CHAT}), "deny"),
        row("one-character-name", _json({"model": "x", **CHAT}), "pass"),
        row("64-character-name", _json({"model": MAX_NAME, **CHAT}), "pass"),
        row("64-character-name-upper-case", _json({"model": MAX_NAME.upper(), **CHAT}), "pass"),
        row("65-character-name", _json({"model": TOO_LONG, **CHAT}), "deny"),
        row("dot-underscore-hyphen", _json({"model": "v2.mini_ft-1", **CHAT}), "pass"),
        row("pipe-in-name", _json({"model": "gpt-4o|x", **CHAT}), "deny"),
        row("bar-alone", _json({"model": "|", **CHAT}), "deny"),
        row("non-ascii-lookalike", _json({"model": "gpt-4\u043e", **CHAT}), "deny"),
        row("dotted-capital-i", _json({"model": "\u0130", **CHAT}), "deny"),
        row("kelvin-sign", _json({"model": "\u212a", **CHAT}), "deny"),  # Python lower-cases it to "k"
        row("trailing-newline", _json({"model": "x\n", **CHAT}), "deny"),
        row("no-model", _json(CHAT), "pass"),
        row("model-null", _json({"model": None, **CHAT}), "pass"),
        row("model-empty", _json({"model": "", **CHAT}), "pass"),
        row("model-number", _json({"model": 4, **CHAT}), "deny"),
        row("model-true", '{"model": true}', "deny"),
        row("model-object", _json({"model": {"name": "gpt-4o"}, **CHAT}), "deny"),
        row("model-nan", '{"model": NaN}', "deny"),
        row("model-key-case", _json({"Model": "nope", **CHAT}), "pass"),
        row("duplicate-model-last-unknown", '{"model": "gpt-4o", "model": "nope"}', "deny"),
        row("duplicate-model-last-known", '{"model": "nope", "model": "gpt-4o"}', "pass"),
        row("json-array", _json([{"model": "nope"}]), "pass"),
        row("json-string", _json("nope"), "pass"),
        row("nested-20", _nested(20), "pass"),
        row("nested-100", _nested(100), "invalid-json"),
        row("streaming", _json({"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
                                **CHAT}), "pass", {"Content-Type": JSON, "Accept": "text/event-stream"}),
        row("streaming-unknown", _json({"model": "nope", "stream": True, **CHAT}), "deny",
            {"Content-Type": JSON, "Accept": "text/event-stream"}),
        row("upper-case-content-type", _json({"model": "nope", **CHAT}), "deny",
            {"Content-Type": "APPLICATION/JSON"}),
        row("mixed-case-content-type-charset", _json({"model": "nope", **CHAT}), "deny",
            {"Content-Type": "Application/Json; Charset=UTF-8"}),
        row("vendor-json-content-type", _json({"model": "nope", **CHAT}), "deny",
            {"Content-Type": "application/vnd.contoso+json"}),
        row("lower-case-header-name", _json({"model": "nope", **CHAT}), "deny", {"content-type": JSON}),
        row("malformed", '{"model": "gpt-4o", ', "invalid-json"),
        row("malformed-upper-case-content-type", "{not json", "invalid-json",
            {"Content-Type": "APPLICATION/JSON"}),
        row("single-quotes", "{'model': 'nope'}", "invalid-json"),
        row("trailing-text", '{"model": "gpt-4o"} x', "invalid-json"),
        row("empty-body", "", "pass"),
        row("whitespace-body", " \r\n\t ", "pass"),
        row("no-body", None, "pass", {}),
        row("no-content-type", _json({"model": "nope", **CHAT}), "pass", {}),
        row("text-plain", _json({"model": "nope", **CHAT}), "pass", {"Content-Type": "text/plain"}),
        row("multipart", MULTIPART.format(model="nope"), "pass", {"Content-Type": MULTIPART_TYPE}),
    ]


def _path_rows() -> list[Row]:
    """Azure OpenAI mode: the deployment in the path wins; the body is not read."""
    chat = "/deployments/{}/chat/completions?api-version=2024-10-21"
    ct = {"Content-Type": JSON}
    transcribe = "/deployments/{}/audio/transcriptions?api-version=2024-10-21"
    return [
        Row("path-known", "POST", chat.format("gpt-4o"), _json(CHAT), "pass", ct),
        Row("path-upper-case", "POST", chat.format("GPT-4O"), _json(CHAT), "pass", ct),
        Row("path-unknown", "POST", chat.format("nope"), _json(CHAT), "deny", ct),
        Row("path-one-character", "POST", chat.format("x"), _json(CHAT), "pass", ct),
        Row("path-64-characters", "POST", chat.format(MAX_NAME), _json(CHAT), "pass", ct),
        Row("path-65-characters", "POST", chat.format(TOO_LONG), _json(CHAT), "deny", ct),
        Row("path-non-ascii", "POST", chat.format("gpt-4%C3%B6"), _json(CHAT), "deny", ct),
        Row("path-dot-underscore-hyphen", "POST", chat.format("V2.Mini_FT-1"), _json(CHAT), "pass", ct),
        Row("path-wins-over-body", "POST", chat.format("gpt-4o"), _json({"model": "nope", **CHAT}), "pass",
            ct),
        Row("path-known-body-malformed", "POST", chat.format("gpt-4o"), "{not json", "pass", ct),
        Row("path-unknown-body-malformed", "POST", chat.format("nope"), "{not json", "deny", ct),
        Row("path-streaming", "POST", chat.format("gpt-4o"), _json({"stream": True, **CHAT}), "pass",
            {"Content-Type": JSON, "Accept": "text/event-stream"}),
        Row("path-multipart-known", "POST", transcribe.format("gpt-4o"), MULTIPART.format(model="nope"),
            "pass", {"Content-Type": MULTIPART_TYPE}),
        Row("path-multipart-unknown", "POST", transcribe.format("nope"), MULTIPART.format(model="gpt-4o"),
            "deny", {"Content-Type": MULTIPART_TYPE}),
        Row("get-assistants", "GET", "/assistants?api-version=2024-10-21", None, "pass"),
        Row("threads-without-model", "POST", "/threads?api-version=2024-10-21", _json({}), "pass", ct),
    ]


def _other_rows(mode: Mode) -> list[Row]:
    if mode is Mode.AZURE_AI:
        return [Row("get-info", "GET", "/info?api-version=2024-05-01-preview", None, "pass"),
                Row("get-info-with-json-body", "GET", "/info?api-version=2024-05-01-preview",
                    _json({"model": "nope"}), "pass", {"Content-Type": JSON})]
    if mode is Mode.AZURE_OPENAI_V1:
        ct = {"Content-Type": JSON}
        return [Row("get-models", "GET", "/models", None, "pass"),
                Row("files-multipart", "POST", "/files", MULTIPART.format(model="nope"), "pass",
                    {"Content-Type": MULTIPART_TYPE}),
                Row("fine-tuning-base-model", "POST", "/fine_tuning/jobs",
                    _json({"model": "gpt-4o-mini-2024-07-18", "training_file": "file-1"}), "pass", ct),
                Row("fine-tuning-malformed", "POST", "/fine_tuning/jobs", "{not json", "pass", ct),
                Row("responses-unknown", "POST", "/responses", _json({"model": "nope", "input": "hi"}),
                    "deny", ct)]
    return _path_rows()


def rows(mode: Mode) -> list[Row]:
    return _body_rows(mode) + _other_rows(mode)
