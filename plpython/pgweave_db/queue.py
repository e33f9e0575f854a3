"""A vectorizer's queue, as the engine uses it (with the owner's rights): claim a batch, say
whether anything is due, back failed items off and park the exhausted ones, enqueue every row.
The statements are in statements.py; the queue's shape in sql/functions/32_queue.sql."""

from __future__ import annotations

import plpy

from .catalog import Vectorizer
from .statements import Statements


def claim(vz: Vectorizer, st: Statements, args: dict) -> dict:
    """Claim a batch: {"ids": every claimed item, "keys": the picked items' keys}."""
    skip = args.get("skip") or []
    if args.get("only") is not None:
        picked = plpy.execute(st.claim_ids, [args["only"]])
    else:
        picked = plpy.execute(st.claim, [int(vz.processing.get("batch_size", 50)), skip])
    if not picked:
        return {"ids": [], "keys": []}
    keys = sorted({r["key"] for r in picked})
    ids = {r["id"] for r in picked}
    ids.update(r["id"] for r in plpy.execute(st.claim_same_keys, ["[" + ",".join(keys) + "]", skip]))
    return {"ids": sorted(ids), "keys": keys}


def has_work(st: Statements) -> bool:
    """Whether any item is due."""
    return plpy.execute(st.has_work)[0]["yes"]


def back_off(vz: Vectorizer, st: Statements, ids: list[int], message: str, park_now: bool = False) -> None:
    """Failed items wait retry_base_seconds * 2^attempts; those out of attempts (or any, with
    park_now) move to the failed queue."""
    plpy.execute(st.back_off, [ids, message, float(vz.processing.get("retry_base_seconds", 2))])
    plpy.execute(st.park, [ids, 1 if park_now else int(vz.processing.get("max_attempts", 6))])


def done(st: Statements, ids: list[int]) -> None:
    """Delete exactly the claimed items of a processed batch."""
    plpy.execute(st.delete_items, [ids])


def enqueue_all(st: Statements) -> int:
    """Queue every row of the source (the backfill); how many."""
    return plpy.execute(st.enqueue_all).nrows()
