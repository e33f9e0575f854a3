"""Convert embeddings between Python lists and pgvector's text form."""

from __future__ import annotations

from typing import Callable, Sequence


def to_pgvector(values: Sequence[float]) -> str:
    """Format floats as a pgvector literal, e.g. ``[0.1,0.2]``."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


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
