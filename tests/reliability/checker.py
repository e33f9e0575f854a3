"""Recompute what a store must hold from the current source rows, independently of the engine.

Chunks come from LangChain's splitter, embeddings from sentence-transformers in this
process: neither shares code with pgweave's engine or model server.
"""

from __future__ import annotations

import numpy as np
import psycopg
from langchain_text_splitters import RecursiveCharacterTextSplitter

from conftest import vec


def check_exact(dsn: str, st_model, *, table: str = "docs", view_store: str = "docs_embedding_store",
                queue: str = "ai._vectorizer_q_1", chunk_size: int = 100) -> dict[str, int]:
    """Assert the store holds exactly the current rows' chunks with correct embeddings."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=0,
                                              separators=["\n\n", "\n", ".", "?", "!", " ", ""])
    with psycopg.connect(dsn) as conn:
        pending = conn.execute(f"SELECT count(*) FROM {queue}").fetchone()[0]
        assert pending == 0, f"{pending} items still queued"
        expected = {}
        for key, body in conn.execute(f"SELECT id, body FROM {table}"):
            chunks = splitter.split_text(body) if body and body.strip() else []
            if chunks:
                expected[key] = chunks
        stored: dict[int, list[tuple[str, object]]] = {}
        for key, seq, chunk, emb in conn.execute(
                f"SELECT id, chunk_seq, chunk, embedding::text FROM {view_store} ORDER BY id, chunk_seq"):
            stored.setdefault(key, []).append((chunk, emb))
    assert {k: [c for c, _ in v] for k, v in stored.items()} == expected, "stale, missing or duplicate chunks"
    texts = [c for v in stored.values() for c, _ in v]
    if texts:
        direct = st_model.encode(texts, normalize_embeddings=True, batch_size=64)
        got = np.stack([vec(e) for v in stored.values() for _, e in v])
        worst = float(np.min(np.sum(direct * got, axis=1)))
        assert worst > 0.9999, f"an embedding does not match its chunk (cosine {worst:.5f})"
    return {"rows": len(expected), "chunks": len(texts)}
