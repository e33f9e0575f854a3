"""Convert embeddings between Python lists and pgvector's text form."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence


@lru_cache(maxsize=8)
def _template(dimensions: int) -> str:
    """A %-format that prints ``dimensions`` numbers as a pgvector literal."""
    return "[" + ",".join(["%.9g"] * dimensions) + "]"


def to_pgvector(values: Sequence[float]) -> str:
    """Format numbers as a pgvector literal, e.g. ``[0.1,0.2]``.

    Nine significant digits name every float32 exactly, and pgvector stores float32, so the
    stored vector is the one the model sent; one %-format per vector costs a third of
    printing each float's shortest form.
    """
    return _template(len(values)) % tuple(values)


def batch_rows(texts: Sequence[str | None] | None,
               embed: Callable[[list[str]], list[list[float]]]) -> list[tuple[int, str | None]]:
    """(index, vector) per input for the text[] embedding functions: one request for all
    non-NULL texts, NULL in → NULL out, 0-based indexes as in the providers' APIs."""
    if texts is None:
        return []
    present = [(i, t) for i, t in enumerate(texts) if t is not None]
    vectors = embed([t for _, t in present]) if present else []
    by_index = {i: to_pgvector(v) for (i, _), v in zip(present, vectors)}
    return [(i, by_index.get(i)) for i in range(len(texts))]
