"""Evaluation: score retrieval and RAG on labelled queries, keep the history, compare runs.

A query set is any table the caller may read with the columns ``query_id``, ``query`` and
``relevant`` (jsonb: {"source key": grade}, grade > 0 relevant; graded relevance feeds nDCG).
A source key is the text of the source row's primary key; with several key columns, the JSON
array of their values (``["a", 1]``). Relevance is judged per source row: the chunks of one
row count once, at the rank of the first.

Metrics follow trec_eval's definitions (checked against ``ir_measures`` in the tests): P@k
divides by k, AP@k by the number of relevant documents, nDCG@k uses linear gains and the
ideal ranking of every judged grade. A query without a relevant document has no metrics and is
left out of the means (counted as skipped).

Searches run as the caller, so the caller's grants and row-level security decide what is
retrieved; the results are written to ai.evaluation_run / ai.evaluation_query through the
gateway ai._evaluation_save (as the owner of ai, under the login role; see gateway.py).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from typing import Any

import plpy

from . import gateway, rag
from .errors import fail
from .query_cache import prepared, vectorizer_config

METHODS = ("semantic", "hybrid", "text")
QUERY_SET_SHAPE = ("CREATE TABLE my_queries (query_id text PRIMARY KEY, query text NOT NULL, "
                   "relevant jsonb NOT NULL)  -- relevant: {\"source key\": grade}")

DEFAULT_JUDGE_PROMPT = """You grade an answer produced from retrieved sources.

Question: {question}

Sources:
{sources}

Answer: {answer}

Give three scores between 0 and 1:
faithfulness: how much of the answer is supported by the sources;
answer_relevance: how well the answer addresses the question;
context_precision: the share of the sources that are relevant to the question.
Reply with exactly one JSON object and nothing else, e.g.
{{"faithfulness": 0.8, "answer_relevance": 1.0, "context_precision": 0.5}}"""
JUDGE_SCORES = ("faithfulness", "answer_relevance", "context_precision")


# --- metrics -------------------------------------------------------------------------------

def unique_in_order(keys: list[str]) -> list[str]:
    """Each source key once, at its first (best) rank: several chunks of one row count once."""
    seen: set[str] = set()
    return [key for key in keys if not (key in seen or seen.add(key))]


def metrics(ranked: list[str], relevant: dict[str, float], k: int) -> dict[str, float] | None:
    """recall, precision, hit rate, MRR, AP and nDCG at k of one ranking (None: nothing relevant)."""
    grades = {key: float(g) for key, g in relevant.items() if g is not None and float(g) > 0}
    if not grades:
        return None
    top = unique_in_order(ranked)[:k]
    hits = [key in grades for key in top]
    found = sum(hits)
    first = next((i for i, hit in enumerate(hits, 1) if hit), None)
    precisions = [sum(hits[:i]) / i for i, hit in enumerate(hits, 1) if hit]
    dcg = sum(grades.get(key, 0.0) / math.log2(i + 1) for i, key in enumerate(top, 1))
    ideal = sum(g / math.log2(i + 1) for i, g in enumerate(sorted(grades.values(), reverse=True)[:k], 1))
    return {f"ndcg@{k}": dcg / ideal, f"recall@{k}": found / len(grades), f"precision@{k}": found / k,
            f"hit_rate@{k}": 1.0 if found else 0.0, f"mrr@{k}": 1.0 / first if first else 0.0,
            f"map@{k}": sum(precisions) / len(grades)}


def aggregate(per_query: list[dict[str, float] | None], latencies: list[float]) -> dict[str, float]:
    """Each metric's mean over the queries that have it, and the latency's mean, median and
    95th percentile (ms)."""
    scored = [m for m in per_query if m]
    names = list(dict.fromkeys(name for m in scored for name in m))
    out = {}
    for name in names:
        values = [m[name] for m in scored if name in m]
        out[name] = sum(values) / len(values)
    if latencies:
        ordered = sorted(latencies)
        out["latency_ms_mean"] = sum(ordered) / len(ordered)
        out["latency_ms_p50"] = ordered[(len(ordered) - 1) // 2]
        out["latency_ms_p95"] = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return out


def retrieval_metrics(ranked: list[str] | None, relevant_json: str | None, k: int) -> str | None:
    """ai.retrieval_metrics: the metrics of one ranking as JSON (NULL when nothing is relevant)."""
    _check_k(k)
    return _json(metrics(list(ranked or []), _relevant(relevant_json, "relevant"), k))


def _json(value: Any) -> str | None:
    """A value as JSON text, None as SQL NULL."""
    return None if value is None else json.dumps(value)


def _check_k(k: int | None) -> None:
    """Refuse a k outside 1..10000 with the fix."""
    if k is None or k < 1 or k > 10000:
        fail(f"k must be between 1 and 10000, got {k}", sqlstate="22023", hint="e.g. k => 10")


def _relevant(raw: str | None, where: str) -> dict[str, float]:
    """A relevance object {"key": grade} (or a clear error naming where it came from)."""
    try:
        value = json.loads(raw) if raw is not None else {}
    except RecursionError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(g, (int, float)) and not isinstance(g, bool)
                                              for g in value.values()):
        fail(f"{where} must be a JSON object of source keys and numeric grades, got {str(raw)[:80]}",
             sqlstate="22023", hint="""e.g. '{"sql-altertable": 1, "sql-createtable": 2}'""")
    return value


# --- running the searches ------------------------------------------------------------------

def _vectorizer(name: str) -> dict:
    """The catalog row of a vectorizer named by name (or ai._vectorizer_id's error)."""
    vid = plpy.execute(prepared("SELECT ai._vectorizer_id($1) AS id", ["text"]), [name])[0]["id"]
    row = plpy.execute(prepared("""SELECT id, name, source_pk, view_schema, view_name FROM ai.vectorizer
                                   WHERE id = $1""", ["int"]), [vid])[0]
    return row


def _key_expression(source_pk: str) -> str:
    """SQL over a search result `s` giving the source key text (see the module's docstring)."""
    columns = [c["attname"] for c in sorted(json.loads(source_pk), key=lambda c: c["pknum"])]
    if len(columns) == 1:
        return f"(s.hit).{plpy.quote_ident(columns[0])}::text"
    return "pg_catalog.jsonb_build_array(" + ", ".join(f"(s.hit).{plpy.quote_ident(c)}" for c in columns) + ")::text"


def _search_sql(view: str, key: str, method: str, search: dict) -> tuple[str, list[str]]:
    """The statement returning the keys of a search's results in rank order ($1 query, $2 chunks)."""
    if method == "semantic":
        call = f"ai.semantic_search(NULL::{view}, $1, $2)"
    elif method == "text":
        call = f"ai.text_search(NULL::{view}, $1, $2, language => {plpy.quote_literal(search['language'])})"
    else:
        call = (f"ai.hybrid_search(NULL::{view}, $1, $2, vector_weight => {float(search['vector_weight'])!r}, "
                f"text_weight => {float(search['text_weight'])!r}, rrf_k => {int(search['rrf_k'])}, "
                f"language => {plpy.quote_literal(search['language'])})")
    return f"SELECT {key} AS key FROM {call} s ORDER BY s.rank", ["text", "int"]


def _query_set(queries: str) -> list[dict]:
    """The labelled queries of a table the caller may read (or an error showing the shape)."""
    try:
        rows = plpy.execute(f"SELECT query_id::text AS query_id, query::text AS query, relevant::jsonb::text AS relevant "
                            f"FROM {queries} ORDER BY 1")
    except plpy.SPIError as exc:
        if getattr(exc, "sqlstate", None) in ("42703", "42846"):
            fail(f"{queries} is not a query set: {exc.args[0] if exc.args else exc}", sqlstate="42703",
                 hint="a query set has the columns query_id, query and relevant: " + QUERY_SET_SHAPE)
        raise
    if not rows:
        fail(f"the query set {queries} has no queries", sqlstate="22023",
             hint="load one with `pgweave eval load` or INSERT rows: " + QUERY_SET_SHAPE)
    for row in rows:
        if row["query"] is None or row["query_id"] is None:
            fail(f"a query of {queries} has no query_id or no text", sqlstate="22004", hint=QUERY_SET_SHAPE)
    return rows


def evaluate_retrieval(vectorizer_name: str, queries: str, method: str, k: int, vector_weight: float,
                       text_weight: float, rrf_k: int, language: str, chunks: int | None,
                       label: str | None) -> dict:
    """ai.evaluate_retrieval: run every labelled query, score it, record the run; its summary."""
    if method not in METHODS:
        fail(f"unknown search method {method!r}", sqlstate="22023", hint="method => 'semantic', 'hybrid' or 'text'")
    _check_k(k)
    chunks = chunks or min(max(10 * k, 100), 10000)
    if chunks < k:
        fail(f"chunks ({chunks}) must be at least k ({k})", sqlstate="22023",
             hint="omit chunks for the default, greatest(10 * k, 100)")
    target = _vectorizer(vectorizer_name)
    _, config = vectorizer_config(target["id"])
    view = f"{plpy.quote_ident(target['view_schema'])}.{plpy.quote_ident(target['view_name'])}"
    search = {"method": method, "k": k, "chunks": chunks, "language": language}
    if method == "hybrid":
        search.update(vector_weight=vector_weight, text_weight=text_weight, rrf_k=rrf_k)
    sql, types = _search_sql(view, _key_expression(target["source_pk"]), method, search)
    plan = plpy.prepare(sql, types)
    results = []
    for row in _query_set(queries):
        relevant = _relevant(row["relevant"], f"relevant of query {row['query_id']!r}")
        start = time.perf_counter()
        keys = [r["key"] for r in plpy.execute(plan, [row["query"], chunks])]
        latency = (time.perf_counter() - start) * 1000.0
        ranked = unique_in_order(keys)
        results.append({"query_id": row["query_id"], "query": row["query"], "retrieved": ranked[:max(k, 100)],
                        "relevant": relevant, "metrics": metrics(ranked, relevant, k), "latency_ms": latency})
    summary = aggregate([r["metrics"] for r in results], [r["latency_ms"] for r in results])
    run = {"kind": "retrieval", "label": label, "vectorizer_id": target["id"], "vectorizer_name": target["name"],
           "query_set": queries, "method": method, "k": k, "metrics": summary,
           "config": {"vectorizer": config, "search": search}}
    return _save(run, results)


def save(run_json: str, results_json: str) -> int:
    """ai._evaluation_save, the gateway: write a run this backend's evaluation code just scored."""
    gateway.require("_evaluation_save", "run ai.evaluate_retrieval or ai.evaluate_rag: they record their runs")
    return plpy.execute(prepared("SELECT ai._evaluation_insert($1::jsonb, $2::jsonb) AS id", ["text", "text"]),
                        [run_json, results_json])[0]["id"]


def _save(run: dict, results: list[dict]) -> dict:
    """Write a run and its queries (through ai._evaluation_save); the run's id, counts and metrics."""
    run["queries"] = sum(1 for r in results if r["metrics"] is not None)
    run["skipped"] = len(results) - run["queries"]
    with gateway.opened("_evaluation_save"):
        run_id = plpy.execute(prepared("SELECT ai._evaluation_save($1::jsonb, $2::jsonb) AS id", ["text", "text"]),
                              [json.dumps(run), json.dumps(results)])[0]["id"]
    return {"run_id": run_id, "queries": run["queries"], "skipped": run["skipped"],
            "metrics": json.dumps(run["metrics"])}


# --- comparing two runs --------------------------------------------------------------------

def _run(run_id: int) -> dict:
    """A run the caller may see, with its per-query metrics (or a clear error)."""
    rows = plpy.execute(prepared("SELECT id, k, kind, metrics::text AS metrics FROM ai.evaluation_run WHERE id = $1",
                                 ["bigint"]), [run_id])
    if not rows:
        fail(f"evaluation run {run_id} does not exist, or was run by a role whose runs you may not see",
             sqlstate="42704", hint="SELECT * FROM ai.evaluation_runs lists the runs you may see")
    per_query = plpy.execute(prepared("""SELECT query_id, query, metrics::text AS metrics FROM ai.evaluation_query
                                         WHERE run_id = $1 AND metrics IS NOT NULL""", ["bigint"]), [run_id])
    return {"metrics": json.loads(rows[0]["metrics"]),
            "queries": {r["query_id"]: json.loads(r["metrics"]) for r in per_query}}


def paired_bootstrap(diffs: list[float], resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """95% confidence interval of the mean paired difference (percentile bootstrap over queries),
    and a two-sided p-value of a paired sign-flip permutation test; deterministic for a seed."""
    n = len(diffs)
    if n == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    low, high = means[int(0.025 * (resamples - 1))], means[int(math.ceil(0.975 * (resamples - 1)))]
    observed = abs(sum(diffs) / n)
    extreme = sum(1 for _ in range(resamples)
                  if abs(sum(d if rng.random() < 0.5 else -d for d in diffs) / n) >= observed - 1e-12)
    return low, high, (extreme + 1) / (resamples + 1)


def compare(run_a: int, run_b: int, resamples: int) -> list[dict]:
    """ai.compare_evaluations: per metric, both runs' means over their common queries, B - A with
    its paired 95% CI and p-value, and how many queries got better and worse in B."""
    if resamples is None or not 100 <= resamples <= 100000:
        fail(f"resamples must be between 100 and 100000, got {resamples}", sqlstate="22023",
             hint="the default is 1000")
    a, b = _run(run_a), _run(run_b)
    common = sorted(set(a["queries"]) & set(b["queries"]))
    if not common:
        fail(f"runs {run_a} and {run_b} have no scored query in common", sqlstate="22023",
             hint="compare runs of the same query set")
    names = [n for n in a["queries"][common[0]] if n in b["queries"][common[0]]]
    out = []
    for name in names:
        diffs = [b["queries"][q][name] - a["queries"][q][name] for q in common]
        low, high, p = paired_bootstrap(diffs, resamples)
        out.append({"metric": name, "queries": len(common),
                    "run_a": sum(a["queries"][q][name] for q in common) / len(common),
                    "run_b": sum(b["queries"][q][name] for q in common) / len(common),
                    "difference": sum(diffs) / len(diffs), "ci_low": low, "ci_high": high, "p_value": p,
                    "better": sum(1 for d in diffs if d > 1e-12), "worse": sum(1 for d in diffs if d < -1e-12)})
    for name in ("latency_ms_mean", "latency_ms_p50", "latency_ms_p95"):
        if name in a["metrics"] and name in b["metrics"]:
            out.append({"metric": name, "queries": len(common), "run_a": a["metrics"][name],
                        "run_b": b["metrics"][name], "difference": b["metrics"][name] - a["metrics"][name],
                        "ci_low": None, "ci_high": None, "p_value": None, "better": None, "worse": None})
    return out


# --- RAG -----------------------------------------------------------------------------------

def judge_scores(reply: str | None) -> dict[str, float | None]:
    """The judge's three scores from its reply: the first JSON object holding any of them, else
    "name: number" pairs; each clamped to [0, 1]; None for a score the reply does not give."""
    scores: dict[str, float | None] = {name: None for name in JUDGE_SCORES}
    if not reply:
        return scores
    for match in re.finditer(r"\{[^{}]*\}", reply):
        try:
            found = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(found, dict) and any(n in found for n in JUDGE_SCORES):
            for name in JUDGE_SCORES:
                if isinstance(found.get(name), (int, float)) and not isinstance(found.get(name), bool):
                    scores[name] = min(1.0, max(0.0, float(found[name])))
            return scores
    for name in JUDGE_SCORES:
        match = re.search(rf"{name}\W{{0,3}}\s*([01](?:\.\d+)?)", reply, re.IGNORECASE)
        if match:
            scores[name] = min(1.0, max(0.0, float(match.group(1))))
    return scores


def evaluate_rag(vectorizer_name: str, queries: str, model: str, k: int, judge_model: str | None,
                 judge_prompt: str | None, implementation: str | None, base_url: str | None,
                 api_key_name: str | None, options: Any, label: str | None) -> dict:
    """ai.evaluate_rag: answer every query with RAG, have a chat model judge each answer with the
    judge prompt, record the run (the answers, prompts and replies in its queries' details)."""
    _check_k(k)
    template = judge_prompt or DEFAULT_JUDGE_PROMPT
    try:
        template.format(question="", sources="", answer="")
    except (KeyError, IndexError, ValueError) as exc:
        fail(f"judge_prompt is not a template of {{question}}, {{sources}} and {{answer}}: {exc}",
             sqlstate="22023", hint="write other braces doubled ({{ and }}); see ai.rag_judge_prompt()")
    target = _vectorizer(vectorizer_name)
    _, config = vectorizer_config(target["id"])
    view = f"{plpy.quote_ident(target['view_schema'])}.{plpy.quote_ident(target['view_name'])}"
    retrieve = plpy.prepare(f"SELECT p.prompt, p.sources::text AS sources FROM ai.rag_prompt(NULL::{view}, $1, $2) p",
                            ["text", "int"])
    results = []
    for row in _query_set(queries):
        relevant = _relevant(row["relevant"], f"relevant of query {row['query_id']!r}")
        start = time.perf_counter()
        got = plpy.execute(retrieve, [row["query"], k])[0]
        sources = json.loads(got["sources"])
        answer = rag.rag_answer(target["id"], model, implementation, base_url, api_key_name, None, got["prompt"],
                                options) or ""
        latency = (time.perf_counter() - start) * 1000.0
        numbered = "\n\n".join(f"[{s['n']}] {s['chunk']}" for s in sources) or "(no sources)"
        prompt = template.format(question=row["query"], sources=numbered, answer=answer)
        reply = rag.chat(target["id"], judge_model or model, implementation, base_url, api_key_name,
                         [{"role": "user", "content": prompt}], options)
        scores = judge_scores(reply)
        keys = unique_in_order([_source_key(s["key"]) for s in sources])
        retrieval = metrics(keys, relevant, k) or {}
        results.append({"query_id": row["query_id"], "query": row["query"], "retrieved": keys, "relevant": relevant,
                        "metrics": {**{n: v for n, v in scores.items() if v is not None}, **retrieval} or None,
                        "latency_ms": latency,
                        "details": {"answer": answer, "judge_prompt": prompt, "judge_reply": reply, "scores": scores}})
    summary = aggregate([r["metrics"] for r in results], [r["latency_ms"] for r in results])
    for name in JUDGE_SCORES:   # how many answers the judge gave this score (a small model often gives none)
        summary[f"{name}_judged"] = sum(1 for r in results if r["details"]["scores"][name] is not None)
    run = {"kind": "rag", "label": label, "vectorizer_id": target["id"], "vectorizer_name": target["name"],
           "query_set": queries, "method": "rag", "k": k, "metrics": summary,
           "config": {"vectorizer": config, "rag": {"model": model, "judge_model": judge_model or model,
                                                    "judge_prompt": template, "implementation": implementation,
                                                    "options": options, "k": k}}}
    return _save(run, results)


def _source_key(key: dict) -> str:
    """The source key text of a RAG source's key object ({"id": 6} → "6")."""
    values = list(key.values())
    if len(values) == 1:
        return values[0] if isinstance(values[0], str) else json.dumps(values[0])
    return json.dumps(values)
