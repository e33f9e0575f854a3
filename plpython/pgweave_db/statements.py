"""Every statement the engine runs on a vectorizer's tables, prepared once per catalog state.

The one place where identifiers meet SQL text: relation names arrive as ``regclass`` text
(quoted and qualified by PostgreSQL), column names are quoted here with ``quote_ident``.
Functions and operators are schema-qualified, so nothing resolves through a search_path
another role could write to. Keys travel as JSON arrays of objects, read back with
``jsonb_populate_recordset`` over the queue's row type (whose key columns are base types);
new store rows travel as parallel arrays (``unnest``), their embeddings as pgvector literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plpy

from .catalog import Vectorizer

_CACHE: dict[tuple, "Statements"] = {}


def _q(name: str) -> str:
    return plpy.quote_ident(name)


@dataclass
class Statements:
    """Prepared plans for one vectorizer (see ``build``)."""

    claim: Any
    claim_ids: Any
    claim_same_keys: Any
    has_work: Any
    read_source: Any
    read_store: Any
    read_reuse: Any             # the live store's chunks of the same keys (a generation), or None
    delete_store: Any
    insert_store: Any
    never_analyzed: Any
    analyze_store: str          # run once, after the first batch (see engine.process)
    delete_items: Any
    back_off: Any
    park: Any
    store_size: Any
    has_index: Any
    enqueue_all: Any
    create_index: str           # text with {opclass} and {with_opts} to fill in


def for_vectorizer(vz: Vectorizer) -> Statements:
    """The prepared statements of a vectorizer (cached per catalog state)."""
    key = vz.cache_key()
    if key not in _CACHE:
        _CACHE[key] = build(vz)
    return _CACHE[key]


def _is_bytea(source: str, column: str) -> bool:
    """Whether a source column is bytea (or a domain over it)."""
    rows = plpy.execute(plpy.prepare("""
        SELECT 'pg_catalog.bytea'::pg_catalog.regtype OPERATOR(pg_catalog.=) ANY(ARRAY[t.oid, t.typbasetype]) AS yes
        FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
        WHERE a.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND a.attname OPERATOR(pg_catalog.=) $2""",
        ["text", "name"]), [source, column])
    return bool(rows) and rows[0]["yes"]


def build(vz: Vectorizer) -> Statements:
    """Prepare every statement for one vectorizer."""
    pk = vz.pk
    cols = ", ".join(_q(c) for c in pk)
    eq = "OPERATOR(pg_catalog.=)"

    def key_of(alias: str) -> str:
        pairs = ", ".join(f"{plpy.quote_literal(c)}, {alias}.{_q(c)}" for c in pk)
        return f"pg_catalog.jsonb_build_object({pairs})"

    def join(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{_q(c)} {eq} {b}.{_q(c)}" for c in pk)

    def lock(alias: str) -> str:
        row = ", ".join(f"{alias}.{_q(c)}" for c in pk)
        return (f"pg_catalog.pg_try_advisory_xact_lock({vz.id}, "
                f"pg_catalog.hashtext(ROW({row})::pg_catalog.text))")

    keys = f"pg_catalog.jsonb_populate_recordset(NULL::{vz.queue}, $1::pg_catalog.jsonb)"

    def per_key(table: str, columns: str = "st.*") -> str:
        # A table's rows of one key k (store or source): one probe of its key index per key,
        # whatever the statistics say. A join let a plan made while the store was small (a
        # hash join over a sequential scan) read the whole store every batch as it grew,
        # until autovacuum analyzed it again.
        return f"(SELECT {columns} FROM {table} st WHERE {join('st', 'k')} OFFSET 0)"
    fields = ", ".join(f"{plpy.quote_literal(c)}, s.{_q(c)}::pg_catalog.text"
                       for c in (vz.config.get("formatting") or {}).get("columns", []))
    column = _q(vz.config["loading"]["column_name"])
    # A bytea document is read as bytes (parsed by the engine); anything else as text.
    content = f"s.{column}" if _is_bytea(vz.source, vz.config["loading"]["column_name"]) else f"s.{column}::pg_catalog.text"

    vector_schema = plpy.execute("""
        SELECT n.nspname FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
        WHERE e.extname OPERATOR(pg_catalog.=) 'vector'""")[0]["nspname"]
    due = "(q._retry_after IS NULL OR q._retry_after OPERATOR(pg_catalog.<=) pg_catalog.now())"
    return Statements(
        # The key's advisory lock is tried only on the rows the LIMIT kept (a CTE): in the
        # WHERE of the scan, a plan that sorts (a sequential scan, a generic plan) would try
        # it on every queued row and hold the keys of the whole backlog until commit, so the
        # other backends found nothing to claim and slept.
        claim=plpy.prepare(f"""
            WITH picked AS MATERIALIZED (
                SELECT q.* FROM {vz.queue} q
                WHERE {due} AND NOT q._id OPERATOR(pg_catalog.=) ANY($2)
                ORDER BY q._id LIMIT $1
                FOR UPDATE OF q SKIP LOCKED)
            SELECT q._id AS id, {key_of('q')}::pg_catalog.text AS key FROM picked q
            WHERE {lock('q')}""", ["int", "bigint[]"]),
        claim_ids=plpy.prepare(f"""
            WITH picked AS MATERIALIZED (
                SELECT q.* FROM {vz.queue} q WHERE q._id OPERATOR(pg_catalog.=) ANY($1)
                FOR UPDATE OF q SKIP LOCKED)
            SELECT q._id AS id, {key_of('q')}::pg_catalog.text AS key FROM picked q
            WHERE {lock('q')}""", ["bigint[]"]),
        claim_same_keys=plpy.prepare(f"""
            SELECT f._id AS id FROM {keys} k CROSS JOIN LATERAL (
                SELECT q._id FROM {vz.queue} q
                WHERE {join('q', 'k')} AND NOT q._id OPERATOR(pg_catalog.=) ANY($2)
                FOR UPDATE OF q SKIP LOCKED) f""", ["text", "bigint[]"]),
        has_work=plpy.prepare(f"SELECT EXISTS (SELECT 1 FROM {vz.queue} q WHERE {due}) AS yes"),
        read_source=plpy.prepare(f"""
            SELECT {key_of('s')}::pg_catalog.text AS key, {content} AS content,
                   pg_catalog.jsonb_build_object({fields})::pg_catalog.text AS fields
            FROM {keys} k CROSS JOIN LATERAL {per_key(vz.source)} s""", ["text"]),
        read_store=plpy.prepare(f"""
            SELECT {key_of('st')}::pg_catalog.text AS key, st.chunk_seq, st.chunk, st.embedded_md5,
                   st.embedding::pg_catalog.text AS embedding
            FROM {keys} k CROSS JOIN LATERAL {per_key(vz.store)} st""", ["text"]),
        read_reuse=plpy.prepare(f"""
            SELECT st.embedded_md5, st.embedding::pg_catalog.text AS embedding
            FROM {keys} k CROSS JOIN LATERAL {per_key(vz.reuse_store)} st""", ["text"]) if vz.reuse_store else None,
        delete_store=plpy.prepare(f"""
            DELETE FROM {vz.store} WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(
                SELECT f.ctid FROM {keys} k CROSS JOIN LATERAL {per_key(vz.store, "st.ctid")} f))""", ["text"]),
        # The arrays are unnested in the select list (no tuplestore, which spilled to disk for a
        # big batch), and the embeddings arrive as vector[]: PL/Python hands each literal to
        # pgvector's input directly, without a text[] array copied in between.
        insert_store=plpy.prepare(f"""
            INSERT INTO {vz.store} ({cols}, chunk_seq, chunk, embedding, embedded_md5)
            SELECT {', '.join(f'k.{_q(c)}' for c in pk)}, u.seq, u.chunk, u.embedding, u.md5
            FROM (SELECT pg_catalog.unnest($1::pg_catalog.text[]) AS key, pg_catalog.unnest($2::pg_catalog.int4[]) AS seq,
                         pg_catalog.unnest($3::pg_catalog.text[]) AS chunk, pg_catalog.unnest($4) AS embedding,
                         pg_catalog.unnest($5::pg_catalog.text[]) AS md5) u
            CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{vz.queue}, u.key::pg_catalog.jsonb) k""",
            ["text[]", "int4[]", "text[]", f"{_q(vector_schema)}.vector[]", "text[]"]),
        never_analyzed=plpy.prepare(f"""
            SELECT c.reltuples OPERATOR(pg_catalog.<) 0 AS yes FROM pg_catalog.pg_class c
            WHERE c.oid OPERATOR(pg_catalog.=) {plpy.quote_literal(vz.store)}::pg_catalog.regclass"""),
        analyze_store=f"ANALYZE {vz.store}",
        delete_items=plpy.prepare(
            f"DELETE FROM {vz.queue} q WHERE q._id OPERATOR(pg_catalog.=) ANY($1)", ["bigint[]"]),
        back_off=plpy.prepare(f"""
            UPDATE {vz.queue} q SET _attempts = q._attempts OPERATOR(pg_catalog.+) 1, _last_error = $2,
                   _retry_after = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) pg_catalog.make_interval(
                       secs => LEAST($3 OPERATOR(pg_catalog.*) pg_catalog.power(2::float8, q._attempts::float8), 3600::float8))
            WHERE q._id OPERATOR(pg_catalog.=) ANY($1)""", ["bigint[]", "text", "float8"]),
        park=plpy.prepare(f"""
            WITH parked AS (DELETE FROM {vz.queue} q WHERE q._id OPERATOR(pg_catalog.=) ANY($1)
                              AND q._attempts OPERATOR(pg_catalog.>=) $2
                            RETURNING {cols}, _attempts, _last_error)
            INSERT INTO {vz.failed} ({cols}, _attempts, _last_error)
            SELECT {cols}, _attempts, _last_error FROM parked""", ["bigint[]", "int"]),
        store_size=plpy.prepare(
            f"SELECT pg_catalog.count(*) AS n FROM (SELECT 1 FROM {vz.store} LIMIT $1) s", ["int"]),
        has_index=plpy.prepare(f"""
            SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
                           JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) c.relam
                           WHERE i.indrelid OPERATOR(pg_catalog.=) {plpy.quote_literal(vz.store)}::pg_catalog.regclass
                             AND am.amname OPERATOR(pg_catalog.=) ANY('{{hnsw,ivfflat}}')) AS yes"""),
        enqueue_all=plpy.prepare(f"INSERT INTO {vz.queue} ({cols}) SELECT {cols} FROM {vz.source}"),
        create_index=(f"CREATE INDEX IF NOT EXISTS {_q(vz.store_table[:45] + '_embedding_hnsw')} "
                      f"ON {vz.store} USING hnsw (embedding {_q(vector_schema)}.{{opclass}}){{with_opts}}"),
    )
