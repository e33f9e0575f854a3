"""Evaluation from the client: load labelled queries, run and read evaluations, gate CI on them.

The scoring itself runs in the database (ai.evaluate_retrieval, ai.evaluate_rag,
ai.compare_evaluations: sql/functions/75_evaluation.sql); this module writes query sets in
the documented shape

    CREATE TABLE my_queries (query_id text PRIMARY KEY, query text NOT NULL, relevant jsonb NOT NULL)

(``relevant``: {"source key": grade}) from the common formats, and decides CI gates.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

METHODS = ("semantic", "hybrid", "text")


@dataclass
class LabelledQuery:
    """One query and its judged source keys (grade > 0: relevant)."""

    query_id: str
    query: str
    relevant: dict[str, float] = field(default_factory=dict)


class LoadError(ValueError):
    """A query or judgement file that cannot be read as its format says."""


# --- loaders -------------------------------------------------------------------------------

def _grade(raw: str, where: str) -> float:
    """A relevance grade (integer or decimal), or a LoadError naming the line."""
    try:
        return float(raw)
    except ValueError:
        raise LoadError(f"{where}: grade {raw!r} is not a number") from None


def _joined(texts: dict[str, str], judgements: dict[str, dict[str, float]], source: str) -> list[LabelledQuery]:
    """Queries with their judgements; a judged query without text is an error."""
    missing = sorted(set(judgements) - set(texts))
    if missing:
        raise LoadError(f"{source}: judgements for queries without text: {', '.join(missing[:5])}")
    return [LabelledQuery(qid, texts[qid], judgements.get(qid, {})) for qid in texts]


def read_trec_qrels(path: Path) -> dict[str, dict[str, float]]:
    """TREC qrels: `query_id iteration doc_id grade` per line, separated by spaces or tabs."""
    out: dict[str, dict[str, float]] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise LoadError(f"{path}:{n}: a TREC qrels line has 4 fields (query_id 0 doc_id grade), got {line!r}")
        out.setdefault(parts[0], {})[parts[2]] = _grade(parts[3], f"{path}:{n}")
    return out


def read_tsv_queries(path: Path) -> dict[str, str]:
    """Queries as `query_id<TAB>text` lines (TREC topics as MS MARCO and BEIR ship them)."""
    out = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise LoadError(f"{path}:{n}: expected `query_id<TAB>query text`, got {line!r}")
        out[qid.strip()] = text.strip()
    return out


def load_trec(queries: Path, qrels: Path) -> list[LabelledQuery]:
    """A TREC-style set: a TSV of queries and a qrels file."""
    return _joined(read_tsv_queries(queries), read_trec_qrels(qrels), str(qrels))


def load_beir(folder: Path, split: str = "test") -> list[LabelledQuery]:
    """A BEIR dataset folder: queries.jsonl ({"_id", "text"}) and qrels/<split>.tsv
    (`query-id corpus-id score`, with a header). Only queries with judgements are kept."""
    folder = Path(folder)
    texts = {}
    for n, line in enumerate((folder / "queries.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                item = json.loads(line)
                texts[str(item["_id"])] = item["text"]
            except (ValueError, KeyError, TypeError):
                raise LoadError(f"{folder / 'queries.jsonl'}:{n}: expected {{\"_id\": ..., \"text\": ...}}") from None
    qrels_path = folder / "qrels" / f"{split}.tsv"
    judgements: dict[str, dict[str, float]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if n == 1 and row and not row[-1].strip().lstrip("-").replace(".", "").isdigit():
                continue  # the header
            if len(row) != 3:
                raise LoadError(f"{qrels_path}:{n}: expected query-id, corpus-id, score")
            judgements.setdefault(row[0], {})[row[1]] = _grade(row[2], f"{qrels_path}:{n}")
    return [q for q in _joined({k: v for k, v in texts.items() if k in judgements}, judgements, str(qrels_path))]


def load_csv(path: Path) -> list[LabelledQuery]:
    """A CSV with a header: query_id, query, doc_key and optionally grade (default 1);
    one line per judgement (a query's text repeated on each)."""
    texts: dict[str, str] = {}
    judgements: dict[str, dict[str, float]] = {}
    with Path(path).open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"query_id", "query", "doc_key"} - set(reader.fieldnames or [])
        if missing:
            raise LoadError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                            "the header is query_id,query,doc_key[,grade]")
        for n, row in enumerate(reader, 2):
            qid = row["query_id"].strip()
            texts.setdefault(qid, row["query"].strip())
            if row["doc_key"].strip():
                grade = _grade(row.get("grade") or "1", f"{path}:{n}")
                judgements.setdefault(qid, {})[row["doc_key"].strip()] = grade
    return _joined(texts, judgements, str(path))


def write_query_set(conn: psycopg.Connection, table: str, queries: Iterable[LabelledQuery],
                    replace: bool = False) -> int:
    """Create the query-set table (schema-qualified names allowed) and fill it; the rows written.
    replace: empty an existing table first; otherwise rows with the same query_id are updated."""
    name = sql.Identifier(*table.split(".", 1))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (query_id text PRIMARY KEY, query text NOT NULL, "
                         "relevant jsonb NOT NULL)").format(name))
    if replace:
        conn.execute(sql.SQL("DELETE FROM {}").format(name))
    rows = [(q.query_id, q.query, Jsonb(q.relevant)) for q in queries]
    with conn.cursor() as cur:
        cur.executemany(sql.SQL("INSERT INTO {} (query_id, query, relevant) VALUES (%s, %s, %s) "
                                "ON CONFLICT (query_id) DO UPDATE SET query = excluded.query, "
                                "relevant = excluded.relevant").format(name), rows)
    return len(rows)


# --- running and reading -------------------------------------------------------------------

@dataclass
class Run:
    """One evaluation run as recorded in the history."""

    id: int
    label: str | None
    vectorizer: str
    method: str
    k: int
    queries: int
    skipped: int
    metrics: dict[str, Any]
    config: dict[str, Any]

    @property
    def ndcg(self) -> float | None:
        """nDCG at the run's k."""
        return self.metrics.get(f"ndcg@{self.k}")


def evaluate(conn: psycopg.Connection, vectorizer: str, queries: str, method: str = "semantic", k: int = 10,
             label: str | None = None, **search: Any) -> Run:
    """Run ai.evaluate_retrieval (search: vector_weight, text_weight, rrf_k, language, chunks)."""
    args = {"vectorizer": vectorizer, "queries": queries, "method": method, "k": k, "label": label, **search}
    call = ", ".join(f"{name} => %({name})s" for name in args)
    run_id = conn.execute(f"SELECT run_id FROM ai.evaluate_retrieval({call})", args).fetchone()[0]
    return run(conn, run_id)


def run(conn: psycopg.Connection, run_id: int) -> Run:
    """A recorded run (LookupError when it does not exist or is not visible to this role)."""
    row = conn.execute("""SELECT id, label, vectorizer_name, method, k, queries, skipped, metrics, config
                          FROM ai.evaluation_run WHERE id = %s""", (run_id,)).fetchone()
    if row is None:
        raise LookupError(f"evaluation run {run_id} does not exist, or was run by a role whose runs "
                          "you may not see (`pgweave eval show` lists yours)")
    return Run(*row)


def runs(conn: psycopg.Connection, limit: int = 20) -> list[Run]:
    """The most recent runs this role may see, newest first."""
    ids = conn.execute("SELECT id FROM ai.evaluation_run ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return [run(conn, i) for (i,) in ids]


def compare(conn: psycopg.Connection, run_a: int, run_b: int, resamples: int = 1000) -> list[dict[str, Any]]:
    """ai.compare_evaluations as dicts (metric, run_a_value, run_b_value, difference, ci_low, ...)."""
    cur = conn.execute("SELECT * FROM ai.compare_evaluations(%s, %s, %s)", (run_a, run_b, resamples))
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def changes(conn: psycopg.Connection, run_a: int, run_b: int, metric: str | None = None) -> list[tuple]:
    """The queries whose metric changed from A to B: (query_id, query, a, b, difference)."""
    return conn.execute("SELECT * FROM ai.evaluation_changes(%s, %s, %s)", (run_a, run_b, metric)).fetchall()


def gate(current: Run, min_ndcg: float | None = None, baseline: Run | None = None,
         max_drop: float | None = None) -> list[str]:
    """The reasons a CI gate fails (empty: it passes): nDCG@k below min_ndcg, or more than
    max_drop below the baseline run's nDCG@k (the runs must use the same k)."""
    problems = []
    ndcg = current.ndcg
    if ndcg is None:
        return [f"run {current.id} has no nDCG@{current.k}: no query of its set has a relevant document"]
    if min_ndcg is not None and ndcg < min_ndcg:
        problems.append(f"nDCG@{current.k} {ndcg:.4f} is below --min-ndcg {min_ndcg:.4f}")
    if baseline is not None and max_drop is not None:
        if baseline.k != current.k:
            problems.append(f"baseline run {baseline.id} used k={baseline.k}, this run k={current.k}: "
                            "compare runs with the same k")
        elif baseline.ndcg is not None and baseline.ndcg - ndcg > max_drop:
            problems.append(f"nDCG@{current.k} dropped {baseline.ndcg - ndcg:.4f} from baseline run "
                            f"{baseline.id} ({baseline.ndcg:.4f} -> {ndcg:.4f}), more than --max-drop {max_drop:.4f}")
    return problems
