"""The vectorizer engine: drain a queue into the store, one committed batch at a time.

One batch, in this order (the order is what keeps the store exact under concurrency):
1. claim queue items (FOR UPDATE SKIP LOCKED, plus a transaction advisory lock per source
   key so two workers never work on the same row at once), then every other queued item
   of the same keys;
2. read the *current* source rows of those keys (a later statement, so every change that
   queued a claimed item is visible); a key with no row means the row is gone;
3. chunk and format; reuse the stored embedding of any chunk whose formatted text is
   unchanged; embed the rest in batched requests, each sent as soon as its texts are known
   (the model server works while the engine chunks the next rows);
4. replace the keys' chunks in the store, delete exactly the claimed items, commit.
A change committed after step 1 queues a new item, which is not claimed here and is
processed later: nothing is lost and the last version wins. A truncate of the source
waits for step 2's lock or is seen by it, then empties the store in its trigger.

Rights: whoever drives the engine (the background scheduler as the installer, `CALL
ai.execute_vectorizer` by the owner, `pgweave worker`), every statement on the source,
queue and store runs inside the vectorizer's own function ``ai._vectorizer_engine_<id>``,
which is owned by the vectorizer's owner and SECURITY DEFINER: with the owner's rights,
and PostgreSQL refuses SET ROLE inside it, so nothing the owner controls (triggers,
domains, policies, functions) can take more. The driver itself touches only pgweave's
own catalog (progress and errors). ``run_op`` is what that function runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import plpy

from . import catalog, chunking, formatting, loading, queue, secrets, settings, statements, store
from .catalog import Vectorizer
from .embedding import Requests, message
from .errors import fail, hint_of

# Failures of the request itself (bad input, a row's unusable document) are isolated per item;
# others (server down, timeouts, server errors) are recorded once for the whole batch.
_INPUT_ERROR_STATES = {"22023", "22000", "22004", "22001", "22P03", "54000", "58P01", "58030"}
# A cancel, a statement timeout or a shutdown stops the engine: never recorded, never retried.
_STOP_STATES = {"57014", "57P01", "57P02", "57P03"}


@dataclass
class BatchResult:
    """What one batch did."""

    items: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    model_calls: int = 0


# --- inside ai._vectorizer_engine_<id>: the owner's rights ------------------------------------

def run_op(vectorizer_id: int, op: str, args_json: str | None) -> str:
    """One engine operation on a vectorizer's tables, as its owner; returns JSON."""
    vz = catalog.read(vectorizer_id)
    if vz is None:
        fail(f"vectorizer {vectorizer_id} does not exist", sqlstate="42704")
    args = json.loads(args_json) if args_json else {}
    st = statements.for_vectorizer(vz)
    if op == "claim":
        return json.dumps(queue.claim(vz, st, args))
    if op == "process":
        return json.dumps(asdict(process(vz, st, args["ids"], args["keys"])))
    if op == "fail":
        queue.back_off(vz, st, args["ids"], args["message"], bool(args.get("park_now")))
        return "{}"
    if op == "has_work":
        return json.dumps(queue.has_work(st))
    if op == "index":
        return json.dumps(store.maybe_create_index(vz, st))
    if op == "enqueue_all":
        return json.dumps(queue.enqueue_all(st))
    fail(f"unknown engine operation {op!r}", sqlstate="22023")


def process(vz: Vectorizer, st: statements.Statements, ids: list[int], keys: list[str]) -> BatchResult:
    """Load, chunk, format, embed and store the claimed keys; delete the claimed items."""
    keys_json = "[" + ",".join(keys) + "]"
    sources = {r["key"]: r for r in plpy.execute(st.read_source, [keys_json])}
    stored = store.read(st, keys_json)
    # Reuse the embedding of any chunk whose formatted text is unchanged (any key, any seq);
    # a new generation also looks in the live store when the model is the same (38_alter.sql).
    known = store.reusable(st, keys_json)
    known.update((r["embedded_md5"], r["embedding"]) for rows in stored.values() for r in rows)

    result = BatchResult(items=len(ids))
    wanted: dict[str, list[tuple[int, str, str, str]]] = {}  # key -> [(seq, chunk, formatted, md5)]
    to_embed: dict[str, str] = {}  # md5 -> formatted text, in the order sent
    with settings.read_once():  # the requests of a batch go with the same settings
        requests = Requests(vz.config["embedding"], vz.processing.get("embedding_batch_size", 64), vz.name)
        for key in keys:
            wanted[key] = _chunks(vz, sources.get(key))
            for _, _, text, digest in wanted[key]:
                if digest not in known and digest not in to_embed:
                    to_embed[digest] = text
                    requests.add(text)
        if to_embed:
            known.update(zip(to_embed, requests.finish()))
            result.chunks_embedded, result.model_calls = len(to_embed), requests.calls

    changed_keys: list[str] = []  # the keys whose stored chunks are replaced
    rows: tuple[list, ...] = ([], [], [], [], [])  # key, seq, chunk, embedding, md5: unnest's arrays
    for key, chunks in wanted.items():
        before = sorted((r["chunk_seq"], r["chunk"], r["embedded_md5"]) for r in stored.get(key, []))
        after = [(seq, piece, digest) for seq, piece, _, digest in chunks]
        result.chunks_reused += sum(1 for _, _, d in after if d not in to_embed)
        if before == after:
            continue  # nothing to write: the store already holds exactly these chunks
        if before:
            changed_keys.append(key)  # its stored chunks go (a new key has none to delete)
        for seq, piece, digest in after:
            for column, value in zip(rows, (key, seq, piece, known[digest], digest)):
                column.append(value)
    store.replace(st, changed_keys, rows)
    queue.done(st, ids)
    return result


def _chunks(vz: Vectorizer, row: dict | None) -> list[tuple[int, str, str, str]]:
    """A source row's chunks: (seq, chunk, formatted text, md5); none for a row that is gone."""
    if row is None:
        return []  # the row is gone: so are its chunks
    fields = json.loads(row["fields"]) if row["fields"] else {}
    try:  # a document becomes parts (pages, sections), each chunked and cited on its own
        pieces = [loading.cite(where, piece) for where, text in loading.document(vz, row["content"])
                  for piece in chunking.chunk(vz.config["chunking"], text)]
    except ValueError as exc:
        fail(f"vectorizer {vz.name!r}: {exc}", sqlstate="22023",
             hint="fix the chunking config (recreate the vectorizer)")
    formatted = map(formatting.formatter(vz.config.get("formatting"), fields), pieces)
    return [(seq, piece, text, _md5(text)) for seq, (piece, text) in enumerate(zip(pieces, formatted))]


def _md5(text: str) -> str:
    """The hex md5 of a formatted chunk (the store's embedded_md5)."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()


# --- the driver: the caller's rights, pgweave's catalog only ------------------------------------

_OP_PLANS: dict[int, object] = {}
_PROGRESS = None


def operation(vectorizer_id: int, op: str, args: dict | None = None):
    """Run one engine operation through the vectorizer's owner-rights function."""
    plan = _OP_PLANS.get(vectorizer_id)
    if plan is None:
        plan = _OP_PLANS[vectorizer_id] = plpy.prepare(
            f"SELECT ai._vectorizer_engine_{int(vectorizer_id)}($1, $2) AS r", ["text", "text"])
    return json.loads(plpy.execute(plan, [op, json.dumps(args or {})])[0]["r"])


def _record_progress(vectorizer_id: int, done: BatchResult, runner: str) -> None:
    """Add a batch to the vectorizer's running totals."""
    global _PROGRESS
    if _PROGRESS is None:
        _PROGRESS = plpy.prepare("""
            UPDATE ai._vectorizer_progress SET items_processed = items_processed + $2,
                   chunks_embedded = chunks_embedded + $3, chunks_reused = chunks_reused + $4,
                   model_calls = model_calls + $5, last_success_at = pg_catalog.now(),
                   last_run_at = pg_catalog.now(), last_run_by = $6,
                   backlog_base = CASE WHEN backlog_started_at IS NULL THEN items_processed ELSE backlog_base END,
                   backlog_started_at = coalesce(backlog_started_at, pg_catalog.now())
            WHERE vectorizer_id = $1""", ["int", "int", "int", "int", "int", "text"])
    plpy.execute(_PROGRESS, [vectorizer_id, done.items, done.chunks_embedded, done.chunks_reused,
                             done.model_calls, runner])


def _record_idle(vectorizer_id: int) -> None:
    """The queue had nothing claimable: a backlog, if any, is over (its size stays for status;
    the next batch starts a new one). Writes only on that change."""
    plpy.execute(plpy.prepare("""
        UPDATE ai._vectorizer_progress SET backlog_started_at = NULL
        WHERE vectorizer_id = $1 AND backlog_started_at IS NOT NULL""", ["int"]), [vectorizer_id])


def record_error(vectorizer_id: int, exc: BaseException, items: int) -> str:
    """One row in ai.vectorizer_errors and the vectorizer's last error; the (redacted) message."""
    text = secrets.redact(message(exc))
    details = {"items": items, "sqlstate": getattr(exc, "sqlstate", None),
               "hint": secrets.redact(hint_of(exc) or "") or None,
               "error_type": type(exc).__name__}
    plpy.execute(plpy.prepare(
        "INSERT INTO ai._vectorizer_errors (vectorizer_id, message, details, recorded) "
        "VALUES ($1, $2, $3::jsonb, pg_catalog.clock_timestamp())",
        ["int", "text", "text"]), [vectorizer_id, text, json.dumps(details)])
    plpy.execute(plpy.prepare(
        "UPDATE ai._vectorizer_progress SET last_error_at = pg_catalog.clock_timestamp(), last_error = $2 "
        "WHERE vectorizer_id = $1",
        ["int", "text"]), [vectorizer_id, text])
    return text


def stops(exc: BaseException) -> bool:
    """PostgreSQL's own cancel, statement timeout or shutdown: the engine must stop, not record
    it as a failure. (A model server's timeout also has SQLSTATE 57014: that one is a failure.)"""
    state = getattr(exc, "sqlstate", None)
    return state in _STOP_STATES and (state != "57014" or "canceling statement due to" in str(exc))


def step(vectorizer_id: int, skip: list[int] | None, create_index: bool, runner: str,
         only_if_work: bool = False) -> dict:
    """One batch, called between the commits of ai.execute_vectorizer or ai._scheduler.

    Returns {"items", "idle", "failed"}: items processed, whether the queue had nothing to
    claim, and the ids that failed (the caller skips them for the rest of its run). A batch
    that fails is rolled back (its subtransaction) and recorded; a cancel is raised as it is.
    A vectorizer that cannot even claim returns {"error", "sqlstate", "hint"} after recording
    why, so that the caller commits the record before it raises.
    """
    try:
        with plpy.subtransaction():
            if only_if_work and not operation(vectorizer_id, "has_work"):
                _take_over(vectorizer_id)
                return {"items": 0, "idle": True, "failed": []}
            claimed = operation(vectorizer_id, "claim", {"skip": skip or []})
    except Exception as exc:
        if stops(exc):
            raise
        explained = _explain_unpreparable(vectorizer_id, exc)
        record_error(vectorizer_id, explained, items=0)
        return {"error": str(explained), "sqlstate": explained.sqlstate, "hint": explained.hint}
    if not claimed["ids"]:
        _record_idle(vectorizer_id)
        if create_index:
            operation(vectorizer_id, "index")
        _take_over(vectorizer_id)
        return {"items": 0, "idle": True, "failed": []}
    try:
        with plpy.subtransaction():
            done = BatchResult(**operation(vectorizer_id, "process", claimed))
            _record_progress(vectorizer_id, done, runner)
        return {"items": done.items, "idle": False, "failed": []}
    except Exception as exc:  # nothing written: items kept and backed off
        if stops(exc):
            raise
        if len(claimed["ids"]) > 1 and getattr(exc, "sqlstate", None) in _INPUT_ERROR_STATES:
            items = _isolate(vectorizer_id, claimed["ids"], runner)
        else:
            _fail(vectorizer_id, claimed["ids"], exc)
            items = 0
        return {"items": items, "idle": False, "failed": claimed["ids"]}


_TAKE_OVER = None


def _take_over(vectorizer_id: int) -> None:
    """A new generation whose queue is empty takes over its live vectorizer (ai._take_over;
    it does nothing for a live one, and returns without waiting when the locks are busy)."""
    global _TAKE_OVER
    if _TAKE_OVER is None:
        _TAKE_OVER = plpy.prepare("SELECT ai._take_over($1)", ["int"])
    try:
        with plpy.subtransaction():
            plpy.execute(_TAKE_OVER, [vectorizer_id])
    except Exception as exc:
        if stops(exc):
            raise
        record_error(vectorizer_id, exc, items=0)


def _fail(vectorizer_id: int, ids: list[int], exc: BaseException) -> None:
    """Record the error, back the items off, and park the exhausted ones."""
    text = record_error(vectorizer_id, exc, len(ids))
    if ids:  # a document no retry can fix (corrupt, over a limit) is parked at once
        operation(vectorizer_id, "fail", {"ids": ids, "message": text,
                                          "park_now": getattr(exc, "sqlstate", None) in loading.PARK_NOW})


def _isolate(vectorizer_id: int, ids: list[int], runner: str) -> int:
    """Process a failed batch's items one by one, so one bad input does not hold the rest."""
    done = 0
    for item in ids:
        try:
            with plpy.subtransaction():
                claimed = operation(vectorizer_id, "claim", {"only": [item]})
                if claimed["ids"]:
                    result = BatchResult(**operation(vectorizer_id, "process", claimed))
                    _record_progress(vectorizer_id, result, runner)
                    done += result.items
        except Exception as exc:
            if stops(exc):
                raise
            _fail(vectorizer_id, [item], exc)
    return done


class _Unpreparable(Exception):
    """A vectorizer whose statements cannot be prepared (a column it reads was renamed)."""

    def __init__(self, text: str, sqlstate: str | None, hint: str):
        super().__init__(text)
        self.sqlstate, self.hint = sqlstate, hint


def _explain_unpreparable(vectorizer_id: int, exc: BaseException) -> BaseException:
    """The error to record when a vectorizer cannot even claim: most often a renamed column."""
    vz = catalog.read(vectorizer_id)
    name = vz.name if vz else str(vectorizer_id)
    return _Unpreparable(f"vectorizer {name!r} cannot prepare its statements: {message(exc)}",
                         getattr(exc, "sqlstate", None) or "55000",
                         "was a column it reads renamed, dropped or retyped? Rename it back (the "
                         "queued items wait), or drop the vectorizer and create it again")
