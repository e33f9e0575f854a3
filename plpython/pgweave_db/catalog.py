"""A vectorizer's catalog row, read once per batch as a typed value.

Relations are named by their OIDs' ``regclass`` text, which PostgreSQL quotes and
schema-qualifies itself (the engine runs with ``search_path = pg_catalog, pg_temp``), so a
renamed or moved table is followed without the catalog's name columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import plpy

_READ = None


@dataclass(frozen=True)
class Vectorizer:
    """What the engine needs to know about one vectorizer."""

    id: int
    name: str
    owner: str
    config: dict
    pk: tuple[str, ...]
    source: str
    store: str
    queue: str
    failed: str
    store_table: str           # the store's bare name, for the HNSW index's name
    reuse_store: str | None = None  # a generation's live store, whose embeddings it may reuse

    @property
    def processing(self) -> dict:
        return self.config.get("processing") or {}

    @property
    def scheduling(self) -> dict:
        return self.config.get("scheduling") or {}

    def cache_key(self) -> tuple:
        """What the prepared statements depend on."""
        return (self.id, json.dumps(self.config, sort_keys=True), self.pk, self.source, self.store,
                self.queue, self.failed, self.reuse_store)


def read(vectorizer_id: int) -> Vectorizer | None:
    """The vectorizer with this id, or None when there is none."""
    global _READ
    if _READ is None:
        _READ = plpy.prepare("""
            SELECT v.id, v.name, v.owner, v.config::text AS config, v.source_pk::text AS source_pk,
                   v.source_relid::pg_catalog.regclass::text AS source,
                   v.target_relid::pg_catalog.regclass::text AS store,
                   v.queue_relid::pg_catalog.regclass::text AS queue,
                   v.failed_relid::pg_catalog.regclass::text AS failed,
                   v.target_table,
                   CASE WHEN v.generation_reuse AND ai._embedding_identity(live.config->'embedding')
                             OPERATOR(pg_catalog.=) ai._embedding_identity(v.config->'embedding')
                        THEN live.target_relid::pg_catalog.regclass::text END AS reuse_store
            FROM ai.vectorizer v LEFT JOIN ai.vectorizer live ON live.id OPERATOR(pg_catalog.=) v.generation_of
            WHERE v.id = $1""", ["int"])
    rows = plpy.execute(_READ, [vectorizer_id])
    if not rows:
        return None
    r = rows[0]
    pk = tuple(k["attname"] for k in sorted(json.loads(r["source_pk"]), key=lambda k: int(k["pknum"])))
    return Vectorizer(r["id"], r["name"], r["owner"], json.loads(r["config"]), pk, r["source"],
                      r["store"], r["queue"], r["failed"], r["target_table"], r["reuse_store"])
