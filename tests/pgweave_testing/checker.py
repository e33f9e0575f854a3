"""Recompute what a store must hold from the current source rows, independently of the engine.

Chunks come from LangChain's splitter; embeddings from sentence-transformers' all-minilm in
this process (the `st_model` fixture, itself checked against the shipped reference vectors
before use). Neither goes through pgweave's engine, its SQL or its model server.
"""

from __future__ import annotations

import numpy as np
import psycopg
from langchain_text_splitters import RecursiveCharacterTextSplitter

from .helpers import vec

SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]


def expected_chunks(conn, table: str = "docs", column: str = "body", chunk_size: int = 100) -> dict:
    """Key -> LangChain's chunks of the row's current text (rows without text have none)."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=0, separators=SEPARATORS)
    out = {}
    for key, body in conn.execute(f"SELECT id, {column} FROM {table} ORDER BY id"):
        chunks = splitter.split_text(body) if body and body.strip() else []
        if chunks:
            out[key] = chunks
    return out


def stored_chunks(conn, store: str = "docs_embedding_store") -> dict:
    """Key -> the chunks a store holds, in chunk_seq order."""
    out: dict = {}
    for key, chunk in conn.execute(f"SELECT id, chunk FROM {store} ORDER BY id, chunk_seq"):
        out.setdefault(key, []).append(chunk)
    return out


def check_exact(dsn: str, st_model, *, table: str = "docs", store: str = "docs_embedding_store",
                queue: str = "ai._vectorizer_q_1", chunk_size: int = 100) -> dict[str, int]:
    """Assert the queue is empty and the store holds exactly the current rows' chunks with
    correct embeddings; return the row and chunk counts."""
    with psycopg.connect(dsn) as conn:
        pending = conn.execute(f"SELECT count(*) FROM {queue}").fetchone()[0]
        assert pending == 0, f"{pending} items still queued"
        expected = expected_chunks(conn, table, chunk_size=chunk_size)
        rows = conn.execute(f"SELECT id, chunk, embedding::text FROM {store} ORDER BY id, chunk_seq").fetchall()
    stored: dict = {}
    for key, chunk, _ in rows:
        stored.setdefault(key, []).append(chunk)
    assert stored == expected, "stale, missing or duplicate chunks"
    if rows:
        direct = st_model.encode([r[1] for r in rows], normalize_embeddings=True, batch_size=64)
        got = np.stack([vec(r[2]) for r in rows])
        worst = float(np.min(np.sum(direct * got, axis=1)))
        assert worst > 0.9999, f"an embedding does not match its chunk (cosine {worst:.5f})"
    return {"rows": len(expected), "chunks": len(rows)}
