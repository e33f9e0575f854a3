"""The HTTP API: Ollama's routes and the OpenAI-compatible /v1 routes, on FastAPI."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import catalog, metrics
from .models import ModelNotFound, Registry, ServedModel, default_registry

# A release that has every field we implement (truncate, dimensions), so version-gating clients use them.
OLLAMA_VERSION = "0.12.6"
# Models stay loaded for the server's lifetime; Ollama reports keep_alive < 0 as a far-future expiry.
_NEVER = "2318-08-23T00:00:00Z"


class APIError(Exception):
    """An error answered in the caller's dialect (Ollama or OpenAI)."""

    def __init__(self, status: int, message: str, kind: str | None = None):
        """Answer ``status`` with ``message``; ``kind`` overrides the OpenAI error type."""
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _error_response(path: str, status: int, message: str, kind: str | None = None) -> JSONResponse:
    """An error body: ``{"error": msg}`` for Ollama routes, OpenAI's error object under /v1."""
    if path.startswith("/v1/"):
        # Ollama's openai.NewError: the type follows the status, code is null.
        kind = kind or {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                            status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of a request, or a 400 in the caller's dialect."""
    raw = await request.body()
    if not raw.strip():
        raise APIError(400, "missing request body")  # Ollama's wording
    try:
        # Parsed whatever the Content-Type: `curl -d` sends form-encoded JSON, and Ollama accepts it.
        body = json.loads(raw)
    except ValueError as exc:
        raise APIError(400, f"invalid JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object")
    return body


def _model(registry: Registry, body: dict[str, Any], kind: str | None = None) -> ServedModel:
    """The model a request names, or a 400 (no name) / 404 (unknown) APIError."""
    name = body.get("model") or body.get("name")
    if not name or not isinstance(name, str):
        raise APIError(400, "model is required")
    try:
        model = registry.get(str(name))
    except ModelNotFound as exc:
        raise APIError(404, str(exc), "not_found_error") from None
    if kind and model.kind != kind:
        raise APIError(400, f'"{name}" does not support {"embeddings" if kind == "embedding" else "generate"}')
    return model


def _texts(value: Any) -> list[str]:
    """The inputs of an embed request as a list of strings; Ollama's 400 for anything else."""
    if value is None:
        return []
    if isinstance(value, str):
        # Ollama embeds nothing for a lone empty string (it only loads the model); [""] is embedded.
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise APIError(400, "invalid input type")


def _now() -> str:
    """Now, as Ollama's created_at."""
    return datetime.now(timezone.utc).isoformat()


def _ns(seconds: float) -> int:
    """Seconds as Ollama's nanosecond durations."""
    return int(seconds * 1e9)


def _embed(model: ServedModel, texts: list[str], truncate: bool, dimensions: Any):
    """Embed in the calling (worker) thread; return (vectors array, prompt tokens, load seconds)."""
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)):
        raise APIError(400, "dimensions must be an integer")
    load_seconds = model.ensure_loaded()
    try:
        vectors, tokens = model.embed(texts, truncate=truncate, dimensions=dimensions)
    except ValueError as exc:  # InputTooLong included: Ollama answers both with a 400
        raise APIError(400, str(exc)) from None
    if texts:
        metrics.INPUTS_EMBEDDED.labels(model.name).inc(len(texts))
        metrics.TOKENS.labels(model.name).inc(tokens)
        metrics.MODEL_CALLS.labels(model.name).inc()
    return vectors, tokens, load_seconds


def _json(content: dict[str, Any]) -> Response:
    """A JSON response without FastAPI's jsonable_encoder, which is slow on big float lists."""
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json; charset=utf-8")


def _model_entry(m: ServedModel) -> dict[str, Any]:
    """A model as /api/tags lists it."""
    return {"name": m.name, "model": m.name, "modified_at": m.modified_at, "size": m.size,
            "digest": m.digest, "details": m.details()}


def _no_format(body: dict[str, Any]) -> None:
    """Refuse structured output: a small local model cannot be held to a JSON schema here."""
    if body.get("format") or body.get("response_format"):
        raise APIError(400, "format (structured JSON output) is not supported by pgweave serve; "
                            "leave it out and parse the answer, or use Ollama")


def _generate_prompt(model: ServedModel, body: dict[str, Any]) -> str:
    """/api/generate's prompt: through the model's chat template like Ollama (unless raw), else as given."""
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise APIError(400, "prompt must be a string")
    _, tokenizer = model.generator()
    if not body.get("raw") and getattr(tokenizer, "chat_template", None):
        return _chat_prompt(model, [{"role": "user", "content": prompt}], body.get("system"))
    return f"{body['system']}\n{prompt}" if body.get("system") else prompt


def _chat_prompt(model: ServedModel, messages: list[dict[str, Any]], system: str | None = None) -> str:
    """Render messages with the tokenizer's chat template, or a plain transcript without one."""
    _, tokenizer = model.generator()
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.get("role", "user"), "content": m.get("content") or ""} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of a chat request, or a 400."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise APIError(400, "messages must be a list of objects")
    return messages


def _finish(out: dict[str, Any]) -> str:
    """OpenAI's finish_reason for a generation."""
    return "length" if out["done_reason"] == "length" else "stop"


async def _answer(model: ServedModel, prompt: str, options: dict[str, Any], stream: bool,
                  piece: Callable[[str], dict], end: Callable[[dict], dict], whole: Callable[[dict], dict],
                  sse: bool = False) -> Any:
    """Generate; the whole answer as one object, or streamed pieces as they are decoded and a closing
    object (NDJSON like Ollama, or server-sent events like OpenAI)."""
    def counted(out: dict[str, Any]) -> dict[str, Any]:
        """Count the tokens of a finished generation."""
        metrics.TOKENS.labels(model.name).inc(out["prompt_tokens"] + out["completion_tokens"])
        return out

    if not stream:
        return whole(counted(await run_in_threadpool(model.generate, prompt, options)))

    def encode(obj: dict[str, Any]) -> str:
        """One streamed object in the wire format."""
        return f"data: {json.dumps(obj)}\n\n" if sse else json.dumps(obj) + "\n"

    def lines() -> Iterator[str]:
        """The pieces as the model produces them (run by Starlette in a worker thread)."""
        try:
            for item in model.generate_stream(prompt, options):
                yield encode(piece(item) if isinstance(item, str) else end(counted(item)))
        except Exception as exc:  # noqa: BLE001 - the status line is gone; the error is the last line
            yield encode({"error": f"generation failed: {exc}"})
        if sse:
            yield "data: [DONE]\n\n"
    return StreamingResponse(lines(), media_type="text/event-stream" if sse else "application/x-ndjson")


def create_app(registry: Registry | None = None, model_dirs: list[str] | None = None) -> FastAPI:
    """Build the FastAPI application serving ``registry`` (default: all-minilm plus ``model_dirs``)."""
    registry = registry or default_registry(model_dirs)
    app = FastAPI(title="pgweave serve", version=OLLAMA_VERSION, docs_url="/docs", redoc_url=None)

    def _endpoint(request: Request) -> str:
        """The matched route's template: raw paths (/v1/models/<anything>, scans) would explode the labels."""
        route = request.scope.get("route")
        return getattr(route, "path", None) or "unmatched"

    @app.middleware("http")
    async def observe(request: Request, call_next):
        """Count and time every request except the scrapes themselves."""
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # counted, then handled by the 500 handler
            metrics.REQUESTS.labels(_endpoint(request), "500").inc()
            raise
        endpoint = _endpoint(request)
        if endpoint != "/metrics":
            metrics.REQUESTS.labels(endpoint, str(response.status_code)).inc()
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        """Our own errors, in the caller's dialect."""
        return _error_response(request.url.path, exc.status, exc.message, exc.kind)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        """FastAPI's 422s become 400 {"error": ...} like Ollama's."""
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error_response(request.url.path, 400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """Unknown routes and methods, still as an error object."""
        return _error_response(request.url.path, exc.status_code, str(exc.detail))

    @app.get("/", response_class=PlainTextResponse)
    @app.head("/", response_class=PlainTextResponse)
    async def root():
        """Ollama's liveness answer."""
        return "Ollama is running"

    @app.get("/api/version")
    @app.head("/api/version")
    async def version():
        """The Ollama version we behave like."""
        return {"version": OLLAMA_VERSION}

    @app.get("/api/tags")
    @app.head("/api/tags")
    async def tags():
        """Every served model (none is loaded for this)."""
        return {"models": [_model_entry(m) for m in registry.all()]}

    @app.post("/api/show")
    async def show(request: Request):
        """Model details, GGUF-style model_info and capabilities."""
        body = await _body(request)
        try:
            model = _model(registry, body)
        except APIError as exc:
            if exc.status == 404:  # /api/show words it differently from the inference routes
                raise APIError(404, f"model '{body.get('model') or body.get('name')}' not found") from None
            raise
        await run_in_threadpool(model.ensure_loaded)
        arch = model.family
        info: dict[str, Any] = {"general.architecture": arch, "general.basename": model.name.split(":")[0],
                                "general.parameter_count": model.parameter_count(),
                                f"{arch}.context_length": model.context_length}
        if model.kind == "embedding":
            info[f"{arch}.embedding_length"] = model.dimensions
            config = model.embedder()[0].auto_model.config
            for key, attr in (("block_count", "num_hidden_layers"), ("attention.head_count", "num_attention_heads"),
                              ("feed_forward_length", "intermediate_size"),
                              ("attention.layer_norm_epsilon", "layer_norm_eps")):
                if getattr(config, attr, None) is not None:
                    info[f"{arch}.{key}"] = getattr(config, attr)
            info[f"{arch}.attention.causal"] = False
        modelfile = (f'# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, '
                     f"replace FROM with:\n# FROM {model.name}\n\nFROM {model.path}\nTEMPLATE {{{{ .Prompt }}}}\n")
        return {"modelfile": modelfile, "parameters": f"{'num_ctx':<30} {model.context_length}",
                "template": "{{ .Prompt }}", "details": model.details(), "model_info": info,
                "modified_at": model.modified_at,
                "capabilities": ["embedding"] if model.kind == "embedding" else ["completion"]}

    @app.post("/api/pull")
    async def pull(request: Request):
        """Ollama's pull: make a catalog model present in the models folder, streaming status lines."""
        body = await _body(request)
        name = body.get("model") or body.get("name")
        if not name or not isinstance(name, str):
            raise APIError(400, "model is required")
        if catalog.find(name) is None:
            raise APIError(404, f'model "{name}" is not in the catalog; models that can be pulled: '
                                f"{', '.join(catalog.pullable())}")
        lines = catalog.pull(name, registry.home)
        if body.get("stream", True) is False:
            try:
                await run_in_threadpool(lambda: [*lines])
            except catalog.PullError as exc:
                raise APIError(500, str(exc)) from None
            registry.refresh()
            return {"status": "success"}

        def stream() -> Iterator[str]:
            """Each status line as it happens; a failure is the last line, as Ollama sends it."""
            try:
                for line in lines:
                    if line["status"] == "success":
                        registry.refresh()
                    yield json.dumps(line) + "\n"
            except catalog.PullError as exc:
                yield json.dumps({"error": str(exc)}) + "\n"
        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.get("/api/ps")
    async def ps():
        """The models in memory; they are never unloaded, hence the far-future expiry."""
        return {"models": [{**_model_entry(m), "expires_at": _NEVER, "size_vram": 0,
                            "context_length": m.context_length} for m in registry.loaded()]}

    @app.post("/api/embed")
    async def embed(request: Request):
        """Ollama's batch embedding: all inputs in one model call, unit vectors."""
        start = time.perf_counter()
        body = await _body(request)
        if not body.get("model"):
            raise APIError(400, "model is required")
        texts = _texts(body.get("input"))  # Ollama checks the input before looking up the model
        model = _model(registry, body, "embedding")
        vectors, tokens, load = await run_in_threadpool(_embed, model, texts, body.get("truncate", True) is not False,
                                                        body.get("dimensions"))
        return _json({"model": body["model"], "embeddings": vectors.tolist(),
                      "total_duration": _ns(time.perf_counter() - start), "load_duration": _ns(load),
                      "prompt_eval_count": tokens})

    @app.post("/api/embeddings")
    async def embeddings_legacy(request: Request):
        """Ollama's deprecated single-prompt endpoint; an empty prompt only loads the model."""
        body = await _body(request)
        model = _model(registry, body, "embedding")
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise APIError(400, "prompt must be a string")
        vectors, _, _ = await run_in_threadpool(_embed, model, [prompt] if prompt else [], True, None)
        return _json({"embedding": vectors[0].tolist() if prompt else []})

    @app.post("/api/generate")
    async def generate(request: Request):
        """Ollama's completion endpoint, on a local causal LM."""
        body = await _body(request)
        model = _model(registry, body, "generate")
        _no_format(body)
        start = time.perf_counter()
        prompt = await run_in_threadpool(_generate_prompt, model, body)

        def final(out: dict[str, Any]) -> dict[str, Any]:
            """The closing object: the whole text when not streamed, empty after the pieces."""
            return {"model": body["model"], "created_at": _now(), "response": out["text"], "done": True,
                    "done_reason": out["done_reason"], "context": [],
                    "total_duration": _ns(time.perf_counter() - start), "load_duration": 0,
                    "prompt_eval_count": out["prompt_tokens"], "prompt_eval_duration": 0,
                    "eval_count": out["completion_tokens"], "eval_duration": 0}

        def piece(text: str) -> dict[str, Any]:
            """One streamed piece."""
            return {"model": body["model"], "created_at": _now(), "response": text, "done": False}

        return await _answer(model, prompt, body.get("options") or {}, body.get("stream", True) is not False,
                             piece, lambda out: {**final(out), "response": ""}, final)

    @app.post("/api/chat")
    async def chat(request: Request):
        """Ollama's chat endpoint, on a local causal LM."""
        body = await _body(request)
        model = _model(registry, body, "generate")
        messages = _messages(body)
        _no_format(body)
        start = time.perf_counter()
        prompt = await run_in_threadpool(_chat_prompt, model, messages)

        def final(out: dict[str, Any]) -> dict[str, Any]:
            """The closing object: the whole message when not streamed, empty after the pieces."""
            return {"model": body["model"], "created_at": _now(),
                    "message": {"role": "assistant", "content": out["text"]}, "done": True,
                    "done_reason": out["done_reason"], "total_duration": _ns(time.perf_counter() - start),
                    "load_duration": 0, "prompt_eval_count": out["prompt_tokens"], "prompt_eval_duration": 0,
                    "eval_count": out["completion_tokens"], "eval_duration": 0}

        def piece(text: str) -> dict[str, Any]:
            """One streamed piece."""
            return {"model": body["model"], "created_at": _now(),
                    "message": {"role": "assistant", "content": text}, "done": False}

        return await _answer(model, prompt, body.get("options") or {}, body.get("stream", True) is not False,
                             piece, lambda out: {**final(out), "message": {"role": "assistant", "content": ""}},
                             final)

    @app.post("/v1/embeddings")
    async def openai_embeddings(request: Request):
        """OpenAI's embeddings endpoint (the openai package asks for base64 unless told otherwise)."""
        body = await _body(request)
        fmt = (body.get("encoding_format") or "float").lower()
        if fmt not in ("float", "base64"):
            raise APIError(400, f"Invalid value for 'encoding_format' = {body['encoding_format']}. "
                                "Supported values: ['float', 'base64'].")
        raw = body.get("input")
        if raw is None or raw == []:
            raise APIError(400, "invalid input")
        # Token-id arrays are refused like Ollama does: OpenAI clients send tiktoken ids, which
        # decoded with this model's vocabulary would embed unrelated text without any error.
        texts = [raw] if isinstance(raw, str) else _texts(raw)
        model = _model(registry, body, "embedding")
        vectors, tokens, _ = await run_in_threadpool(_embed, model, texts, True, body.get("dimensions"))
        if fmt == "base64":  # little-endian float32 bytes, what the openai package decodes
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            data = vectors.tolist()
        return _json({"object": "list", "model": body["model"],
                      "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/v1/chat/completions")
    async def openai_chat(request: Request):
        """OpenAI's chat completions, on a local causal LM."""
        body = await _body(request)
        model = _model(registry, body, "generate")
        messages = _messages(body)
        _no_format(body)
        options = {k: body[k] for k in ("temperature", "top_p", "seed", "stop") if body.get(k) is not None}
        if body.get("max_tokens") or body.get("max_completion_tokens"):
            options["num_predict"] = body.get("max_completion_tokens") or body.get("max_tokens")
        prompt = await run_in_threadpool(_chat_prompt, model, messages)
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"]}

        def piece(text: str) -> dict[str, Any]:
            """One streamed delta."""
            return {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                         "finish_reason": None}]}

        def end(out: dict[str, Any]) -> dict[str, Any]:
            """The last streamed chunk: the finish reason."""
            return {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(out)}]}

        def whole(out: dict[str, Any]) -> dict[str, Any]:
            """The unstreamed completion."""
            return {"id": cid, "object": "chat.completion", "created": created, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": out["text"]},
                                 "finish_reason": _finish(out), "logprobs": None}],
                    "usage": {"prompt_tokens": out["prompt_tokens"], "completion_tokens": out["completion_tokens"],
                              "total_tokens": out["prompt_tokens"] + out["completion_tokens"]}}

        return await _answer(model, prompt, options, bool(body.get("stream")), piece, end, whole, sse=True)

    def _openai_model(m: ServedModel, name: str | None = None) -> dict[str, Any]:
        """A model as OpenAI's /v1/models lists it (Ollama uses the full name:tag as id)."""
        created = int(datetime.fromisoformat(m.modified_at).timestamp())
        return {"id": name or m.name, "object": "model", "created": created, "owned_by": "library"}

    @app.get("/v1/models")
    async def openai_models():
        """Every served model, OpenAI-style."""
        return {"object": "list", "data": [_openai_model(m) for m in registry.all()]}

    @app.get("/v1/models/{name:path}")
    async def openai_model(name: str):
        """One model, OpenAI-style; 404 in OpenAI's error shape when unknown."""
        try:
            return _openai_model(registry.get(name), name)
        except ModelNotFound:
            raise APIError(404, f"model '{name}' not found") from None

    @app.get("/metrics")
    async def prometheus():
        """Prometheus scrape endpoint (the server's own registry, not the process-global one)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
