"""One factory for "a table with a vectorizer": the `make_vectorizer` fixture.

    v = make_vectorizer(db, rows={1: "text"}, processing="batch_size => 5")
    execute_vectorizer(db, v.name); v.queue, v.store, v.id ...
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest


@dataclass
class Vectorizer:
    """What the factory made: names to query."""

    id: int
    name: str
    table: str
    view: str
    store: str
    queue: str
    failed_queue: str


def create_vectorizer(dsn: str, table: str = "docs", rows: dict | None = None, *,
                      columns: str = "id int PRIMARY KEY, body text, other int DEFAULT 0",
                      column: str = "body", model: str = "ai.embedding_ollama('all-minilm', 384)",
                      chunking: str = "ai.chunking_recursive_character_text_splitter(100, 0)",
                      processing: str = "", scheduling: str = "ai.scheduling_none()",
                      indexing: str = "ai.indexing_none()", extra: str = "",
                      owner: str | None = None, reader: str | None = None) -> Vectorizer:
    """Create ``table`` (id, body, other), insert ``rows`` (id -> body), declare a vectorizer on
    it (no schedule, no index unless told) and return its names. ``extra`` is appended to the
    create_vectorizer arguments (e.g. ", grant_to => ARRAY['reader']"). ``owner``: the role the
    table is given to before the vectorizer is declared (the vectorizer belongs to it).
    ``reader``: a role granted the view and store (grant_to) and SELECT on the table, so it may search."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} ({columns})")
        if owner:
            conn.execute(f"ALTER TABLE {table} OWNER TO {owner}")
        vid = conn.execute(f"""SELECT ai.create_vectorizer('{table}'::regclass,
            loading => ai.loading_column('{column}'), embedding => {model}, chunking => {chunking},
            scheduling => {scheduling}, indexing => {indexing},
            processing => ai.processing_default({processing}) {extra}
            {f", grant_to => ARRAY['{reader}']" if reader else ""})""").fetchone()[0]
        if reader:
            conn.execute(f"GRANT SELECT ON {table} TO {reader}")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} (id, {column}) VALUES (%s, %s)", list((rows or {}).items()))
        row = conn.execute("""SELECT name, target_schema || '.' || target_table, view_schema || '.' || view_name,
                                     queue_schema || '.' || queue_table, queue_schema || '.' || queue_failed_table
                              FROM ai.vectorizer WHERE id = %s""", (vid,)).fetchone()
    return Vectorizer(vid, row[0], table, row[2], row[1], row[3], row[4])


@pytest.fixture
def make_vectorizer():
    """The factory `create_vectorizer` (see the module docstring)."""
    return create_vectorizer
