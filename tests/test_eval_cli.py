"""`pgweave eval` as a CI job uses it: load labelled queries from common formats, run, show,
compare, and fail the job (exit 1) when quality is below a floor or dropped from a baseline.
Plus the manual's labelled set the demo and the bench score."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from pgweave.cli import app
from pgweave.corpus import postgres_docs
from pgweave.evaluation import LoadError, load_beir, load_csv, load_trec
from pgweave.manual_queries import purpose_queries
from test_search import _articles

runner = CliRunner()


def _eval(db: str, *args: str):
    return runner.invoke(app, ["eval", *args, "--dsn", db])


def _write_formats(tmp_path):
    """The same three judged queries as TREC, BEIR and CSV files."""
    (tmp_path / "topics.tsv").write_text("q1\tWhich pet purrs when it is happy?\n"
                                         "q2\tHow is bread made with wild yeast?\nq3\tWhat happens when magma "
                                         "reaches the surface?\n")
    (tmp_path / "qrels.txt").write_text("q1 0 1 2\nq1 0 2 1\nq2 0 6 1\nq3 0 9 1\n")
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in (
        ("q1", "Which pet purrs when it is happy?"), ("q2", "How is bread made with wild yeast?"),
        ("q3", "What happens when magma reaches the surface?"), ("q4", "an unjudged query"))) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t1\t2\nq1\t2\t1\nq2\t6\t1\nq3\t9\t1\n")
    (tmp_path / "judged.csv").write_text("query_id,query,doc_key,grade\n"
                                         "q1,Which pet purrs when it is happy?,1,2\n"
                                         "q1,Which pet purrs when it is happy?,2,1\n"
                                         "q2,How is bread made with wild yeast?,6,\n"
                                         "q3,What happens when magma reaches the surface?,9,1\n")
    return beir


def test_trec_beir_and_csv_load_the_same_query_set(tmp_path):
    beir = _write_formats(tmp_path)
    trec = load_trec(tmp_path / "topics.tsv", tmp_path / "qrels.txt")
    assert trec == load_beir(beir) == load_csv(tmp_path / "judged.csv")
    assert trec[0].relevant == {"1": 2.0, "2": 1.0}
    (tmp_path / "bad.txt").write_text("q1 0 1\n")
    with pytest.raises(LoadError, match="bad.txt:1: a TREC qrels line has 4 fields"):
        load_trec(tmp_path / "topics.tsv", tmp_path / "bad.txt")
    (tmp_path / "bad.csv").write_text("id,question\n1,x\n")
    with pytest.raises(LoadError, match="missing column.*doc_key"):
        load_csv(tmp_path / "bad.csv")


def test_a_ci_job_fails_on_a_low_score_or_a_drop_from_its_baseline(db, tmp_path):
    _articles(db)
    beir = _write_formats(tmp_path)
    loaded = _eval(db, "load", "ci_queries", "--beir", str(beir))
    assert loaded.exit_code == 0, loaded.output
    assert "3 queries in ci_queries" in loaded.output

    passed = _eval(db, "run", "articles_embedding", "ci_queries", "--min-ndcg", "0.5", "--label", "baseline")
    assert passed.exit_code == 0, passed.output
    assert "ndcg@10" in passed.output and all(len(line) <= 80 for line in passed.output.splitlines())
    with psycopg.connect(db) as conn:
        baseline_id, ndcg = conn.execute("SELECT id, ndcg FROM ai.evaluation_runs").fetchone()
    assert f"run {baseline_id}" in passed.output and ndcg > 0.5

    too_low = _eval(db, "run", "articles_embedding", "ci_queries", "--min-ndcg", "1.01")
    assert too_low.exit_code == 1
    assert "below --min-ndcg" in too_low.output

    # Full-text search alone finds fewer answers to these questions than semantic search: a drop.
    dropped = _eval(db, "run", "articles_embedding", "ci_queries", "--method", "text", "--baseline",
                    str(baseline_id), "--max-drop", "0.0", "--json")
    report = json.loads(dropped.stdout.splitlines()[0])
    assert report["metrics"]["ndcg@10"] < ndcg
    assert dropped.exit_code == 1 and "dropped" in report["gate_failures"][0]
    same = _eval(db, "run", "articles_embedding", "ci_queries", "--baseline", str(baseline_id), "--max-drop", "0.02")
    assert same.exit_code == 0, same.output

    usage = _eval(db, "run", "articles_embedding", "ci_queries", "--baseline", str(baseline_id))
    assert usage.exit_code == 2 and "--max-drop" in usage.output
    unknown = _eval(db, "run", "no_such_vectorizer", "ci_queries")
    assert unknown.exit_code == 2 and "no_such_vectorizer" in unknown.output
    missing = _eval(db, "show", "999999")
    assert missing.exit_code == 2 and "999999" in missing.output


def test_show_and_compare_fit_in_80_columns(db, tmp_path):
    _articles(db)
    _write_formats(tmp_path)
    assert _eval(db, "load", "q", "--csv", str(tmp_path / "judged.csv")).exit_code == 0
    for method in ("semantic", "hybrid"):
        assert _eval(db, "run", "articles_embedding", "q", "--method", method, "-k", "3").exit_code == 0
    listed = _eval(db, "show")
    assert listed.exit_code == 0 and listed.output.count("articles_embedding") == 2
    shown = _eval(db, "show", "2")
    assert "ndcg@3" in shown.output and "latency_ms_p50" in shown.output
    compared = _eval(db, "compare", "1", "2")
    assert compared.exit_code == 0, compared.output
    assert "95% CI" in compared.output and "ndcg@3" in compared.output
    for result in (listed, shown, compared):
        assert all(len(line) <= 80 for line in result.output.splitlines()), result.output


def test_the_manuals_purpose_lines_become_queries_and_leave_the_pages():
    pages = [p for prefix in ("sql-altertable", "sql-abort", "sql-rollback", "sql-commands")
             for p in postgres_docs(prefix=prefix)]
    pages, queries = purpose_queries(pages)
    by_slug = {p.slug: p for p in pages}
    alter_table = next(q for q in queries if q.query_id == "sql-altertable")
    assert alter_table.query == "change the definition of a table" and alter_table.relevant == {"sql-altertable": 1}
    assert "Synopsis" in by_slug["sql-altertable"].body and by_slug["sql-altertable"].title == "ALTER TABLE"
    # ABORT and ROLLBACK share their purpose: one query, both pages relevant.
    abort = next(q for q in queries if q.query == "abort the current transaction")
    assert abort.relevant == {"sql-abort": 1, "sql-rollback": 1}
    # No page states a query's answer any more, not even the index of all commands.
    assert "sql-commands" in by_slug and not any(q.query_id == "sql-commands" for q in queries)
    for q in queries:
        assert all(f"— {q.query}" not in p.body for p in pages), q
