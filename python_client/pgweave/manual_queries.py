"""A labelled query set from the PostgreSQL manual (for `make demo`, the bench and the tests).

Each SQL command's reference page opens with a one-line purpose written by its authors:
"ALTER TABLE — change the definition of a table". The purpose ("change the definition of a
table") becomes a query whose one relevant document is that page, and the line is removed
from the page's indexed text, so the match is not trivial (the command's name stays in the
title, the query never names it).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .corpus import Page
from .evaluation import LabelledQuery, evaluate

_PURPOSE = re.compile(r"^\s*(?P<names>[^\n—]+?)\s+—\s+(?P<purpose>[^\n]+?)\s*$", re.MULTILINE)


def purpose_queries(pages: list[Page]) -> tuple[list[Page], list[LabelledQuery]]:
    """The pages without purpose lines, and one query per distinct purpose (query_id: the
    first page's slug); pages sharing a purpose ("define a new database role": CREATE ROLE,
    CREATE USER, CREATE GROUP) are all relevant to it. Keys are slugs, the demo's primary key."""
    queries: dict[str, LabelledQuery] = {}
    for page in pages:
        own = [m for m in _PURPOSE.finditer(page.body) if m.group("names").strip() == page.title]
        if own:
            purpose = own[0].group("purpose")
            queries.setdefault(purpose, LabelledQuery(page.slug, purpose)).relevant[page.slug] = 1
    # Every line stating a known purpose goes, wherever it is: the index of commands
    # (sql-commands) lists them all, and would otherwise answer every query word for word.
    stripped = [replace(page, body=_PURPOSE.sub(lambda m: "" if m.group("purpose") in queries else m.group(0),
                                                page.body)) for page in pages]
    return stripped, list(queries.values())


def print_ndcg_table(conn, console, vectorizer: str, queries: str, k: int = 10) -> None:
    """Score semantic, full-text and hybrid search on a query set (each a run in the evaluation
    history) and print nDCG@k, recall@k and MRR@k of each. As the store's owner, it first
    creates the full-text index that text and hybrid search use (searches never do)."""
    conn.execute("SELECT ai.create_text_index(%s)", (vectorizer,))
    console.print(f"\n[bold]retrieval quality on {queries} (the manual's purpose lines), k = {k}[/]")
    console.print(f"  {'method':<10}{'nDCG':>8}{'recall':>8}{'MRR':>8}   run")
    for method in ("semantic", "text", "hybrid"):
        run = evaluate(conn, vectorizer, queries, method=method, k=k, label=f"manual {method}")
        m = run.metrics
        console.print(f"  {method:<10}{m[f'ndcg@{k}']:>8.3f}{m[f'recall@{k}']:>8.3f}{m[f'mrr@{k}']:>8.3f}   {run.id}")
    console.print("  compare two runs: pgweave eval compare A B")
