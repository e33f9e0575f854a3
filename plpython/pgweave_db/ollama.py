"""Call Ollama (or `pgweave serve`) from inside PostgreSQL."""

from __future__ import annotations

import json
from typing import Any, Sequence

from . import http, settings
from .errors import fail


def _unreachable_hint(host: str) -> str:
    port = host.rsplit(":", 1)[-1]
    port = port if port.isdigit() else "11434"
    return (f"start a model server there (`pgweave serve --port {port}` or Ollama), "
            "or point the setting ai.ollama_host (or the host argument) at a running one: "
            "SET ai.ollama_host = 'http://localhost:11434' for this session, ALTER DATABASE ... "
            "SET ai.ollama_host = '...' for every session, the background job's included")


def _call(host: str, method: str, path: str, payload: dict | None = None) -> Any:
    return http.call(method, host + path, payload=payload, unreachable_hint=_unreachable_hint(host),
                     models_hint=lambda: _available_models_hint(host))


def _available_models_hint(host: str) -> str:
    """List the models the server has, for an unknown-model error."""
    try:
        names = sorted(m.get("name") or "" for m in list_models(host))
    except Exception:  # the hint must never hide the original error
        names = []
    if names:
        return "available models: " + ", ".join(names) + " (pull another with `ollama pull NAME`)"
    return "pull the model with `ollama pull NAME`, or serve it with `pgweave serve`"


def _require_model(model: str | None) -> None:
    if not model:
        fail("model must not be NULL or empty", hint="name a model, e.g. 'all-minilm'",
             sqlstate="22004")


def list_models(host: str | None) -> list[dict[str, Any]]:
    """Return /api/tags' model list."""
    host = settings.ollama_host(host)
    return _call(host, "GET", "/api/tags").get("models", [])


def running_models(host: str | None) -> list[dict[str, Any]]:
    """Return /api/ps' list of loaded models."""
    host = settings.ollama_host(host)
    return _call(host, "GET", "/api/ps").get("models", [])


def embed(model: str, inputs: Sequence[str], host: str | None = None, keep_alive: str | None = None,
          options: str | dict | None = None, truncate: bool = True) -> list[list[float]]:
    """Embed all ``inputs`` in one /api/embed request; return one vector per input."""
    _require_model(model)
    host = settings.ollama_host(host)
    payload: dict[str, Any] = {"model": model, "input": list(inputs), "truncate": truncate}
    _add_optional(payload, keep_alive=keep_alive, options=json_arg(options, "embedding_options", dict))
    embeddings = _call(host, "POST", "/api/embed", payload).get("embeddings") or []
    if len(embeddings) != len(inputs):
        fail(f"{host}/api/embed returned {len(embeddings)} embeddings for {len(inputs)} inputs",
             hint="the server is not Ollama-compatible; check ai.ollama_host")
    return embeddings


def generate(model: str, prompt: str, host: str | None = None, images: list | None = None,
             keep_alive: str | None = None, options: Any = None, system: str | None = None,
             template: str | None = None, context: list | None = None, format: Any = None) -> dict:
    """One non-streaming /api/generate call; return Ollama's response object."""
    _require_model(model)
    if prompt is None:
        fail("prompt must not be NULL", hint="pass the text to complete", sqlstate="22004")
    host = settings.ollama_host(host)
    payload: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False}
    _add_optional(payload, images=images, keep_alive=keep_alive, system=system, template=template,
                  context=context, options=json_arg(options, "options", dict),
                  format=json_arg(format, "format", (dict, str)))
    return _call(host, "POST", "/api/generate", payload)


def chat(model: str, messages: Any, host: str | None = None, keep_alive: str | None = None,
         options: Any = None, tools: Any = None, format: Any = None) -> dict:
    """One non-streaming /api/chat call; return Ollama's response object."""
    _require_model(model)
    host = settings.ollama_host(host)
    payload: dict[str, Any] = {"model": model, "messages": chat_messages(messages), "stream": False}
    _add_optional(payload, keep_alive=keep_alive, options=json_arg(options, "chat_options", dict),
                  tools=json_arg(tools, "tools", list), format=json_arg(format, "format", (dict, str)))
    return _call(host, "POST", "/api/chat", payload)


def chat_messages(messages: Any) -> list[dict]:
    """Validate a chat transcript: a JSON array of objects with a role (shared with OpenAI)."""
    parsed = json_arg(messages, "messages", list)
    if not parsed:
        fail("messages must be a non-empty JSON array",
             hint="""pass e.g. '[{"role": "user", "content": "Hello"}]'::jsonb""", sqlstate="22023")
    for i, message in enumerate(parsed):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            fail(f"messages[{i}] is not an object with a \"role\"",
                 hint="""each message looks like {"role": "user", "content": "Hello"}""",
                 sqlstate="22023")
    return parsed


def json_arg(value: Any, name: str, kind: type | tuple) -> Any:
    """Decode a jsonb argument (JSON text in PL/Python) and check its JSON type; None stays None."""
    if value is None:
        return None
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, kind):
        wanted = {dict: "a JSON object", list: "a JSON array"}.get(kind, "a JSON object or string")
        fail(f"{name} must be {wanted}, got {type(parsed).__name__}", sqlstate="22023",
             hint=f"check the {name} argument")
    return parsed


def _add_optional(payload: dict, **fields: Any) -> None:
    payload.update({k: v for k, v in fields.items() if v is not None})
