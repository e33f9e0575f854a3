"""Format a chunk for embedding: ``$chunk`` plus any source column, e.g. ``$title: $chunk``."""

from __future__ import annotations

import string
from typing import Any

DEFAULT_TEMPLATE = "$chunk"


def template_columns(template: str) -> set[str]:
    """The identifiers a template refers to (besides ``chunk``)."""
    names = set()
    for match in string.Template.pattern.finditer(template):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names - {"chunk"}


def format_chunk(config: dict[str, Any] | None, chunk: str, row: dict[str, Any]) -> str:
    """Render the formatting template for one chunk of one source row (NULL columns → '')."""
    template = (config or {}).get("template", DEFAULT_TEMPLATE)
    values = {k: "" if v is None else str(v) for k, v in row.items()}
    values["chunk"] = chunk
    return string.Template(template).safe_substitute(values)
