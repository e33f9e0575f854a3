"""Call any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama's /v1, OpenAI)."""

from __future__ import annotations

from typing import Any, Sequence

from . import http, secrets, settings
from .errors import fail
from .ollama import _add_optional, chat_messages, json_arg

DEFAULT_KEY_NAME = "OPENAI_API_KEY"


def _unreachable_hint(base_url: str) -> str:
    return ("start an OpenAI-compatible server there (e.g. `pgweave serve`, whose /v1 routes "
            "answer), or point the setting ai.openai_base_url (or the base_url argument) at one, "
            "e.g. SET ai.openai_base_url = 'http://localhost:11434/v1'")


def _call(base_url: str, method: str, path: str, key: str | None, payload: dict | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return http.call(method, base_url + path, payload=payload, headers=headers,
                     unreachable_hint=_unreachable_hint(base_url), secret=key,
                     models_hint=lambda: _available_models_hint(base_url, key))


def _available_models_hint(base_url: str, key: str | None) -> str:
    try:
        names = sorted(m.get("id") or "" for m in _call(base_url, "GET", "/models", key).get("data", []))
    except Exception:  # the hint must never hide the original error
        names = []
    return ("available models: " + ", ".join(names)) if names else "check the model name"


def _key(api_key: str | None, api_key_name: str | None) -> str | None:
    return secrets.resolve(api_key, api_key_name or DEFAULT_KEY_NAME)


def embed(model: str, inputs: Sequence[str], api_key: str | None = None,
          api_key_name: str | None = None, dimensions: int | None = None,
          user: str | None = None, base_url: str | None = None) -> list[list[float]]:
    """Embed all ``inputs`` in one /embeddings request; return vectors in input order."""
    if not model:
        fail("model must not be NULL or empty", hint="name a model, e.g. 'text-embedding-3-small'",
             sqlstate="22004")
    if dimensions is not None and dimensions < 1:
        fail(f"dimensions must be positive, got {dimensions}", sqlstate="22023",
             hint="omit dimensions to get the model's full size")
    base_url = settings.openai_base_url(base_url)
    payload: dict[str, Any] = {"model": model, "input": list(inputs), "encoding_format": "float"}
    _add_optional(payload, dimensions=dimensions, user=user)
    data = _call(base_url, "POST", "/embeddings", _key(api_key, api_key_name), payload).get("data") or []
    if len(data) != len(inputs):
        fail(f"{base_url}/embeddings returned {len(data)} embeddings for {len(inputs)} inputs",
             hint="the server is not OpenAI-compatible; check ai.openai_base_url")
    return [item["embedding"] for item in sorted(data, key=lambda d: d.get("index", 0))]


def chat_complete(model: str, messages: Any, api_key: str | None = None,
                  api_key_name: str | None = None, base_url: str | None = None,
                  **params: Any) -> dict:
    """One non-streaming /chat/completions call; return the response object."""
    if not model:
        fail("model must not be NULL or empty", sqlstate="22004", hint="name a chat model")
    base_url = settings.openai_base_url(base_url)
    payload: dict[str, Any] = {"model": model, "messages": chat_messages(messages), "stream": False}
    for name in ("tools", "stop"):
        if isinstance(params.get(name), str):
            params[name] = json_arg(params[name], name, (list, str))
    for name in ("tool_choice", "response_format", "logit_bias"):
        if params.get(name) is not None:
            params[name] = json_arg(params[name], name, (dict, str))
    _add_optional(payload, **params)
    return _call(base_url, "POST", "/chat/completions", _key(api_key, api_key_name), payload)


def list_models(api_key: str | None = None, api_key_name: str | None = None,
                base_url: str | None = None) -> list[dict[str, Any]]:
    """Return /models' list."""
    base_url = settings.openai_base_url(base_url)
    return _call(base_url, "GET", "/models", _key(api_key, api_key_name)).get("data", [])
