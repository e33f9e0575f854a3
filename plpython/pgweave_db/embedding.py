"""One embedding request with a vectorizer's embedding config: the one provider dispatch.

The engine embeds chunks and search embeds queries through here, so both always come from
the same model, host and dimensions.
"""

from __future__ import annotations

import re

import plpy

from . import ollama, openai, vectors
from .errors import fail

IMPLEMENTATIONS = ("ollama", "openai")


_PREFIX = re.compile(r"^(?:(?:plpy|spiexceptions)\.\w+: )+")


def message(exc: BaseException) -> str:
    """An error's text without PL/Python's class prefixes (nested calls stack them)."""
    return _PREFIX.sub("", str(exc) or type(exc).__name__)


def embed_request(emb: dict, texts: list[str], vectorizer_name: str, verify: bool = True) -> list[str]:
    """Embed texts in one request; return pgvector literals, their dimensions checked
    (``verify`` False: numbers unchecked, for a caller whose cast reports them, the engine)."""
    dims = int(emb["dimensions"])
    try:
        if emb["implementation"] == "ollama":
            got = ollama.embed(emb["model"], texts, emb.get("base_url"), emb.get("keep_alive"),
                               emb.get("options"), verify=verify)
        elif emb["implementation"] == "openai":
            got = openai.embed(emb["model"], texts, None, emb.get("api_key_name"),
                               emb.get("dimensions"), emb.get("user"), emb.get("base_url"), verify=verify)
        else:
            fail(f"unknown embedding implementation {emb['implementation']!r}", sqlstate="22023",
                 hint="use ai.embedding_ollama(...) or ai.embedding_openai(...)")
    except plpy.Error as exc:
        if emb.get("base_url") and getattr(exc, "sqlstate", None) in ("08000", "08001"):
            fail(message(exc), sqlstate=exc.sqlstate,  # the usual hint names a setting that does not apply
                 hint=f"the vectorizer {vectorizer_name!r} pins base_url => {emb['base_url']!r} in its "
                      "embedding config, so the host settings do not apply: start a model server there, "
                      "or create the vectorizer again without base_url")
        raise
    for got_dims in map(vectors.dimensions, got):
        if got_dims != dims:
            fail(f"model {emb['model']!r} returned {got_dims} dimensions, the vectorizer "
                 f"{vectorizer_name!r} stores {dims}", sqlstate="42804",
                 hint="recreate the vectorizer with the model's dimensions")
    return got


def embed_texts(emb: dict, texts: list[str], batch_size: int, vectorizer_name: str) -> tuple[list, int]:
    """Embed texts in requests of batch_size; return the pgvector literals and the request count.
    For the engine: the numbers are checked by the store's insert (store.replace)."""
    size = max(1, int(batch_size))
    literals: list[str] = []
    calls = 0
    for start in range(0, len(texts), size):
        literals.extend(embed_request(emb, texts[start:start + size], vectorizer_name, verify=False))
        calls += 1
    return literals, calls
