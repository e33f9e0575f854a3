"""One embedding request with a vectorizer's embedding config: the one provider dispatch.

The engine embeds chunks and search embeds queries through here, so both always come from
the same model, host and dimensions.
"""

from __future__ import annotations

import collections
import re
from contextlib import contextmanager
from typing import Callable, Iterator

import plpy

from . import ollama, openai, settings, vectors
from .errors import fail

IMPLEMENTATIONS = ("ollama", "openai")


_PREFIX = re.compile(r"^(?:(?:plpy|spiexceptions)\.\w+: )+")


def message(exc: BaseException) -> str:
    """An error's text without PL/Python's class prefixes (nested calls stack them)."""
    return _PREFIX.sub("", str(exc) or type(exc).__name__)


def embed_request(emb: dict, texts: list[str], vectorizer_name: str) -> list[str]:
    """Embed texts in one request; return pgvector literals, their numbers and dimensions checked."""
    return _request_later(emb, texts, vectorizer_name, verify=True)()


def _request_later(emb: dict, texts: list[str], vectorizer_name: str, verify: bool) -> Callable[[], list[str]]:
    """Send one embedding request now; the returned function waits for it and returns its
    literals, dimensions checked (``verify`` False: numbers unchecked, for the engine, whose
    store insert casts and reports them)."""
    dims = int(emb["dimensions"])
    with _base_url_hint(emb, vectorizer_name):
        if emb["implementation"] == "ollama":
            later = ollama.embed_later(emb["model"], texts, emb.get("base_url"), emb.get("keep_alive"),
                                       emb.get("options"), verify=verify)
        elif emb["implementation"] == "openai":
            later = openai.embed_later(emb["model"], texts, None, emb.get("api_key_name"), emb.get("dimensions"),
                                       emb.get("user"), emb.get("base_url"), verify=verify)
        else:
            fail(f"unknown embedding implementation {emb['implementation']!r}", sqlstate="22023",
                 hint="use ai.embedding_ollama(...) or ai.embedding_openai(...)")

    def literals() -> list[str]:
        with _base_url_hint(emb, vectorizer_name):
            got = later()
        # The engine checks the first of a reply (counting 4,700 characters a vector was 2 us
        # of its ~140 us a chunk): the store's vector(n) column refuses any other length, and
        # store.py reports that as the server's fault.
        for got_dims in map(vectors.dimensions, got if verify else got[:1]):
            if got_dims != dims:
                fail(f"model {emb['model']!r} returned {got_dims} dimensions, the vectorizer "
                     f"{vectorizer_name!r} stores {dims}", sqlstate="42804",
                     hint="recreate the vectorizer with the model's dimensions")
        return got

    return literals


@contextmanager
def _base_url_hint(emb: dict, vectorizer_name: str) -> Iterator[None]:
    """An unreachable server of a config that pins base_url gets a hint about that pin (the
    usual hint names a setting that does not apply)."""
    try:
        yield
    except plpy.Error as exc:
        if emb.get("base_url") and getattr(exc, "sqlstate", None) in ("08000", "08001"):
            fail(message(exc), sqlstate=exc.sqlstate,
                 hint=f"the vectorizer {vectorizer_name!r} pins base_url => {emb['base_url']!r} in its "
                      "embedding config, so the host settings do not apply: start a model server there, "
                      "or create the vectorizer again without base_url")
        raise


class Requests:
    """Texts embedded in requests of batch_size, sent as soon as a request's worth has come
    (``add``), settings.requests_in_flight() at a time: the server works while the engine
    chunks the rest. ``finish`` sends the last one and returns every text's pgvector literal,
    in order. For the engine: the numbers are checked by the store's insert (store.replace)."""

    def __init__(self, emb: dict, batch_size: int, vectorizer_name: str):
        self.emb, self.size, self.name = emb, max(1, int(batch_size)), vectorizer_name
        self.in_flight = settings.requests_in_flight()
        self.texts: list[str] = []  # not sent yet
        self.waiting: collections.deque = collections.deque()
        self.literals: list[str] = []
        self.calls = 0

    def add(self, text: str) -> None:
        self.texts.append(text)
        if len(self.texts) >= self.size:
            self._send()

    def _send(self) -> None:
        if len(self.waiting) >= self.in_flight:
            self.literals.extend(self.waiting.popleft()())
        self.waiting.append(_request_later(self.emb, self.texts, self.name, verify=False))
        self.texts = []
        self.calls += 1

    def finish(self) -> list[str]:
        if self.texts:
            self._send()
        while self.waiting:
            self.literals.extend(self.waiting.popleft()())
        return self.literals
