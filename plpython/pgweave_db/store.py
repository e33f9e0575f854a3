"""A vectorizer's store, as the engine uses it (with the owner's rights): read the stored chunks
of some keys, replace them, find reusable embeddings, create the vector index when the store is
big enough. The statements are in statements.py; the store's shape in sql/functions/33_store.sql."""

from __future__ import annotations

import plpy

from .catalog import Vectorizer
from .errors import fail
from .statements import Statements

_OPCLASSES = ("vector_cosine_ops", "vector_l2_ops", "vector_ip_ops", "vector_l1_ops")


def read(st: Statements, keys_json: str) -> dict[str, list[dict]]:
    """The stored chunks of these keys, by key."""
    stored: dict[str, list[dict]] = {}
    for r in plpy.execute(st.read_store, [keys_json]):
        stored.setdefault(r["key"], []).append(r)
    return stored


def reusable(st: Statements, keys_json: str) -> dict[str, str]:
    """embedded_md5 -> embedding from the live store, for a new generation with the same model
    (38_alter.sql); empty otherwise."""
    if st.read_reuse is None:
        return {}
    return {r["embedded_md5"]: r["embedding"] for r in plpy.execute(st.read_reuse, [keys_json])}


def replace(st: Statements, changed_keys: list[str], rows: tuple[list, ...]) -> None:
    """Delete the stored chunks of the changed keys and insert the new chunks (rows: the key,
    seq, chunk, embedding and md5 arrays the insert unnests)."""
    if changed_keys:
        plpy.execute(st.delete_store, ["[" + ",".join(changed_keys) + "]"])
    if rows[0]:
        try:
            plpy.execute(st.insert_store, list(rows))
        except plpy.SPIError as exc:
            _refused_embedding(exc)
            raise
        _analyze_new_store(st)


# pgvector's refusals of a literal: bad syntax, out of range, NaN or infinity, no numbers.
_VECTOR_REFUSALS = {"22P02", "22003", "22000", "22023"}


def _refused_embedding(exc: plpy.SPIError) -> None:
    """Turn pgvector refusing an embedding the model server sent (the engine passes the
    server's numbers through as text, and checks the length of a reply's first vector only)
    into an error about the server, not about the rows."""
    text = str(exc)
    if getattr(exc, "sqlstate", None) in _VECTOR_REFUSALS and (" vector" in text or "dimensions" in text):
        fail(f"the model server sent an embedding that is not a vector pgvector accepts: {text[:300]}",
             sqlstate="58000", hint="check that the embedding config points at an Ollama or "
                                    "OpenAI-compatible server, and that server's model")


def _analyze_new_store(st: Statements) -> None:
    """ANALYZE a store that never was, after its first rows: until then the planner takes it for
    empty (searches over its view plan badly). The engine's own lookups probe the (key,
    chunk_seq) index per key whatever the statistics (statements.per_key)."""
    if plpy.execute(st.never_analyzed)[0]["yes"]:
        plpy.execute(st.analyze_store)


def maybe_create_index(vz: Vectorizer, st: Statements) -> bool:
    """Create the HNSW index once the store holds min_rows chunks; True when created."""
    idx = vz.config.get("indexing") or {}
    if idx.get("implementation") != "hnsw" or plpy.execute(st.has_index)[0]["yes"]:
        return False
    min_rows = int(idx.get("min_rows", 100000))
    if plpy.execute(st.store_size, [min_rows])[0]["n"] < min_rows:
        return False
    opclass = idx.get("opclass", "vector_cosine_ops")
    if opclass not in _OPCLASSES:
        fail(f"unknown HNSW opclass {opclass!r}", sqlstate="22023", hint="use " + ", ".join(_OPCLASSES))
    with_opts = ", ".join(f"{k} = {int(idx[k])}" for k in ("m", "ef_construction") if idx.get(k))
    plpy.execute(st.create_index.format(opclass=opclass, with_opts=f" WITH ({with_opts})" if with_opts else ""))
    return True
