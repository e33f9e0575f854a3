"""Call any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama's /v1, OpenAI)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import plpy

from . import http, secrets, settings, vectors
from .errors import fail
from .ollama import _add_optional, chat_messages, json_arg

DEFAULT_KEY_NAME = "OPENAI_API_KEY"


def _unreachable_hint(explicit: bool) -> str:
    """What to do when no server answers; ``explicit`` when the call named its base_url."""
    start = "start an OpenAI-compatible server there (e.g. `pgweave serve`, whose /v1 routes answer)"
    if explicit:  # the settings do not apply to a call that names its base_url
        return (start + ", or pass a base_url argument that points at a running one (the setting "
                "ai.openai_base_url does not apply to a call that names its base_url)")
    return (start + ", or point the setting ai.openai_base_url (or the base_url argument) at one, "
            "e.g. SET ai.openai_base_url = 'http://localhost:11434/v1'")


def _send(url: str, explicit: bool, method: str, path: str, key: str | None,
          payload: dict | None = None, quick: bool = False) -> Callable[[], http.Reply]:
    """Send a request to ``path`` on ``url`` (settings.openai_base_url's answer; ``explicit``:
    the call named its base_url) now; the returned function waits for its reply and returns it
    when successful."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    sent = http.send(method, url + path, json=payload, headers=headers, quick=quick,
                     unreachable_hint=_unreachable_hint(explicit))
    return lambda: http.checked(http.receive(sent), url + path, payload,
                                lambda: _available_models_hint(url, key), key)


def _call(base_url: str | None, method: str, path: str, key: str | None,
          payload: dict | None = None, quick: bool = False) -> Any:
    """Call ``path`` on the base_url argument (or the configured one); return the JSON object."""
    url = settings.openai_base_url(base_url)
    return http.json_body(_send(url, bool(base_url), method, path, key, payload, quick)(), url + path)


def _data(body: dict, base_url: str | None) -> list[dict]:
    """The "data" array of a reply: a list of objects, else a clear error."""
    data = body.get("data") or []
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        http.malformed(settings.openai_base_url(base_url), 'a "data" field that is not a list of objects')
    return data


def _available_models_hint(base_url: str, key: str | None) -> str:
    """List the models the server offers, for an unknown-model error."""
    try:
        names = sorted(m.get("id") or "" for m in _data(_call(base_url, "GET", "/models", key), base_url))
    except Exception:  # the hint must never hide the original error
        names = []
    return ("available models: " + ", ".join(names)) if names else "check the model name"


def _key(api_key: str | None, api_key_name: str | None) -> str | None:
    return secrets.resolve(api_key, api_key_name or DEFAULT_KEY_NAME)


def embed(model: str, inputs: Sequence[str], api_key: str | None = None,
          api_key_name: str | None = None, dimensions: int | None = None,
          user: str | None = None, base_url: str | None = None) -> list[str]:
    """Embed all ``inputs`` in one /embeddings request; return pgvector literals in input order."""
    return embed_later(model, inputs, api_key, api_key_name, dimensions, user, base_url)()


def embed_later(model: str, inputs: Sequence[str], api_key: str | None = None,
                api_key_name: str | None = None, dimensions: int | None = None,
                user: str | None = None, base_url: str | None = None,
                verify: bool = True) -> Callable[[], list[str]]:
    """Send an /embeddings request for all ``inputs`` now; the returned function waits for it and
    returns pgvector literals in input order (``verify``: see vectors.openai_literals)."""
    if not model:
        fail("model must not be NULL or empty", hint="name a model, e.g. 'text-embedding-3-small'",
             sqlstate="22004")
    if dimensions is not None and dimensions < 1:
        fail(f"dimensions must be positive, got {dimensions}", sqlstate="22023",
             hint="omit dimensions to get the model's full size")
    payload: dict[str, Any] = {"model": model, "input": list(inputs), "encoding_format": "float"}
    _add_optional(payload, dimensions=dimensions, user=user)
    url = settings.openai_base_url(base_url)
    reply_of = _send(url, bool(base_url), "POST", "/embeddings", _key(api_key, api_key_name), payload)

    def literals() -> list[str]:
        reply = reply_of()
        fast = vectors.openai_literals(reply.content, len(inputs), verify)
        if fast is not None:
            return fast
        data = _data(http.json_body(reply, url), base_url)  # not the plain shape: decode, check, say
        if len(data) != len(inputs):
            fail(f"{http.origin(url)}/embeddings returned {len(data)} embeddings for {len(inputs)} inputs",
                 hint="the server is not OpenAI-compatible; check ai.openai_base_url")
        ordered = sorted(data, key=lambda d: d.get("index") if isinstance(d.get("index"), int) else 0)
        return http.vectors([item.get("embedding") for item in ordered], url)

    return literals


def chat_complete(model: str, messages: Any, api_key: str | None = None,
                  api_key_name: str | None = None, base_url: str | None = None,
                  **params: Any) -> dict:
    """One non-streaming /chat/completions call; return the response object."""
    if not model:
        fail("model must not be NULL or empty", sqlstate="22004", hint="name a chat model")
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
    return _data(_call(base_url, "GET", "/models", _key(api_key, api_key_name)), base_url)


def model_warning(embedding: dict) -> str | None:
    """For create_vectorizer: a warning when the reachable server does not offer the model.

    None when it does, and None when the server cannot be asked (offline, no key yet).
    """
    model, base_url = embedding.get("model"), embedding.get("base_url")
    try:
        key = _key(None, embedding.get("api_key_name"))
        names = sorted(m.get("id") or "" for m in _data(_call(base_url, "GET", "/models", key, quick=True),
                                                      base_url))
    except plpy.Error as exc:
        return http.refusal_warning(exc)
    if not model or model in names:
        return None
    return (f"the model server at {settings.openai_base_url(base_url)} does not offer model {model!r} "
            f"(it offers: {', '.join(names) or 'none'}); nothing will be embedded until it does: "
            "pick one it offers, or load the model on that server")
