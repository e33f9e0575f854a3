"""Convert embeddings between Python lists and pgvector's text form."""

from __future__ import annotations

from typing import Sequence


def to_pgvector(values: Sequence[float]) -> str:
    """Format floats as a pgvector literal, e.g. ``[0.1,0.2]``."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"
