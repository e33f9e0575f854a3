"""The HTTP API: Ollama's routes and the OpenAI-compatible /v1 routes, on FastAPI."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import metrics
from .models import InputTooLong, ModelNotFound, Registry, ServedModel

OLLAMA_VERSION = "0.12.0"


class APIError(Exception):
    """An error answered in the caller's dialect (Ollama or OpenAI)."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _error_response(path: str, status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    if path.startswith("/v1/"):
        code = "model_not_found" if status == 404 else None
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                            status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of a request, or a 400 in the caller's dialect."""
    try:
        body = await request.json()
    except ValueError:
        raise APIError(400, "invalid JSON in request body") from None
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object")
    return body


def _model(registry: Registry, body: dict[str, Any], kind: str | None = None) -> ServedModel:
    name = body.get("model") or body.get("name")
    if not name:
        raise APIError(400, "model is required")
    try:
        model = registry.get(str(name))
    except ModelNotFound as exc:
        raise APIError(404, str(exc), "not_found_error") from None
    if kind and model.kind != kind:
        raise APIError(400, f'"{name}" does not support {"embeddings" if kind == "embedding" else "generate"}')
    return model


def _texts(value: Any, field: str) -> tuple[list[str], bool]:
    """Normalize an input field to a list of strings; the flag says it was a single string."""
    if isinstance(value, str):
        return [value], True
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), False
    raise APIError(400, f"{field} must be a string or a list of strings")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _embed(model: ServedModel, texts: list[str], truncate: bool, dimensions: Any):
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)):
        raise APIError(400, "dimensions must be an integer")
    try:
        vectors, tokens = model.embed(texts, truncate=truncate, dimensions=dimensions)
    except InputTooLong as exc:
        raise APIError(400, str(exc)) from None
    except ValueError as exc:
        raise APIError(400, str(exc)) from None
    if texts:
        metrics.INPUTS_EMBEDDED.labels(model.name).inc(len(texts))
        metrics.TOKENS.labels(model.name).inc(tokens)
        metrics.MODEL_CALLS.labels(model.name).inc()
    return vectors, tokens


def _model_entry(m: ServedModel) -> dict[str, Any]:
    return {"name": m.name, "model": m.name, "modified_at": m.modified_at, "size": m.size,
            "digest": m.digest, "details": m.details()}


def _chat_prompt(model: ServedModel, messages: list[dict[str, Any]], system: str | None = None) -> str:
    """Render messages with the tokenizer's chat template, or a plain transcript without one."""
    _, tokenizer = model.generator()
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.get("role", "user"), "content": m.get("content") or ""} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise APIError(400, "messages must be a list of objects")
    return messages


def _ndjson(parts: Iterator[dict[str, Any]]) -> StreamingResponse:
    return StreamingResponse((json.dumps(p) + "\n" for p in parts), media_type="application/x-ndjson")


def _pieces(text: str) -> list[str]:
    """Split generated text into word-sized pieces for streaming."""
    out, word = [], ""
    for ch in text:
        word += ch
        if ch.isspace():
            out.append(word)
            word = ""
    return out + ([word] if word else [])


def create_app(registry: Registry) -> FastAPI:
    """Build the FastAPI application serving ``registry``."""
    app = FastAPI(title="pgweave serve", version=OLLAMA_VERSION, docs_url="/docs", redoc_url=None)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # counted, then handled by the 500 handler
            metrics.REQUESTS.labels(request.url.path, "500").inc()
            raise
        if request.url.path != "/metrics":
            metrics.REQUESTS.labels(request.url.path, str(response.status_code)).inc()
            metrics.LATENCY.labels(request.url.path).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return _error_response(request.url.path, exc.status, exc.message, exc.kind)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return _error_response(request.url.path, 400, str(exc.errors()[:1]))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error_response(request.url.path, exc.status_code, str(exc.detail))

    @app.get("/", response_class=PlainTextResponse)
    @app.head("/", response_class=PlainTextResponse)
    async def root():
        return "Ollama is running"

    @app.get("/api/version")
    async def version():
        return {"version": OLLAMA_VERSION}

    @app.get("/api/tags")
    async def tags():
        return {"models": [_model_entry(m) for m in registry.all()]}

    @app.post("/api/show")
    async def show(request: Request):
        model = _model(registry, await _body(request))
        await run_in_threadpool(model.embedder if model.kind == "embedding" else model.generator)
        arch = model.family
        info: dict[str, Any] = {"general.architecture": arch, "general.parameter_count": model.parameter_count(),
                                f"{arch}.context_length": model.context_length}
        if model.kind == "embedding":
            info[f"{arch}.embedding_length"] = model.dimensions
        return {"modelfile": f"FROM {model.path}\n", "parameters": "", "template": "{{ .Prompt }}",
                "details": model.details(), "model_info": info, "modified_at": model.modified_at,
                "capabilities": ["embedding"] if model.kind == "embedding" else ["completion"]}

    @app.get("/api/ps")
    async def ps():
        expires = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        return {"models": [{**_model_entry(m), "expires_at": expires, "size_vram": 0}
                           for m in registry.loaded()]}

    @app.post("/api/embed")
    async def embed(request: Request):
        body = await _body(request)
        model = _model(registry, body, "embedding")
        texts, _ = _texts(body.get("input", []), "input")
        start = time.perf_counter()
        vectors, tokens = await run_in_threadpool(_embed, model, texts, body.get("truncate", True) is not False,
                                                  body.get("dimensions"))
        return {"model": body["model"], "embeddings": vectors, "total_duration": _ns(time.perf_counter() - start),
                "load_duration": 0, "prompt_eval_count": tokens}

    @app.post("/api/embeddings")
    async def embeddings_legacy(request: Request):
        body = await _body(request)
        model = _model(registry, body, "embedding")
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise APIError(400, "prompt must be a string")
        vectors, _ = await run_in_threadpool(_embed, model, [prompt], True, None)
        return {"embedding": vectors[0]}

    @app.post("/api/generate")
    async def generate(request: Request):
        body = await _body(request)
        model = _model(registry, body, "generate")
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise APIError(400, "prompt must be a string")
        if body.get("system"):
            prompt = f"{body['system']}\n{prompt}"
        start = time.perf_counter()
        out = await run_in_threadpool(model.generate, prompt, body.get("options") or {})
        metrics.TOKENS.labels(model.name).inc(out["prompt_tokens"] + out["completion_tokens"])
        final = {"model": body["model"], "created_at": _now(), "response": out["text"], "done": True,
                 "done_reason": out["done_reason"], "context": [], "total_duration": _ns(time.perf_counter() - start),
                 "load_duration": 0, "prompt_eval_count": out["prompt_tokens"], "prompt_eval_duration": 0,
                 "eval_count": out["completion_tokens"], "eval_duration": 0}
        if body.get("stream", True) is False:
            return final
        parts = [{"model": body["model"], "created_at": _now(), "response": p, "done": False}
                 for p in _pieces(out["text"])]
        return _ndjson(iter(parts + [{**final, "response": ""}]))

    @app.post("/api/chat")
    async def chat(request: Request):
        body = await _body(request)
        model = _model(registry, body, "generate")
        messages = _messages(body)
        start = time.perf_counter()
        prompt = await run_in_threadpool(_chat_prompt, model, messages)
        out = await run_in_threadpool(model.generate, prompt, body.get("options") or {})
        metrics.TOKENS.labels(model.name).inc(out["prompt_tokens"] + out["completion_tokens"])
        message = {"role": "assistant", "content": out["text"]}
        final = {"model": body["model"], "created_at": _now(), "message": message, "done": True,
                 "done_reason": out["done_reason"], "total_duration": _ns(time.perf_counter() - start),
                 "load_duration": 0, "prompt_eval_count": out["prompt_tokens"], "prompt_eval_duration": 0,
                 "eval_count": out["completion_tokens"], "eval_duration": 0}
        if body.get("stream", True) is False:
            return final
        parts = [{"model": body["model"], "created_at": _now(),
                  "message": {"role": "assistant", "content": p}, "done": False} for p in _pieces(out["text"])]
        return _ndjson(iter(parts + [{**final, "message": {"role": "assistant", "content": ""}}]))

    @app.post("/v1/embeddings")
    async def openai_embeddings(request: Request):
        body = await _body(request)
        model = _model(registry, body, "embedding")
        raw = body.get("input")
        if isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
            raw = [model.embedder().tokenizer.decode(raw, skip_special_tokens=True)]
        elif isinstance(raw, list) and raw and all(isinstance(t, list) for t in raw):
            raw = [model.embedder().tokenizer.decode(t, skip_special_tokens=True) for t in raw]
        texts, _ = _texts(raw, "input")
        vectors, tokens = await run_in_threadpool(_embed, model, texts, True, body.get("dimensions"))
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise APIError(400, "encoding_format must be float or base64")

        def encode(v: list[float]):
            return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if fmt == "base64" else v

        return {"object": "list", "model": body["model"],
                "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/chat/completions")
    async def openai_chat(request: Request):
        body = await _body(request)
        model = _model(registry, body, "generate")
        messages = _messages(body)
        options = {k: body[k] for k in ("temperature", "top_p", "seed", "stop") if body.get(k) is not None}
        if body.get("max_tokens") or body.get("max_completion_tokens"):
            options["num_predict"] = body.get("max_completion_tokens") or body.get("max_tokens")
        prompt = await run_in_threadpool(_chat_prompt, model, messages)
        out = await run_in_threadpool(model.generate, prompt, options)
        metrics.TOKENS.labels(model.name).inc(out["prompt_tokens"] + out["completion_tokens"])
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        finish = "length" if out["done_reason"] == "length" else "stop"
        if body.get("stream"):
            def events():
                for p in _pieces(out["text"]):
                    chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                             "choices": [{"index": 0, "delta": {"role": "assistant", "content": p}, "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                end = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                yield f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        return {"id": cid, "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": out["text"]},
                             "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": out["prompt_tokens"], "completion_tokens": out["completion_tokens"],
                          "total_tokens": out["prompt_tokens"] + out["completion_tokens"]}}

    def _openai_model(m: ServedModel) -> dict[str, Any]:
        created = int(datetime.fromisoformat(m.modified_at).timestamp())
        return {"id": m.name.removesuffix(":latest"), "object": "model", "created": created, "owned_by": "library"}

    @app.get("/v1/models")
    async def openai_models():
        return {"object": "list", "data": [_openai_model(m) for m in registry.all()]}

    @app.get("/v1/models/{name:path}")
    async def openai_model(name: str):
        return _openai_model(_model(registry, {"model": name}))

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
