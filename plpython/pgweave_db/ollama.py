"""Call Ollama (or `pgweave serve`) from inside PostgreSQL."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import plpy

from . import http, settings, vectors
from .errors import fail


def _unreachable_hint(host: str, explicit: bool) -> str:
    """What to do when no server answers at ``host``; ``explicit`` when the call named it."""
    port = host.rsplit(":", 1)[-1]
    port = port if port.isdigit() else "11434"
    start = f"start a model server there (`pgweave serve --port {port}` or Ollama)"
    if explicit:  # the settings do not apply to a call that names its host
        return (start + ", or pass a host argument that points at a running one (the setting "
                "ai.ollama_host does not apply to a call that names its host)")
    return (start + ", or point the setting ai.ollama_host (or the host argument) at a running one: "
            "SET ai.ollama_host = 'http://localhost:11434' for this session, ALTER DATABASE ... "
            "SET ai.ollama_host = '...' for every session, the background job's included")


def _send(url: str, explicit: bool, method: str, path: str, payload: dict | None = None,
          quick: bool = False) -> Callable[[], http.Reply]:
    """Send a request to ``path`` on ``url`` (settings.ollama_host's answer; ``explicit``: the
    call named its host) now; the returned function waits for its reply and returns it when
    successful."""
    sent = http.send(method, url + path, json=payload, quick=quick,
                     unreachable_hint=_unreachable_hint(url, explicit))
    return lambda: http.checked(http.receive(sent), url + path, payload, lambda: _available_models_hint(url))


def _call(host: str | None, method: str, path: str, payload: dict | None = None,
          quick: bool = False) -> Any:
    """Call ``path`` on the host argument (or the configured host); return the JSON object."""
    url = settings.ollama_host(host)
    return http.json_body(_send(url, bool(host), method, path, payload, quick)(), url + path)


def _available_models_hint(host: str) -> str:
    """List the models the server has, for an unknown-model error."""
    try:
        names = sorted(m.get("name") or "" for m in list_models(host))
    except Exception:  # the hint must never hide the original error
        names = []
    if names:
        return "available models: " + ", ".join(names) + " (pull another with `ollama pull NAME`)"
    return "pull the model with `ollama pull NAME`, or serve it with `pgweave serve`"


def model_warning(embedding: dict) -> str | None:
    """For create_vectorizer: a warning when the reachable server lacks the embedding model.

    None when the server has it, and None when no server answers (creating a vectorizer
    offline is fine: the queue waits for the server).
    """
    model, host = embedding.get("model"), embedding.get("base_url")
    try:
        names = sorted(m.get("name") or "" for m in _list(_call(host, "GET", "/api/tags", quick=True), host))
    except plpy.Error as exc:
        return http.refusal_warning(exc)
    if not model or _tagged(model) in {_tagged(n) for n in names}:
        return None
    where = settings.ollama_host(host)
    return (f"the model server at {where} has no model {model!r} (it has: {', '.join(names) or 'none'}); "
            f"nothing will be embedded until it has: run `ollama pull {model}` there (Ollama), or "
            f"serve it with `pgweave serve --model-dir {model}=PATH`, or pick one it has")


def _tagged(name: str) -> str:
    """Ollama's full model name: 'all-minilm' is 'all-minilm:latest'."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _require_model(model: str | None) -> None:
    if not model:
        fail("model must not be NULL or empty", hint="name a model, e.g. 'all-minilm'",
             sqlstate="22004")


def list_models(host: str | None) -> list[dict[str, Any]]:
    """Return /api/tags' model list."""
    return _list(_call(host, "GET", "/api/tags"), host)


def running_models(host: str | None) -> list[dict[str, Any]]:
    """Return /api/ps' list of loaded models."""
    return _list(_call(host, "GET", "/api/ps"), host)


def _list(body: dict, host: str | None) -> list[dict[str, Any]]:
    """The "models" array of a reply: a list of objects, else a clear error."""
    models = body.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        http.malformed(settings.ollama_host(host), "a \"models\" field that is not a list of objects")
    return models


def embed(model: str, inputs: Sequence[str], host: str | None = None, keep_alive: str | None = None,
          options: str | dict | None = None, truncate: bool = True) -> list[str]:
    """Embed all ``inputs`` in one /api/embed request; return one pgvector literal per input."""
    return embed_later(model, inputs, host, keep_alive, options, truncate)()


def embed_later(model: str, inputs: Sequence[str], host: str | None = None, keep_alive: str | None = None,
                options: str | dict | None = None, truncate: bool = True,
                verify: bool = True) -> Callable[[], list[str]]:
    """Send an /api/embed request for all ``inputs`` now; the returned function waits for it and
    returns one pgvector literal per input (``verify``: see vectors.ollama_literals). A caller
    may send the next request before it waits for this one."""
    _require_model(model)
    payload: dict[str, Any] = {"model": model, "input": list(inputs), "truncate": truncate}
    _add_optional(payload, keep_alive=keep_alive, options=json_arg(options, "embedding_options", dict))
    url = settings.ollama_host(host)
    reply_of = _send(url, bool(host), "POST", "/api/embed", payload)

    def literals() -> list[str]:
        reply = reply_of()
        embeddings = vectors.ollama_literals(reply.content, len(inputs), verify)
        if embeddings is None:  # not the plain shape: decode it, and say what is wrong with it
            embeddings = http.vectors(http.json_body(reply, url).get("embeddings") or [], url)
        if len(embeddings) != len(inputs):
            fail(f"{http.origin(url)}/api/embed returned {len(embeddings)} embeddings for {len(inputs)} inputs",
                 hint="the server is not Ollama-compatible; check ai.ollama_host")
        return embeddings

    return literals


def generate(model: str, prompt: str, host: str | None = None, images: list | None = None,
             keep_alive: str | None = None, options: Any = None, system: str | None = None,
             template: str | None = None, context: list | None = None, format: Any = None) -> dict:
    """One non-streaming /api/generate call; return Ollama's response object."""
    _require_model(model)
    if prompt is None:
        fail("prompt must not be NULL", hint="pass the text to complete", sqlstate="22004")
    payload: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False}
    _add_optional(payload, images=images, keep_alive=keep_alive, system=system, template=template,
                  context=context, options=json_arg(options, "options", dict),
                  format=json_arg(format, "format", (dict, str)))
    return _call(host, "POST", "/api/generate", payload)


def chat(model: str, messages: Any, host: str | None = None, keep_alive: str | None = None,
         options: Any = None, tools: Any = None, format: Any = None) -> dict:
    """One non-streaming /api/chat call; return Ollama's response object."""
    _require_model(model)
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
