"""The stand-in's fake model endpoint: what an account's endpoint answers behind the gateway.

Rule: answers in the OpenAI / Azure AI wire shapes the SDKs parse, nothing more. Inference calls
(chat, completions, responses, embeddings, images, audio, model info) need a deployment that
exists and takes the operation (decided by its model's name); ``stream: true`` gets server-sent
events. Account-level calls (files, batches, models, fine-tuning jobs, conversations) keep a small
per-account store, cleared with the gateway. Content is "pong"; tokens ≈ characters / 4.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

MODEL_DEPLOYMENT_NOT_FOUND = ("The API deployment for this resource does not exist. If you created the "
                              "deployment within the last 5 minutes, please wait a moment and try again.")
REPLY = "pong"
# 1×1 transparent PNG: what an image call "generates".
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
                       "AAAABJRU5ErkJggg==")
SPEECH = b"ID3armsim"  # the start of an MP3 file, and nothing more

_PARAM = re.compile(r"\{[^{}]+\}")
_EMBED = re.compile(r"embed", re.IGNORECASE)
_IMAGE = re.compile(r"dall-e|gpt-image", re.IGNORECASE)
_TRANSCRIBE = re.compile(r"whisper|transcribe", re.IGNORECASE)
_SPEECH = re.compile(r"tts", re.IGNORECASE)


def model_error(status: int, code: str, message: str, error_type: str | None = None) -> Response:
    """The model endpoint's error shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if error_type:
        error["type"] = error_type
    return Response(json.dumps({"error": error}), status=status, mimetype="application/json")


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json")


def estimate(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def texts(value: Any) -> list[str]:
    """Every text in a prompt: a string, a list of them, or messages / content parts (``text``,
    ``content`` and ``input`` keys, nested)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    if isinstance(value, dict):
        return [t for key in ("text", "content", "input") for t in texts(value.get(key))]
    return []


def _page(items: list[dict[str, Any]]) -> Response:
    """One page of a cursor-paged list, the only page."""
    first, last = (items[0]["id"], items[-1]["id"]) if items else (None, None)
    return _json({"object": "list", "data": items, "has_more": False, "first_id": first, "last_id": last})


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


# ---------------------------------------------------------------------------------------------
# Which operation a request is


def operation_key(method: str, template: str) -> tuple[str, str]:
    """(METHOD, path) with parameters as ``{}`` and Azure OpenAI's ``/deployments/{}`` prefix gone:
    the same key for every mode and for either document's parameter names."""
    path = _PARAM.sub("{}", template.partition("?")[0]).rstrip("/").lower() or "/"
    if path.startswith("/deployments/{}/"):
        path = path[len("/deployments/{}"):]
    return method.upper(), path


def path_values(template: str, rest: str) -> list[str]:
    """The values of the template's path parameters in ``rest`` (the path below the API), in order."""
    names = template.partition("?")[0].strip("/").split("/")
    given = rest.strip("/").split("/")
    return [v for n, v in zip(names, given, strict=False) if _PARAM.fullmatch(n)]


# Inference operations: the model must take them (by its name).
INFERENCE: dict[tuple[str, str], str] = {
    ("POST", "/chat/completions"): "chat",
    ("POST", "/completions"): "completions",
    ("POST", "/responses"): "responses",
    ("POST", "/embeddings"): "embeddings",
    ("POST", "/images/embeddings"): "embeddings",
    ("POST", "/images/generations"): "images",
    ("POST", "/images/edits"): "images",
    ("POST", "/audio/transcriptions"): "transcription",
    ("POST", "/audio/translations"): "transcription",
    ("POST", "/audio/speech"): "speech",
    ("GET", "/info"): "info",
}


def capability(model: str) -> str:
    """What a model takes, by its name: embeddings, images, transcription, speech, or chat."""
    for pattern, what in ((_EMBED, "embeddings"), (_IMAGE, "images"), (_TRANSCRIBE, "transcription"),
                          (_SPEECH, "speech")):
        if pattern.search(model):
            return what
    return "chat"


def _takes(model: str, kind: str) -> bool:
    have = capability(model)
    if kind in ("chat", "completions", "responses"):
        return have == "chat"
    if kind == "info":
        return True
    return have == kind


@dataclass(frozen=True)
class Deployment:
    name: str
    model: str
    model_format: str = "OpenAI"


@dataclass(frozen=True)
class Call:
    """One request as the model endpoint sees it."""

    account: str  # the account's resource id (the store's key)
    method: str
    template: str  # the operation's urlTemplate
    rest: str  # the path below the API
    request: Request
    body: dict[str, Any]
    deployments: dict[str, Deployment] = field(default_factory=dict)  # lower-case name → deployment
    requested: str | None = None  # the deployment the gateway read (path or JSON body)

    def form(self, name: str) -> str | None:
        value = self.request.form.get(name) if self.request.mimetype == "multipart/form-data" else None
        return str(value) if value is not None else None


# ---------------------------------------------------------------------------------------------
# Inference answers


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(events: list[tuple[str | None, Any]]) -> Response:
    """Server-sent events: one ``data:`` line per event (``event:`` before it when named), then
    ``data: [DONE]``."""
    lines = []
    for name, data in events:
        lines.append((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n")
    lines.append("data: [DONE]\n\n")
    return Response("".join(lines), status=200, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache"})


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chat(model: str, body: dict[str, Any]) -> Response:
    prompt = 8 + sum(estimate(t) for t in texts(body.get("messages")))
    created, rid = int(time.time()), _id("chatcmpl-armsim-")
    if body.get("stream") is True:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": choices, **extra}

        events: list[tuple[str | None, Any]] = [
            (None, chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                           "finish_reason": None}])),
            (None, chunk([{"index": 0, "delta": {"content": REPLY}, "finish_reason": None}])),
            (None, chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))]
        if _include_usage(body):
            events.append((None, chunk([], usage=_usage(prompt, 1))))
        return _sse(events)
    return _json({"id": rid, "object": "chat.completion", "created": created, "model": model,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY},
                               "finish_reason": "stop"}],
                  "usage": _usage(prompt, 1)})


def _completions(model: str, body: dict[str, Any]) -> Response:
    prompt = sum(estimate(t) for t in texts(body.get("prompt"))) or 1
    created, rid = int(time.time()), _id("cmpl-armsim-")
    choice = {"index": 0, "text": REPLY, "finish_reason": "stop", "logprobs": None}
    if body.get("stream") is True:
        base = {"id": rid, "object": "text_completion", "created": created, "model": model}
        events: list[tuple[str | None, Any]] = [(None, {**base, "choices": [choice]})]
        if _include_usage(body):
            events.append((None, {**base, "choices": [], "usage": _usage(prompt, 1)}))
        return _sse(events)
    return _json({"id": rid, "object": "text_completion", "created": created, "model": model,
                  "choices": [choice], "usage": _usage(prompt, 1)})


def _responses(model: str, body: dict[str, Any]) -> Response:
    prompt = sum(estimate(t) for t in texts(body.get("input")) + texts(body.get("instructions"))) or 1
    created, rid, mid = int(time.time()), _id("resp_"), _id("msg_")
    part = {"type": "output_text", "text": REPLY, "annotations": []}
    message = {"type": "message", "id": mid, "status": "completed", "role": "assistant", "content": [part]}
    usage = {"input_tokens": prompt, "output_tokens": 1, "total_tokens": prompt + 1,
             "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
    done = {"id": rid, "object": "response", "created_at": created, "status": "completed", "model": model,
            "output": [message], "usage": usage, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "metadata": {}, "parallel_tool_calls": True,
            "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": []}
    if body.get("stream") is not True:
        return _json(done)
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    at = {"item_id": mid, "output_index": 0, "content_index": 0}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        ("response.output_item.added", {"output_index": 0, "item": {**message, "status": "in_progress",
                                                                     "content": []}}),
        ("response.content_part.added", {**at, "part": {**part, "text": ""}}),
        ("response.output_text.delta", {**at, "delta": REPLY, "logprobs": []}),
        ("response.output_text.done", {**at, "text": REPLY, "logprobs": []}),
        ("response.content_part.done", {**at, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": message}),
        ("response.completed", {"response": done})]
    return _sse([(name, {"type": name, "sequence_number": i, **data})
                 for i, (name, data) in enumerate(steps)])


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255 - 0.5, 4) for b in digest[:8]]


def _embeddings(model: str, body: dict[str, Any]) -> Response:
    raw = body.get("input")
    given = [json.dumps(i, sort_keys=True) if isinstance(i, dict) else i for i in
             (raw if isinstance(raw, list) else [raw])]
    inputs: list[str] = [i for i in given if isinstance(i, str)] or [""]
    base64_format = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(inputs):
        vector = _vector(text)
        embedding: Any = (base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                          if base64_format else vector)
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = sum(estimate(t) for t in inputs)
    return _json({"object": "list", "data": data, "model": model,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _images(call: Call) -> Response:
    prompt = str(call.body.get("prompt") or call.form("prompt") or "")
    b64 = (call.body.get("response_format") or call.form("response_format")) == "b64_json"
    image = ({"b64_json": base64.b64encode(PNG).decode()} if b64
             else {"url": f"https://armsim.invalid/images/{uuid.uuid4().hex}.png"})
    return _json({"created": int(time.time()), "data": [{**image, "revised_prompt": prompt}]})


def _transcription(call: Call) -> Response:
    if call.form("response_format") == "text":
        return Response(REPLY, status=200, mimetype="text/plain")
    return _json({"text": REPLY})


def _info(deployment: Deployment) -> Response:
    kind = {"embeddings": "embeddings", "images": "text-to-image", "transcription": "audio-generation",
            "speech": "audio-generation"}.get(capability(deployment.model), "chat-completion")
    return _json({"model_name": deployment.model, "model_type": kind,
                  "model_provider_name": deployment.model_format})


# ---------------------------------------------------------------------------------------------
# The endpoint


class FakeModel:
    """Every account's model endpoint. Thread-safe; ``clear()`` forgets files, batches and the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._store: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # (account, kind) → id → object
        self._content: dict[str, bytes] = {}
        self._account_calls: dict[tuple[str, str], Callable[[Call, list[str]], Response]] = {
            ("POST", "/files"): self._file_create, ("GET", "/files"): self._list("file"),
            ("GET", "/files/{}"): self._get("file"), ("DELETE", "/files/{}"): self._delete("file"),
            ("GET", "/files/{}/content"): self._file_content,
            ("POST", "/batches"): self._batch_create, ("GET", "/batches"): self._list("batch"),
            ("GET", "/batches/{}"): self._get("batch"),
            ("POST", "/batches/{}/cancel"): self._set_status("batch", "cancelling"),
            ("GET", "/models"): self._models, ("GET", "/models/{}"): self._model,
            ("POST", "/fine_tuning/jobs"): self._job_create, ("GET", "/fine_tuning/jobs"): self._list("job"),
            ("GET", "/fine_tuning/jobs/{}"): self._get("job"),
            ("POST", "/fine_tuning/jobs/{}/cancel"): self._set_status("job", "cancelled"),
            ("GET", "/fine_tuning/jobs/{}/events"): self._job_events,
            ("POST", "/conversations"): self._conversation_create,
            ("GET", "/conversations/{}"): self._get("conversation"),
            ("POST", "/conversations/{}"): self._conversation_update,
            ("DELETE", "/conversations/{}"): self._delete("conversation"),
            ("GET", "/conversations/{}/items"): self._items_list,
            ("POST", "/conversations/{}/items"): self._items_create,
        }

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._content.clear()

    def answer(self, call: Call) -> Response:
        key = operation_key(call.method, call.template)
        kind = INFERENCE.get(key)
        if kind is not None:
            return self._inference(kind, call)
        handler = self._account_calls.get(key)
        if handler is None:
            return model_error(400, "OperationNotSupported",
                               f"armsim's fake model does not answer {key[0]} {key[1]}.")
        return handler(call, path_values(call.template, call.rest))

    # -- inference --------------------------------------------------------------------------------

    def _inference(self, kind: str, call: Call) -> Response:
        name = call.requested or call.form("model") or (call.request.args.get("model") if kind == "info"
                                                        else None)
        if not name:
            return model_error(400, "BadRequest", "The request names no model deployment.")
        deployment = call.deployments.get(name.lower())
        if deployment is None:
            return model_error(404, "DeploymentNotFound", MODEL_DEPLOYMENT_NOT_FOUND)
        if not _takes(deployment.model, kind):
            return model_error(400, "OperationNotSupported", f"The {kind} operation does not work with the "
                               f"specified model, {deployment.model}. Please choose different model and try "
                               "again.")
        model = deployment.model
        if kind == "chat":
            return _chat(model, call.body)
        if kind == "completions":
            return _completions(model, call.body)
        if kind == "responses":
            return _responses(model, call.body)
        if kind == "embeddings":
            return _embeddings(model, call.body)
        if kind == "images":
            return _images(call)
        if kind == "transcription":
            return _transcription(call)
        if kind == "speech":
            return Response(SPEECH, status=200, mimetype="audio/mpeg")
        return _info(deployment)

    # -- the per-account store --------------------------------------------------------------------

    def _put(self, call: Call, kind: str, obj: dict[str, Any]) -> Response:
        with self._lock:
            self._store.setdefault((call.account, kind), {})[obj["id"]] = obj
        return _json(obj)

    def _find(self, call: Call, kind: str, oid: str) -> dict[str, Any] | None:
        with self._lock:
            return self._store.get((call.account, kind), {}).get(oid)

    @staticmethod
    def _missing(kind: str, oid: str) -> Response:
        return model_error(404, "NotFound", f"{kind} {oid!r} does not exist.", "invalid_request_error")

    def _list(self, kind: str) -> Callable[[Call, list[str]], Response]:
        def handler(call: Call, _: list[str]) -> Response:
            with self._lock:
                items = sorted(self._store.get((call.account, kind), {}).values(),
                               key=lambda o: o.get("created_at", 0), reverse=True)
            return _page(items)
        return handler

    def _get(self, kind: str) -> Callable[[Call, list[str]], Response]:
        def handler(call: Call, ids: list[str]) -> Response:
            found = self._find(call, kind, ids[0])
            return _json(found) if found is not None else self._missing(kind, ids[0])
        return handler

    def _delete(self, kind: str) -> Callable[[Call, list[str]], Response]:
        def handler(call: Call, ids: list[str]) -> Response:
            with self._lock:
                found = self._store.get((call.account, kind), {}).pop(ids[0], None)
                self._content.pop(ids[0], None)
            if found is None:
                return self._missing(kind, ids[0])
            return _json({"id": ids[0], "object": f"{found['object']}.deleted" if kind == "conversation"
                          else found["object"], "deleted": True})
        return handler

    def _file_create(self, call: Call, _: list[str]) -> Response:
        upload = call.request.files.get("file")
        if upload is None or not call.form("purpose"):
            return model_error(400, "invalidPayload", "A file upload takes the form fields 'file' and "
                               "'purpose'.", "invalid_request_error")
        data = upload.read()
        obj: dict[str, Any] = {
            "id": _id("file-"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
            "filename": upload.filename or "upload", "purpose": call.form("purpose"), "status": "processed"}
        with self._lock:
            self._content[obj["id"]] = data
        return self._put(call, "file", obj)

    def _file_content(self, call: Call, ids: list[str]) -> Response:
        if self._find(call, "file", ids[0]) is None:
            return self._missing("file", ids[0])
        with self._lock:
            data = self._content.get(ids[0], b"")
        return Response(data, status=200, mimetype="application/octet-stream")

    def _file_of(self, call: Call, field_name: str) -> tuple[str, Response | None]:
        """(the body's file id in ``field_name``, a 400 when it is no file of this account)."""
        file_id = str(call.body.get(field_name) or "")
        if self._find(call, "file", file_id) is not None:
            return file_id, None
        return file_id, model_error(400, "invalidPayload", f"{field_name} {file_id!r} is not a file of this "
                                    "resource.", "invalid_request_error")

    def _set_status(self, kind: str, status: str) -> Callable[[Call, list[str]], Response]:
        def handler(call: Call, ids: list[str]) -> Response:
            found = self._find(call, kind, ids[0])
            if found is None:
                return self._missing(kind, ids[0])
            return self._put(call, kind, {**found, "status": status})
        return handler

    def _batch_create(self, call: Call, _: list[str]) -> Response:
        file_id, refused = self._file_of(call, "input_file_id")
        if refused is not None:
            return refused
        return self._put(call, "batch", {
            "id": _id("batch_"), "object": "batch", "endpoint": call.body.get("endpoint"),
            "input_file_id": file_id, "completion_window": call.body.get("completion_window", "24h"),
            "status": "validating", "created_at": int(time.time()), "errors": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": call.body.get("metadata")})

    def _job_create(self, call: Call, _: list[str]) -> Response:
        file_id, refused = self._file_of(call, "training_file")
        if refused is not None:
            return refused
        return self._put(call, "job", {
            "id": _id("ftjob-"), "object": "fine_tuning.job", "model": call.body.get("model"),
            "created_at": int(time.time()), "status": "pending", "training_file": file_id,
            "validation_file": call.body.get("validation_file"), "hyperparameters": {},
            "organization_id": "", "result_files": [], "seed": 0, "fine_tuned_model": None,
            "finished_at": None, "error": None, "trained_tokens": None})

    def _job_events(self, call: Call, ids: list[str]) -> Response:
        found = self._find(call, "job", ids[0])
        if found is None:
            return self._missing("job", ids[0])
        event = {"id": _id("ftevent-"), "object": "fine_tuning.job.event", "created_at": found["created_at"],
                 "level": "info", "message": f"Job {found['status']}.", "type": "message"}
        return _json({"object": "list", "data": [event], "has_more": False})

    def _conversation_update(self, call: Call, ids: list[str]) -> Response:
        found = self._find(call, "conversation", ids[0])
        if found is None:
            return self._missing("conversation", ids[0])
        return self._put(call, "conversation", {**found, "metadata": call.body.get("metadata") or {}})

    def _items_list(self, call: Call, ids: list[str]) -> Response:
        found = self._find(call, "conversation", ids[0])
        if found is None:
            return self._missing("conversation", ids[0])
        with self._lock:
            items = list(self._store.get((call.account, f"items/{ids[0]}"), {}).values())
        return _page(items)

    def _items_create(self, call: Call, ids: list[str]) -> Response:
        found = self._find(call, "conversation", ids[0])
        if found is None:
            return self._missing("conversation", ids[0])
        given = call.body.get("items")
        added = [{"id": _id("msg_"), "status": "completed", **item} for item in
                 (given if isinstance(given, list) else []) if isinstance(item, dict)]
        with self._lock:
            self._store.setdefault((call.account, f"items/{ids[0]}"), {}).update((i["id"], i) for i in added)
        return _page(added)

    def _conversation_create(self, call: Call, _: list[str]) -> Response:
        return self._put(call, "conversation", {"id": _id("conv_"), "object": "conversation",
                                                "created_at": int(time.time()),
                                                "metadata": call.body.get("metadata") or {}})

    @staticmethod
    def _model_objects(call: Call) -> list[dict[str, Any]]:
        models = sorted({d.model for d in call.deployments.values()})
        return [{"id": m, "object": "model", "created": 0, "owned_by": "system",
                 "capabilities": {capability(m): True}} for m in models]

    def _models(self, call: Call, _: list[str]) -> Response:
        return _json({"object": "list", "data": self._model_objects(call)})

    def _model(self, call: Call, ids: list[str]) -> Response:
        found = next((m for m in self._model_objects(call) if m["id"].lower() == ids[0].lower()), None)
        return _json(found) if found is not None else self._missing("model", ids[0])


# ---------------------------------------------------------------------------------------------
# Reading usage back (the gateway's token counting)


def usage_of(response: Response) -> dict[str, Any] | None:
    """The ``usage`` of a JSON answer, or of a stream's last event that has one (a chat chunk's
    ``usage``, or ``response.completed``'s ``response.usage``)."""
    text = response.get_data(as_text=True)
    if response.mimetype == "text/event-stream":
        found = None
        for line in text.splitlines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            usage = event.get("usage") or (event.get("response") or {}).get("usage")
            if isinstance(usage, dict):
                found = usage
        return found
    try:
        body = json.loads(text)
    except ValueError:
        return None
    usage = body.get("usage") if isinstance(body, dict) else None
    return usage if isinstance(usage, dict) else None


def stream_deltas(response: Response) -> int:
    """How many content pieces a stream carried: the completion tokens when it reports no usage."""
    if response.mimetype != "text/event-stream":
        return 0
    count = 0
    for line in response.get_data(as_text=True).splitlines():
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        try:
            event = json.loads(line[5:])
        except ValueError:
            continue
        choices = event.get("choices") or []
        count += sum(1 for c in choices if (c.get("delta") or {}).get("content") or c.get("text"))
        count += event.get("type") == "response.output_text.delta"
    return count
