"""Embeddings as pgvector's text form: taken straight from a model server's reply, or printed.

Every provider hands back pgvector literals (``[0.1,-0.2]``), because that is what the store,
the query cache and the SQL functions take. A JSON array of numbers already is one, so the
usual reply is sliced, not decoded: the numbers are never parsed into Python floats and
printed again (that was two thirds of the engine's own CPU with a fast model server). A reply
of any other shape goes through the JSON decoder and its checks, and is printed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence

# The body of a JSON array of plain numbers: digits, signs, points, exponents, commas, spaces.
_ARRAY = rb"\[([-+0-9.eE,\s]+)\]"
# The same, number by number as JSON writes them (four times the cost of the line above).
_NUMBER = rb"\s*-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\s*"
_NUMBERS = re.compile(_NUMBER + rb"(?:," + _NUMBER + rb")*")
_OLLAMA_START = re.compile(rb'\A\s*\{.*?"embeddings"\s*:\s*\[', re.S)
_OLLAMA_ITEM = re.compile(rb"\s*" + _ARRAY + rb"\s*([,\]])")
_OPENAI_ITEM = re.compile(rb'"embedding"\s*:\s*' + _ARRAY)
_OPENAI_INDEX = re.compile(rb'"index"\s*:\s*(\d+)')


@lru_cache(maxsize=8)
def _template(dimensions: int) -> str:
    """A %-format that prints ``dimensions`` numbers as a pgvector literal."""
    return "[" + ",".join(["%.9g"] * dimensions) + "]"


def to_pgvector(values: Sequence[float]) -> str:
    """Format numbers as a pgvector literal, e.g. ``[0.1,0.2]``.

    Nine significant digits name every float32 exactly, and pgvector stores float32, so the
    stored vector is the one the model sent.
    """
    return _template(len(values)) % tuple(values)


def dimensions(literal: str) -> int:
    """How many numbers a pgvector literal holds."""
    return literal.count(",") + 1


def _literal(body: bytes, verify: bool) -> str | None:
    """The pgvector literal for the inside of a JSON number array (pgvector, like JSON, allows
    spaces around the numbers). ``verify``: None unless every number is written as JSON
    writes one; without it, pgvector is the judge where the literal is cast (the engine's
    store insert says which server sent it, store.py)."""
    if verify and _NUMBERS.fullmatch(body) is None:
        return None
    return "[" + body.decode("ascii") + "]"


def ollama_literals(body: bytes, count: int, verify: bool = True) -> list[str] | None:
    """The ``embeddings`` of an Ollama /api/embed reply as literals, or None when the reply is
    not the plain shape (the caller then decodes it and reports what is wrong)."""
    start = _OLLAMA_START.match(body)
    if start is None:
        return None
    if not verify:
        return _bracketed(body, start.end(), count)
    out, pos = [], start.end()
    while len(out) < count:
        item = _OLLAMA_ITEM.match(body, pos)
        if item is None:
            return None
        literal = _literal(item.group(1), verify)
        if literal is None:
            return None
        out.append(literal)
        pos = item.end()
        if item.group(2) == b"]":
            break
    return out if len(out) == count and body[pos - 1:pos] == b"]" else None


def _bracketed(body: bytes, pos: int, count: int) -> list[str] | None:
    """The ``count`` arrays of a JSON list that starts just before ``pos``, as literals, found
    by their brackets: what the regular expression of ``ollama_literals`` does, at memchr's
    speed (it scanned each vector's 4,700 characters one by one: 13 us a vector, a tenth of
    a fast backfill's time per chunk). Unchecked inside, like ``_literal`` without verify:
    anything but numbers there (a nested list, a string) makes a literal pgvector refuses
    where the engine casts it. None when the list is not ``count`` arrays, commas and spaces."""
    out = []
    for n in range(count):
        first = body.find(b"[", pos)
        last = body.find(b"]", first + 1)
        if first < 0 or last < 0 or body[pos:first].strip() != (b"," if n else b""):
            return None
        try:
            out.append(body[first:last + 1].decode("ascii"))
        except UnicodeDecodeError:
            return None
        pos = last + 1
    return out if body[pos:pos + 64].lstrip().startswith(b"]") else None


def openai_literals(body: bytes, count: int, verify: bool = True) -> list[str] | None:
    """The ``data[].embedding`` of an OpenAI /embeddings reply as literals in input order, or
    None when the reply is not the plain shape (one embedding and one index per item, the
    indexes 0..count-1 in order, as every server we know sends them)."""
    items = _OPENAI_ITEM.findall(body)
    if len(items) != count or [int(i) for i in _OPENAI_INDEX.findall(body)] != list(range(count)):
        return None
    out = [_literal(item, verify) for item in items]
    return None if None in out else out


def batch_rows(texts: Sequence[str | None] | None,
               embed: Callable[[list[str]], list[str]]) -> list[tuple[int, str | None]]:
    """(index, vector) per input for the text[] embedding functions: one request for all
    non-NULL texts, NULL in → NULL out, 0-based indexes as in the providers' APIs."""
    if texts is None:
        return []
    present = [(i, t) for i, t in enumerate(texts) if t is not None]
    vectors = embed([t for _, t in present]) if present else []
    by_index = {i: v for (i, _), v in zip(present, vectors)}
    return [(i, by_index.get(i)) for i in range(len(texts))]
