"""Raise PostgreSQL errors that say what happened and what to do."""

from __future__ import annotations

import plpy


def fail(message: str, *, hint: str | None = None, detail: str | None = None,
         sqlstate: str | None = None, table: str | None = None, column: str | None = None) -> None:
    """Raise an ERROR with an optional hint, detail, SQLSTATE, and the table or column it is
    about (clients tell errors apart by those fields, not by the message's words)."""
    kwargs = {}
    if table:
        kwargs["schema_name"], kwargs["table_name"] = "ai", table
    if column:
        kwargs["column_name"] = column
    if hint:
        kwargs["hint"] = hint
    if detail:
        kwargs["detail"] = detail
    if sqlstate:
        kwargs["sqlstate"] = sqlstate
    plpy.error(message, **kwargs)


def hint_of(exc: BaseException) -> str | None:
    """An error's hint: plpy.Error's own, or an SPI error's (its spidata holds it third)."""
    hint = getattr(exc, "hint", None)
    if hint is None and isinstance(getattr(exc, "spidata", None), tuple) and len(exc.spidata) > 2:
        hint = exc.spidata[2]
    return hint
