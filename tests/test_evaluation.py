"""Evaluation next to the data: metrics that are right, a history that compares, RAG judged.

The metrics are checked by hand on small cases and against ir_measures (pytrec_eval, an
independent implementation of trec_eval) on a labelled set searched with real embeddings;
runs of two real vectorizers are compared; a non-superuser in a database that is not
pg_cron's evaluates its own table and sees only its own runs.
"""

from __future__ import annotations

import json
import math

import ir_measures
import psycopg
import pytest
from ir_measures import AP, RR, Qrel, R, ScoredDoc, nDCG, P

from pgweave_testing.helpers import TINY_LM, execute_vectorizer, role_dsn
from test_search import QUESTIONS, _articles

# The questions of the search tests, with graded judgements: the article that answers (2) and
# a related one (1); one question has only a non-relevant judgement.
GRADED = {
    "q1": ("Which pet purrs when it is happy?", {"1": 2, "2": 1}),
    "q2": ("How do I take my dog for exercise?", {"2": 2, "8": 1}),
    "q3": ("Which programming language is memory safe without garbage collection?", {"3": 2}),
    "q4": ("How does Postgres clean up dead rows?", {"4": 2, "11": 1}),
    "q5": ("When do freelancers have to pay estimated taxes?", {"5": 2, "10": 1}),
    "q6": ("How is bread made with wild yeast?", {"6": 2}),
    "q7": ("How do plants make sugar from light?", {"7": 2, "9": 1}),
    "q8": ("What is the name of the moon's largest crater?", {"3": 0}),
} | {f"s{i}": (q, {str(doc): 1}) for i, (q, doc) in enumerate(QUESTIONS[7:], 8)}


def _query_set(conn, table: str = "labelled") -> None:
    conn.execute(f"CREATE TABLE {table} (query_id text PRIMARY KEY, query text NOT NULL, relevant jsonb NOT NULL)")
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                        [(qid, q, json.dumps(rel)) for qid, (q, rel) in GRADED.items()])


def _metrics(conn, ranked: list[str], relevant: dict, k: int) -> dict | None:
    return conn.execute("SELECT ai.retrieval_metrics(%s, %s, %s)", (ranked, json.dumps(relevant), k)).fetchone()[0]


# --- metrics by hand -----------------------------------------------------------------------

def test_metrics_of_hand_computed_rankings(db):
    with psycopg.connect(db) as conn:
        # Two chunks of row a count once: the ranking is a, b, c.
        m = _metrics(conn, ["a", "b", "a", "c"], {"a": 1, "c": 2}, 3)
        idcg = 2 + 1 / math.log2(3)
        assert m == pytest.approx({"ndcg@3": (1 + 2 / 2) / idcg, "recall@3": 1.0, "precision@3": 2 / 3,
                                   "hit_rate@3": 1.0, "mrr@3": 1.0, "map@3": (1 + 2 / 3) / 2})
        # k larger than the results: precision still divides by k; a relevant row never found
        # lowers recall, AP and the ideal DCG's reach.
        m = _metrics(conn, ["x", "a"], {"a": 1, "b": 1}, 10)
        assert m == pytest.approx({"ndcg@10": (1 / math.log2(3)) / (1 + 1 / math.log2(3)), "recall@10": 0.5,
                                   "precision@10": 0.1, "hit_rate@10": 1.0, "mrr@10": 0.5, "map@10": 0.25})
        # Ties of grade: either order of two equally relevant rows is ideal.
        assert _metrics(conn, ["b", "a"], {"a": 1, "b": 1}, 2)["ndcg@2"] == pytest.approx(1.0)
        # Graded: the more relevant row first is better than the other way round.
        better = _metrics(conn, ["a", "b"], {"a": 2, "b": 1}, 2)["ndcg@2"]
        worse = _metrics(conn, ["b", "a"], {"a": 2, "b": 1}, 2)["ndcg@2"]
        assert better == pytest.approx(1.0) and worse == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
        # Nothing found: every metric is zero; nothing relevant: no metrics at all.
        assert set(_metrics(conn, [], {"a": 1}, 5).values()) == {0.0}
        assert _metrics(conn, ["a"], {"a": 0}, 5) is None
        assert _metrics(conn, ["a"], {}, 5) is None
        with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
            _metrics(conn, ["a"], {"a": "yes"}, 5)
        assert "grades" in info.value.diag.message_primary and info.value.diag.message_hint


# --- runs on real searches, checked against ir_measures -----------------------------------------

def test_retrieval_metrics_agree_with_ir_measures_on_a_labelled_set(db):
    _articles(db)
    with psycopg.connect(db, autocommit=True) as conn:
        _query_set(conn)
        for method in ("semantic", "hybrid", "text"):
            run_id, scored, skipped, summary = conn.execute(
                "SELECT * FROM ai.evaluate_retrieval('articles_embedding', 'labelled', method => %s, k => 5)",
                (method,)).fetchone()
            assert (scored, skipped) == (len(GRADED) - 1, 1)
            rows = conn.execute("""SELECT query_id, retrieved, relevant, metrics FROM ai.evaluation_query
                                   WHERE run_id = %s""", (run_id,)).fetchall()
            qrels = [Qrel(q, d, int(g)) for q, _, rel, _ in rows for d, g in rel.items()]
            run = [ScoredDoc(q, d, -float(i)) for q, retrieved, _, _ in rows for i, d in enumerate(retrieved[:5])]
            measures = {"ndcg@5": nDCG @ 5, "recall@5": R @ 5, "precision@5": P @ 5, "mrr@5": RR @ 5,
                        "map@5": AP @ 5}
            ours = {q: m for q, _, _, m in rows if m is not None}
            for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
                name = next(n for n, m in measures.items() if m == metric.measure)
                if metric.query_id in ours:
                    assert ours[metric.query_id][name] == pytest.approx(metric.value, abs=1e-9), (method, metric)
            expected = ir_measures.calc_aggregate(list(measures.values()),
                                                  [q for q in qrels if q.query_id in ours], run)
            for name, measure in measures.items():
                assert summary[name] == pytest.approx(expected[measure], abs=1e-9), (method, name)
            assert summary["latency_ms_p50"] > 0
        # A clear question set: semantic search finds most answers first.
        best = conn.execute("SELECT max((metrics->>'mrr@5')::float8) FROM ai.evaluation_run").fetchone()[0]
        assert best > 0.7


def test_two_vectorizers_are_compared_with_a_paired_interval_and_the_changed_queries(db):
    _articles(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""SELECT ai.create_vectorizer('articles'::regclass, name => 'tiny_chunks',
            destination => 'articles_tiny', loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('all-minilm', 128),
            chunking => ai.chunking_character_text_splitter(60, 0, ' '), scheduling => ai.scheduling_none())""")
    execute_vectorizer(db, "tiny_chunks")
    with psycopg.connect(db, autocommit=True) as conn:
        _query_set(conn)
        a = conn.execute("SELECT run_id FROM ai.evaluate_retrieval('articles_embedding', 'labelled', label => 'base')"
                         ).fetchone()[0]
        b = conn.execute("SELECT run_id FROM ai.evaluate_retrieval('tiny_chunks', 'labelled', label => 'tiny')"
                         ).fetchone()[0]
        snapshot = conn.execute("SELECT config FROM ai.evaluation_run WHERE id = %s", (b,)).fetchone()[0]
        assert snapshot["vectorizer"]["embedding"]["dimensions"] == 128
        assert snapshot["vectorizer"]["chunking"]["chunk_size"] == 60
        assert snapshot["search"] == {"method": "semantic", "k": 10, "chunks": 100, "language": "english"}
        rows = {r[0]: r for r in conn.execute("SELECT * FROM ai.compare_evaluations(%s, %s)", (a, b)).fetchall()}
        metric, queries, va, vb, diff, low, high, p, better, worse = rows["ndcg@10"]
        assert queries == len(GRADED) - 1
        assert diff == pytest.approx(vb - va) and low <= diff <= high and 0 < p <= 1
        changed = conn.execute("SELECT * FROM ai.evaluation_changes(%s, %s)", (a, b)).fetchall()
        assert len([c for c in changed if c[4] > 0]) == better and len([c for c in changed if c[4] < 0]) == worse
        assert [abs(c[4]) for c in changed] == sorted((abs(c[4]) for c in changed), reverse=True)
        # The same run against itself: no difference, an interval of zero, nothing changed.
        same = {r[0]: r for r in conn.execute("SELECT * FROM ai.compare_evaluations(%s, %s)", (a, a)).fetchall()}
        assert same["ndcg@10"][4:8] == (0.0, 0.0, 0.0, 1.0)
        # The history lists both, newest first; a dropped vectorizer keeps its history.
        conn.execute("SELECT ai.drop_vectorizer('tiny_chunks')")
        history = conn.execute("SELECT id, vectorizer_name, label FROM ai.evaluation_runs").fetchall()
        assert history == [(b, "tiny_chunks", "tiny"), (a, "articles_embedding", "base")]


def test_a_reader_evaluates_its_own_table_and_sees_only_its_own_runs(db):
    with psycopg.connect(db, autocommit=True) as conn:
        for role in ("eval_reader", "eval_other"):
            conn.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN")
            conn.execute("SELECT ai.grant_ai_usage(%s)", (role,))
        conn.execute("GRANT CREATE ON SCHEMA public TO eval_reader")
        assert conn.execute("SHOW cron.database_name").fetchone()[0] != conn.info.dbname
    _articles(db, ", grant_to => ARRAY['eval_reader']")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON articles, authors TO eval_reader")
    try:
        with psycopg.connect(role_dsn(db, "eval_reader"), autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
            _query_set(conn, "my_queries")
            run_id, scored, _, summary = conn.execute(
                "SELECT * FROM ai.evaluate_retrieval('articles_embedding', 'my_queries', 'hybrid', 3)").fetchone()
            assert scored == len(GRADED) - 1 and 0 < summary["ndcg@3"] <= 1
            assert conn.execute("SELECT run_by FROM ai.evaluation_runs").fetchall() == [("eval_reader",)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM ai.evaluation_run")
            # Nor may it write a run it did not measure, through the internals.
            forged = ("""'{"kind": "retrieval", "vectorizer_name": "x", "query_set": "y", "method": "semantic",
                         "k": 10, "config": {}, "metrics": {"ndcg@10": 1}, "queries": 1, "skipped": 0}'""")
            for internal in ("_evaluation_save", "_evaluation_insert"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT ai.{internal}({forged}, '[]')")
            assert conn.execute("SELECT count(*) FROM ai.evaluation_run").fetchone()[0] == 1
        with psycopg.connect(role_dsn(db, "eval_other"), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM ai.evaluation_query").fetchone()[0] == 0
            with pytest.raises(psycopg.errors.UndefinedObject) as info:
                conn.execute("SELECT * FROM ai.compare_evaluations(%s, %s)", (run_id, run_id))
            assert "may not see" in info.value.diag.message_primary
            # It may not read the reader's query table: the evaluation says so, and records nothing.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM ai.evaluate_retrieval('articles_embedding', 'my_queries')")
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY eval_reader, eval_other; DROP ROLE eval_reader; DROP ROLE eval_other")


def test_a_table_of_another_shape_gets_the_shape_to_write(db):
    _articles(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE wrong (id int, question text)")
        with pytest.raises(psycopg.errors.UndefinedColumn) as info:
            conn.execute("SELECT * FROM ai.evaluate_retrieval('articles_embedding', 'wrong')")
        assert "query_id" in info.value.diag.message_hint and "relevant jsonb" in info.value.diag.message_hint
        _query_set(conn)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown search method"):
            conn.execute("SELECT * FROM ai.evaluate_retrieval('articles_embedding', 'labelled', 'fuzzy')")
        assert conn.execute("SELECT count(*) FROM ai.evaluation_run").fetchone()[0] == 0


# --- RAG ----------------------------------------------------------------------------------------

def test_rag_answers_are_judged_with_a_visible_replaceable_prompt(db):
    """The mechanism, end to end with the test server's tiny random chat model: its answers and
    verdicts are gibberish, so this checks what is asked, recorded and parsed, not quality."""
    _articles(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE two (query_id text PRIMARY KEY, query text NOT NULL, relevant jsonb NOT NULL)")
        conn.execute("""INSERT INTO two VALUES ('a', 'How is bread made with wild yeast?', '{"6": 1}'),
                                               ('b', 'How do plants make sugar from light?', '{"7": 1}')""")
        default = conn.execute("SELECT ai.rag_judge_prompt()").fetchone()[0]
        assert "{question}" in default and "faithfulness" in default
        mine = "Q: {question}\nS: {sources}\nA: {answer}\nScore it."
        run_id, scored, _, summary = conn.execute(
            """SELECT * FROM ai.evaluate_rag('articles_embedding', 'two', %s, k => 2, judge_prompt => %s,
                                             options => '{"num_predict": 8}')""", (TINY_LM, mine)).fetchone()
        assert scored == 2 and summary["hit_rate@2"] == 1.0
        rows = conn.execute("SELECT query, details, retrieved FROM ai.evaluation_query WHERE run_id = %s ORDER BY 1",
                            (run_id,)).fetchall()
        for query, details, retrieved in rows:
            assert details["judge_prompt"].startswith(f"Q: {query}\nS: [1] ")
            assert details["judge_prompt"].endswith(f"A: {details['answer']}\nScore it.")
            assert isinstance(details["judge_reply"], str) and set(details["scores"]) == {
                "faithfulness", "answer_relevance", "context_precision"}
            assert len(retrieved) == 2
        config = conn.execute("SELECT config->'rag' FROM ai.evaluation_run WHERE id = %s", (run_id,)).fetchone()[0]
        assert config["judge_prompt"] == mine and config["model"] == TINY_LM
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="judge_prompt"):
            conn.execute("SELECT * FROM ai.evaluate_rag('articles_embedding', 'two', %s, judge_prompt => '{nope}')",
                         (TINY_LM,))


def test_the_judges_scores_are_read_from_its_reply(db):
    with psycopg.connect(db) as conn:
        conn.execute("""CREATE FUNCTION pg_temp.scores(reply text) RETURNS text LANGUAGE plpython3u AS $$
            if "pgweave" not in GD: plpy.execute("SELECT ai._load_python()")
            import json
            return json.dumps(GD["pgweave"].evaluation.judge_scores(reply))
        $$""")

        def scores(reply: str) -> dict:
            return json.loads(conn.execute("SELECT pg_temp.scores(%s)", (reply,)).fetchone()[0])

        assert scores('Sure! {"faithfulness": 0.9, "answer_relevance": 1, "context_precision": 0.25} done') == {
            "faithfulness": 0.9, "answer_relevance": 1.0, "context_precision": 0.25}
        assert scores("faithfulness: 0.5\nanswer_relevance = 1.0") == {
            "faithfulness": 0.5, "answer_relevance": 1.0, "context_precision": None}
        assert scores('{"faithfulness": 7}')["faithfulness"] == 1.0
        assert set(scores("wibble wobble").values()) == {None}
