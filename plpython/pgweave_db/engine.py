"""The vectorizer engine: drain a queue into the store, one committed batch at a time.

One batch, in this order (the order is what keeps the store exact under concurrency):
1. claim queue items (FOR UPDATE SKIP LOCKED, plus a transaction advisory lock per source
   key so two workers never work on the same row at once), then every other queued item
   of the same keys;
2. read the *current* source rows of those keys (a later statement, so every change that
   queued a claimed item is visible); a key with no row means the row is gone;
3. chunk and format; reuse the stored embedding of any chunk whose formatted text is
   unchanged; embed the rest in batched requests;
4. replace the keys' chunks in the store, delete exactly the claimed items, commit.
A change committed after step 1 queues a new item, which is not claimed here and is
processed later: nothing is lost and the last version wins. A truncate of the source
waits for step 2's lock or is seen by it, then empties the store in its trigger.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import plpy

from . import chunking, formatting, ollama, openai, secrets
from .errors import fail
from .vectors import to_pgvector

# Failures of the request itself (bad input) are isolated per item; others (server down,
# timeouts, server errors) are recorded once for the whole batch.
_INPUT_ERROR_STATES = {"22023", "22000", "22004", "22001"}


@dataclass
class Plan:
    """A vectorizer's catalog row and every statement the engine runs for it."""

    id: int
    name: str
    config: dict
    pk: list[str]
    statements: dict[str, Any] = field(default_factory=dict)

    @property
    def processing(self) -> dict:
        return self.config.get("processing") or {}


def _q(name: str) -> str:
    return plpy.quote_ident(name)


def load_plan(vectorizer_id: int) -> Plan | None:
    """Read the catalog row and prepare the statements (cached per config in GD)."""
    rows = plpy.execute(plpy.prepare("SELECT * FROM ai.vectorizer WHERE id = $1", ["int"]),
                        [vectorizer_id])
    if not rows:
        return None
    row = rows[0]
    cache = _plan_cache()
    cache_key = (row["id"], row["config"], row["source_pk"], row["source_schema"], row["source_table"],
                 row["queue_table"], row["target_table"])
    if cache_key not in cache:
        try:
            cache[cache_key] = _build_plan(row)
        except plpy.SPIError as exc:
            fail(f"vectorizer {row['name']!r} cannot prepare its statements: {_message(exc)}",
                 sqlstate=getattr(exc, "sqlstate", None) or "55000",
                 hint="was a column it reads renamed, dropped or retyped? Rename it back (the queued "
                      "items wait), or drop the vectorizer and create it again")
    return cache[cache_key]


_PLANS: dict = {}


def _plan_cache() -> dict:
    return _PLANS


def _build_plan(row: dict) -> Plan:
    """Build the statements for one vectorizer; identifiers are quoted here and only here."""
    pk = [k["attname"] for k in sorted(json.loads(row["source_pk"]), key=lambda k: int(k["pknum"]))]
    config = json.loads(row["config"])
    source = f"{_q(row['source_schema'])}.{_q(row['source_table'])}"
    store = f"{_q(row['target_schema'])}.{_q(row['target_table'])}"
    queue = f"{_q(row['queue_schema'])}.{_q(row['queue_table'])}"
    failed = f"{_q(row['queue_schema'])}.{_q(row['queue_failed_table'])}"
    cols = ", ".join(_q(c) for c in pk)

    def key_of(alias: str) -> str:
        return "jsonb_build_object(" + ", ".join(f"{plpy.quote_literal(c)}, {alias}.{_q(c)}" for c in pk) + ")"

    def join(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{_q(c)} = {b}.{_q(c)}" for c in pk)

    keys = f"jsonb_populate_recordset(NULL::{queue}, $1::jsonb)"
    fields = ", ".join(f"{plpy.quote_literal(c)}, s.{_q(c)}::text"
                       for c in (config.get("formatting") or {}).get("columns", [])) or ""
    column = _q(config["loading"]["column_name"])
    vid = int(row["id"])
    plan = Plan(vid, row["name"], config, pk)
    plan.statements = {
        "claim": plpy.prepare(f"""
            SELECT q._id AS id, {key_of('q')}::text AS key FROM {queue} q
            WHERE (q._retry_after IS NULL OR q._retry_after <= now())
              AND NOT q._id = ANY($2)
              AND pg_catalog.pg_try_advisory_xact_lock({vid}, pg_catalog.hashtext(ROW({', '.join('q.' + _q(c) for c in pk)})::text))
            ORDER BY q._id LIMIT $1
            FOR UPDATE OF q SKIP LOCKED""", ["int", "bigint[]"]),
        "claim_ids": plpy.prepare(f"""
            SELECT q._id AS id, {key_of('q')}::text AS key FROM {queue} q
            WHERE q._id = ANY($1)
              AND pg_catalog.pg_try_advisory_xact_lock({vid}, pg_catalog.hashtext(ROW({', '.join('q.' + _q(c) for c in pk)})::text))
            FOR UPDATE OF q SKIP LOCKED""", ["bigint[]"]),
        "claim_same_keys": plpy.prepare(f"""
            SELECT q._id AS id FROM {queue} q JOIN {keys} k ON {join('q', 'k')}
            WHERE NOT q._id = ANY($2)
            FOR UPDATE OF q SKIP LOCKED""", ["text", "bigint[]"]),
        "read_source": plpy.prepare(f"""
            SELECT {key_of('s')}::text AS key, s.{column}::text AS content,
                   jsonb_build_object({fields})::text AS fields
            FROM {source} s JOIN {keys} k ON {join('s', 'k')}""", ["text"]),
        "read_store": plpy.prepare(f"""
            SELECT {key_of('st')}::text AS key, st.chunk_seq, st.chunk, st.embedded_md5,
                   st.embedding::text AS embedding
            FROM {store} st JOIN {keys} k ON {join('st', 'k')}""", ["text"]),
        "delete_store": plpy.prepare(f"""
            DELETE FROM {store} st USING {keys} k WHERE {join('st', 'k')}""", ["text"]),
        "insert_store": plpy.prepare(f"""
            INSERT INTO {store} ({cols}, chunk_seq, chunk, embedding, embedded_md5)
            SELECT {cols}, chunk_seq, chunk, embedding, embedded_md5
            FROM jsonb_populate_recordset(NULL::{store}, $1::jsonb)""", ["text"]),
        "delete_items": plpy.prepare(f"DELETE FROM {queue} WHERE _id = ANY($1)", ["bigint[]"]),
        "back_off": plpy.prepare(f"""
            UPDATE {queue} SET _attempts = _attempts + 1, _last_error = $2,
                   _retry_after = now() + make_interval(secs => least($3 * power(2, _attempts), 3600))
            WHERE _id = ANY($1)""", ["bigint[]", "text", "float8"]),
        "park": plpy.prepare(f"""
            WITH parked AS (DELETE FROM {queue} WHERE _id = ANY($1) AND _attempts >= $2
                            RETURNING {cols}, _attempts, _last_error)
            INSERT INTO {failed} ({cols}, _attempts, _last_error)
            SELECT {cols}, _attempts, _last_error FROM parked""", ["bigint[]", "int"]),
        "store_size": plpy.prepare(f"SELECT count(*) AS n FROM (SELECT 1 FROM {store} LIMIT $1) s", ["int"]),
        "has_index": plpy.prepare(f"""
            SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                           JOIN pg_catalog.pg_am am ON am.oid = c.relam
                           WHERE i.indrelid = '{store}'::regclass AND am.amname IN ('hnsw', 'ivfflat')) AS yes"""),
        "store_name": store,
    }
    return plan


@dataclass
class BatchResult:
    """What one batch did."""

    items: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    model_calls: int = 0


def process_batch(plan: Plan, claimed: list[int], only_ids: list[int] | None = None,
                  skip: list[int] | None = None) -> BatchResult:
    """Claim, load, chunk, format, embed and store one batch; ``claimed`` gets the item ids.

    ``skip``: items that already failed in this call, so one call tries each item once.
    """
    st = plan.statements
    skip = skip or []
    if only_ids is not None:
        picked = plpy.execute(st["claim_ids"], [only_ids])
    else:
        picked = plpy.execute(st["claim"], [int(plan.processing.get("batch_size", 50)), skip])
    if not picked:
        return BatchResult()
    keys_json = "[" + ",".join(sorted({r["key"] for r in picked})) + "]"
    claimed.extend(r["id"] for r in picked)
    claimed.extend(r["id"] for r in plpy.execute(st["claim_same_keys"], [keys_json, skip]))
    claimed[:] = sorted(set(claimed))  # the picked items are claimed again with their keys
    ids = list(claimed)

    sources = {r["key"]: r for r in plpy.execute(st["read_source"], [keys_json])}
    stored: dict[str, list[dict]] = {}
    for r in plpy.execute(st["read_store"], [keys_json]):
        stored.setdefault(r["key"], []).append(r)

    result = BatchResult(items=len(ids))
    wanted: dict[str, list[tuple[int, str, str]]] = {}  # key -> [(seq, chunk, formatted)]
    for key in {r["key"] for r in picked}:
        row = sources.get(key)
        if row is None:
            wanted[key] = []  # the row is gone: so are its chunks
            continue
        fields = json.loads(row["fields"]) if row["fields"] else {}
        try:
            pieces = chunking.chunk(plan.config["chunking"], row["content"])
        except ValueError as exc:
            fail(f"vectorizer {plan.name!r}: {exc}", sqlstate="22023",
                 hint="fix the chunking config (recreate the vectorizer)")
        wanted[key] = [(seq, piece, formatting.format_chunk(plan.config.get("formatting"), piece, fields))
                       for seq, piece in enumerate(pieces)]

    # Reuse the embedding of any chunk whose formatted text is unchanged (any key, any seq).
    known = {r["embedded_md5"]: r["embedding"] for rows in stored.values() for r in rows}
    to_embed: dict[str, str] = {}
    for chunks in wanted.values():
        for _, _, text in chunks:
            digest = _md5(text)
            if digest not in known:
                to_embed.setdefault(digest, text)
    if to_embed:
        digests = list(to_embed)
        vectors, calls = embed_texts(plan, [to_embed[d] for d in digests])
        known.update({d: to_pgvector(v) for d, v in zip(digests, vectors)})
        result.chunks_embedded = len(digests)
        result.model_calls = calls

    changed_keys, new_rows = [], []
    for key, chunks in wanted.items():
        before = sorted((r["chunk_seq"], r["chunk"], r["embedded_md5"]) for r in stored.get(key, []))
        after = [(seq, piece, _md5(text)) for seq, piece, text in chunks]
        result.chunks_reused += sum(1 for _, _, d in after if d not in to_embed)
        if before == after:
            continue  # nothing to write: the store already holds exactly these chunks
        changed_keys.append(key)
        base = json.loads(key)
        new_rows.extend({**base, "chunk_seq": seq, "chunk": piece, "embedding": known[digest],
                         "embedded_md5": digest} for seq, piece, digest in after)
    if changed_keys:
        plpy.execute(st["delete_store"], ["[" + ",".join(changed_keys) + "]"])
    if new_rows:
        plpy.execute(st["insert_store"], [json.dumps(new_rows)])
    plpy.execute(st["delete_items"], [ids])
    plpy.execute(plpy.prepare("""
        UPDATE ai._vectorizer_progress SET items_processed = items_processed + $2,
               chunks_embedded = chunks_embedded + $3, chunks_reused = chunks_reused + $4,
               model_calls = model_calls + $5, last_success_at = now()
        WHERE vectorizer_id = $1""", ["int", "int", "int", "int", "int"]),
        [plan.id, result.items, result.chunks_embedded, result.chunks_reused, result.model_calls])
    return result


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def embed_texts(plan: Plan, texts: list[str]) -> tuple[list[list[float]], int]:
    """Embed texts in requests of embedding_batch_size; return vectors and the request count."""
    size = max(1, int(plan.processing.get("embedding_batch_size", 64)))
    vectors: list[list[float]] = []
    calls = 0
    for start in range(0, len(texts), size):
        vectors.extend(embed_request(plan.config["embedding"], texts[start:start + size], plan.name))
        calls += 1
    return vectors, calls


def embed_request(emb: dict, texts: list[str], vectorizer_name: str) -> list[list[float]]:
    """One embedding request with a vectorizer's embedding config; checks the dimensions."""
    dims = int(emb["dimensions"])
    try:
        if emb["implementation"] == "ollama":
            got = ollama.embed(emb["model"], texts, emb.get("base_url"), emb.get("keep_alive"),
                               emb.get("options"))
        elif emb["implementation"] == "openai":
            got = openai.embed(emb["model"], texts, None, emb.get("api_key_name"),
                               emb.get("dimensions"), emb.get("user"), emb.get("base_url"))
        else:
            fail(f"unknown embedding implementation {emb['implementation']!r}", sqlstate="22023")
    except plpy.Error as exc:
        if emb.get("base_url") and getattr(exc, "sqlstate", None) in ("08000", "08001"):
            fail(_message(exc), sqlstate=exc.sqlstate,  # the usual hint names a setting that does not apply
                 hint=f"the vectorizer {vectorizer_name!r} pins base_url => {emb['base_url']!r} in its "
                      "embedding config, so the host settings do not apply: start a model server there, "
                      "or create the vectorizer again without base_url")
        raise
    for v in got:
        if len(v) != dims:
            fail(f"model {emb['model']!r} returned {len(v)} dimensions, the vectorizer "
                 f"{vectorizer_name!r} stores {dims}", sqlstate="42804",
                 hint="recreate the vectorizer with the model's dimensions")
    return got


def record_failure(plan: Plan, ids: list[int], exc: BaseException) -> None:
    """Record the error (redacted), back the items off, and park the exhausted ones."""
    message = _record_error(plan.id, exc, len(ids))
    st = plan.statements
    if ids:
        plpy.execute(st["back_off"], [ids, message, float(plan.processing.get("retry_base_seconds", 2))])
        plpy.execute(st["park"], [ids, int(plan.processing.get("max_attempts", 6))])


def _record_error(vectorizer_id: int, exc: BaseException, items: int) -> str:
    """One row in ai.vectorizer_errors and the vectorizer's last error; the (redacted) message."""
    message = secrets.redact(_message(exc))
    details = {"items": items, "sqlstate": getattr(exc, "sqlstate", None),
               "hint": secrets.redact(getattr(exc, "hint", None) or "") or None,
               "error_type": type(exc).__name__}
    plpy.execute(plpy.prepare(
        "INSERT INTO ai._vectorizer_errors (vectorizer_id, message, details) VALUES ($1, $2, $3::jsonb)",
        ["int", "text", "text"]), [vectorizer_id, message, json.dumps(details)])
    plpy.execute(plpy.prepare(
        "UPDATE ai._vectorizer_progress SET last_error_at = now(), last_error = $2 WHERE vectorizer_id = $1",
        ["int", "text"]), [vectorizer_id, message])
    return message


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[len("plpy.Error: "):] if text.startswith("plpy.Error: ") else text


def _commit() -> None:
    """Commit, or explain why a CALL inside a transaction block cannot process batches."""
    try:
        plpy.commit()
    except plpy.SPIError as exc:
        if "invalid transaction termination" in str(exc):
            fail("ai.execute_vectorizer commits after every batch and cannot run inside a "
                 "transaction block", hint="CALL it outside BEGIN ... COMMIT (autocommit)",
                 sqlstate="2D000")
        raise


def execute(vectorizer_id: int, max_batches: int | None = None) -> int:
    """Drain the queue in committed batches; return the number of items processed."""
    total = batches = 0
    failed: list[int] = []  # tried once in this call already: left for a later call
    while max_batches is None or batches < max_batches:
        plan = _plan_or_record(vectorizer_id)
        if plan is None:
            return total
        claimed: list[int] = []
        try:
            done = process_batch(plan, claimed, skip=failed)
        except Exception as exc:  # any failure: nothing written, items kept and backed off
            plpy.rollback()
            failed.extend(claimed)
            if len(claimed) > 1 and getattr(exc, "sqlstate", None) in _INPUT_ERROR_STATES:
                total += _isolate(plan, claimed)
            else:
                record_failure(plan, claimed, exc)
            _commit()
            batches += 1
            continue
        _commit()
        batches += 1
        total += done.items
        if done.items == 0:
            maybe_create_index(plan)
            _commit()
            break
    return total


def _plan_or_record(vectorizer_id: int) -> Plan | None:
    """load_plan, but a plan that cannot be built (the source column was renamed, say) is
    recorded in ai.vectorizer_errors before the error is raised, so status shows why the
    queue does not move; the items stay queued."""
    try:
        return load_plan(vectorizer_id)
    except Exception as exc:
        plpy.rollback()
        _record_error(vectorizer_id, exc, items=0)
        _commit()
        raise


def _isolate(plan: Plan, ids: list[int]) -> int:
    """Process a failed batch's items one by one, so one bad input does not hold the rest."""
    done = 0
    for item in ids:
        claimed: list[int] = []
        try:
            done += process_batch(plan, claimed, only_ids=[item]).items
        except Exception as exc:
            plpy.rollback()
            record_failure(plan, claimed or [item], exc)
        _commit()
    return done


def maybe_create_index(plan: Plan) -> bool:
    """Create the HNSW index once the store holds min_rows chunks; True when created."""
    idx = plan.config.get("indexing") or {}
    if idx.get("implementation") != "hnsw" or plan.statements.get("indexed"):
        return False
    st = plan.statements
    if plpy.execute(st["has_index"])[0]["yes"]:
        st["indexed"] = True
        return False
    min_rows = int(idx.get("min_rows", 100000))
    if plpy.execute(st["store_size"], [min_rows])[0]["n"] < min_rows:
        return False
    opclass = idx.get("opclass", "vector_cosine_ops")
    if opclass not in ("vector_cosine_ops", "vector_l2_ops", "vector_ip_ops", "vector_l1_ops"):
        fail(f"unknown HNSW opclass {opclass!r}", sqlstate="22023",
             hint="use vector_cosine_ops, vector_l2_ops, vector_ip_ops or vector_l1_ops")
    with_opts = ", ".join(f"{k} = {int(idx[k])}" for k in ("m", "ef_construction") if idx.get(k))
    plpy.execute(f"CREATE INDEX IF NOT EXISTS {_q(plan.name + '_embedding_hnsw')} ON {st['store_name']} "
                 f"USING hnsw (embedding {opclass})" + (f" WITH ({with_opts})" if with_opts else ""))
    st["indexed"] = True
    return True


def run_job(vectorizer_id: int) -> None:
    """The pg_cron job: stay resident for loop_seconds, draining whenever items appear."""
    plan = _plan_or_record(vectorizer_id)
    if plan is None:
        return
    sched = plan.config.get("scheduling") or {}
    deadline = time.monotonic() + float(sched.get("loop_seconds", 62))
    poll = max(0.05, float(sched.get("poll_interval", 0.2)))
    while time.monotonic() < deadline:
        plan = _plan_or_record(vectorizer_id)
        if plan is None or (plan.config.get("scheduling") or {}).get("disabled"):
            return
        execute(vectorizer_id)
        plpy.execute(f"SELECT pg_catalog.pg_sleep({poll})")
        _commit()
