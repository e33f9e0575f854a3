"""Format a chunk for embedding: ``$chunk`` plus any source column, e.g. ``$title: $chunk``."""

from __future__ import annotations

import string
from typing import Any, Callable

DEFAULT_TEMPLATE = "$chunk"


def template_columns(template: str) -> set[str]:
    """The identifiers a template refers to (besides ``chunk``)."""
    names = set()
    for match in string.Template.pattern.finditer(template):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names - {"chunk"}


def formatter(config: dict[str, Any] | None, row: dict[str, Any]) -> Callable[[str], str]:
    """The formatting template for one source row (NULL columns → ''), as a function of the
    chunk: the template is rendered once a row, and each chunk is put in its place."""
    template = (config or {}).get("template", DEFAULT_TEMPLATE)
    values = {k: "" if v is None else str(v) for k, v in row.items()}
    # NUL marks where the chunk goes: no PostgreSQL text or jsonb string can hold one.
    values["chunk"] = "\0"
    parts = string.Template(template).safe_substitute(values).split("\0")
    return lambda chunk: chunk.join(parts)


def format_chunk(config: dict[str, Any] | None, chunk: str, row: dict[str, Any]) -> str:
    """Render the formatting template for one chunk of one source row (NULL columns → '')."""
    return formatter(config, row)(chunk)
