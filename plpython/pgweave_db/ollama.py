"""Call Ollama (or `pgweave serve`) from inside PostgreSQL."""

from __future__ import annotations

import json
from typing import Any, Sequence

from . import http, settings
from .errors import fail


def _unreachable_hint(host: str) -> str:
    return (f"start a model server there (`pgweave serve --port {_port(host)}` or Ollama), "
            "or point the setting ai.ollama_host (or the host argument) at a running one, "
            "e.g. SET ai.ollama_host = 'http://localhost:11434'")


def _port(host: str) -> str:
    tail = host.rsplit(":", 1)[-1]
    return tail if tail.isdigit() else "11434"


def _post(host: str, path: str, payload: dict) -> dict:
    """POST to Ollama and return the JSON body, or raise an error naming the problem."""
    response = http.request("POST", host + path, json=payload, unreachable_hint=_unreachable_hint(host))
    if response.status_code == 404:
        model = payload.get("model")
        fail(f"model {model!r} is not available on {host}",
             detail=http.error_message(response),
             hint=_available_models_hint(host), sqlstate="42704")
    if response.status_code >= 400:
        fail(f"{host}{path} answered {response.status_code}: {http.error_message(response)}",
             sqlstate="22000" if response.status_code < 500 else "58000")
    return response.json()


def _available_models_hint(host: str) -> str:
    """List the models the server has, for an unknown-model error."""
    try:
        names = [m.get("name") for m in list_models(host)]
    except Exception:  # the hint must never hide the original error
        names = []
    if names:
        return "available models: " + ", ".join(sorted(n for n in names if n)) + \
            " (pull another with `ollama pull NAME`)"
    return "pull the model with `ollama pull NAME`, or serve it with `pgweave serve`"


def list_models(host: str | None) -> list[dict[str, Any]]:
    """Return /api/tags' model list."""
    host = settings.ollama_host(host)
    response = http.request("GET", host + "/api/tags", unreachable_hint=_unreachable_hint(host))
    if response.status_code >= 400:
        fail(f"{host}/api/tags answered {response.status_code}: {http.error_message(response)}")
    return response.json().get("models", [])


def embed(model: str, inputs: Sequence[str], host: str | None = None, keep_alive: str | None = None,
          options: str | dict | None = None, truncate: bool = True) -> list[list[float]]:
    """Embed all ``inputs`` in one /api/embed request; return one vector per input."""
    if not model:
        fail("model must not be NULL or empty", hint="name a model, e.g. 'all-minilm'", sqlstate="22004")
    host = settings.ollama_host(host)
    payload: dict[str, Any] = {"model": model, "input": list(inputs), "truncate": truncate}
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    if options is not None:
        payload["options"] = _json_object(options, "embedding_options")
    body = _post(host, "/api/embed", payload)
    embeddings = body.get("embeddings") or []
    if len(embeddings) != len(inputs):
        fail(f"{host}/api/embed returned {len(embeddings)} embeddings for {len(inputs)} inputs",
             hint="the server is not Ollama-compatible; check ai.ollama_host")
    return embeddings


def _json_object(value: str | dict, name: str) -> dict:
    """Accept a jsonb argument (as text or dict) that must be a JSON object."""
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        fail(f"{name} must be a JSON object, got {type(parsed).__name__}",
             hint=f"""pass e.g. '{{"num_ctx": 512}}'::jsonb""", sqlstate="22023")
    return parsed
