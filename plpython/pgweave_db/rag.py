"""RAG: the prompt built from retrieved sources, and the chat model's answer.

The sources are formatted the way they were embedded (the vectorizer's formatting template);
the answer comes from any chat model through the provider modules, by default the
vectorizer's own provider and host.
"""

from __future__ import annotations

import json
from typing import Any

from . import formatting, ollama, openai
from .errors import fail
from .query_cache import vectorizer_config

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. Cite the sources "
    "you use as [1], [2], and so on. If the sources do not contain the answer, say that you "
    "do not know.")


def _text(value: Any) -> str:
    """A JSON value the way PostgreSQL's ::text shows it (what formatting templates saw)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def rag_prompt(vectorizer_id: int, question: str, hits_json: str) -> str:
    """The user message of a RAG call: the numbered sources, formatted like they were
    embedded (the vectorizer's formatting template), then the question."""
    _, config = vectorizer_config(vectorizer_id)
    blocks = []
    for hit in json.loads(hits_json or "[]"):
        row = {k: _text(v) for k, v in (hit.get("row") or {}).items()}
        text = formatting.format_chunk(config.get("formatting"), hit["chunk"], row)
        blocks.append(f"[{hit['n']}] {text}")
    sources = "\n\n".join(blocks) if blocks else "(no sources found)"
    return f"Sources:\n\n{sources}\n\nQuestion: {question}"


def chat(vectorizer_id: int, model: str, implementation: str | None, base_url: str | None,
         api_key_name: str | None, messages: list[dict], options: Any) -> str | None:
    """One chat completion; by default the vectorizer's provider and host answer."""
    _, config = vectorizer_config(vectorizer_id)
    emb = config["embedding"]
    implementation = implementation or emb.get("implementation")
    if implementation == emb.get("implementation"):  # same provider: same host and key
        base_url = base_url or emb.get("base_url")
        api_key_name = api_key_name or emb.get("api_key_name")
    if implementation == "ollama":
        response = ollama.chat(model, messages, base_url, None, options)
        return (response.get("message") or {}).get("content")
    if implementation == "openai":
        params = ollama.json_arg(options, "options", dict) or {}
        response = openai.chat_complete(model, messages, None, api_key_name, base_url, **params)
        choices = response.get("choices") or [{}]
        return (choices[0].get("message") or {}).get("content")
    fail(f"unknown chat implementation {implementation!r}", sqlstate="22023",
         hint="pass implementation => 'ollama' or 'openai'")


def rag_answer(vectorizer_id: int, model: str, implementation: str | None, base_url: str | None,
               api_key_name: str | None, system_prompt: str | None, prompt: str,
               options: Any) -> str | None:
    """Ask a chat model the RAG prompt under the system prompt (the default one unless given)."""
    messages = [{"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT},
                {"role": "user", "content": prompt}]
    return chat(vectorizer_id, model, implementation, base_url, api_key_name, messages, options)
