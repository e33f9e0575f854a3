"""Model calling from SQL: Ollama and OpenAI-compatible functions against `pgweave serve`."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from pgweave.install import install
from pgweave.localdb import LocalCluster
from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import role_dsn, served_inputs, vec


def _one(dsn: str, sql: str, params=None):
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        return conn.execute(sql, params).fetchone()[0]


def _all(dsn: str, sql: str, params=None) -> list:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def _cos(a, b) -> float:
    a, b = np.asarray(vec(a), dtype=np.float64), np.asarray(vec(b), dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- Ollama ---------------------------------------------------------------------------

def test_ollama_list_models_and_ps(db):
    with psycopg.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM ai.ollama_list_models()")}
        assert "all-minilm:latest" in names
        conn.execute("SELECT ai.ollama_embed('all-minilm', 'load it')")
        loaded = [r[0] for r in conn.execute("SELECT name FROM ai.ollama_ps()")]
    assert any(n.startswith("all-minilm") for n in loaded)


def test_host_argument_beats_the_setting(db, model_server_url):
    with psycopg.connect(db) as conn:
        conn.execute("SET ai.ollama_host = 'http://127.0.0.1:9'")
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection):
            conn.execute("SELECT ai.ollama_embed('all-minilm', 'x')")
        conn.rollback()
        conn.execute("SET ai.ollama_host = 'http://127.0.0.1:9'")
        row = conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x', host => %s))",
                           (model_server_url,)).fetchone()
    assert row[0] == 384


@pytest.fixture(scope="module")
def server_environment(model_server_url) -> Iterator[dict]:
    """A cluster whose server environment holds what a DBA sets for the PostgreSQL service:
    an HTTP proxy (http_proxy and https_proxy, with no_proxy=localhost) and a private
    certificate authority (SSL_CERT_FILE), plus an HTTPS front for the model server with a
    certificate that CA is.
    Database `app`, not pg_cron's; role `caller` with only ai usage. Yields the caller's DSN,
    the proxy and the HTTPS front."""
    certs = Path(tempfile.mkdtemp(prefix="pgweave-tls-"))
    certs.chmod(0o755)  # the server's OS user reads the CA file
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    (certs / "cert.pem").chmod(0o644)
    proxy = FaultProxy(model_server_url)
    front = FaultProxy(model_server_url, tls=(str(certs / "cert.pem"), str(certs / "key.pem")))
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pgweave-environment-")))
    try:
        with pytest.MonkeyPatch.context() as env:  # the postmaster's environment only
            for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
                env.delenv(name, raising=False)
            env.setenv("http_proxy", proxy.url)
            env.setenv("https_proxy", proxy.url)
            env.setenv("no_proxy", "localhost")
            env.setenv("SSL_CERT_FILE", str(certs / "cert.pem"))
            cluster.start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
            conn.execute("CREATE ROLE caller LOGIN")
        install(cluster.dsn("app"), background=False)
        with psycopg.connect(cluster.dsn("app"), autocommit=True) as conn:
            conn.execute("SELECT ai.grant_ai_usage('caller')")
        yield {"dsn": role_dsn(cluster.dsn("app"), "caller"), "proxy": proxy, "front": front}
    finally:
        cluster.destroy()
        proxy.close()
        front.close()
        shutil.rmtree(certs, ignore_errors=True)


_EMBED_AT = "SELECT ai.ollama_embed('all-minilm', 'reached another way', host => %s)::text"


def test_a_server_behind_a_proxy_calls_models_through_it_except_where_no_proxy_says(server_environment,
                                                                                   model_server_url):
    proxy = server_environment["proxy"]
    port = model_server_url.rsplit(":", 1)[1]
    with psycopg.connect(server_environment["dsn"], autocommit=True) as conn:
        proxied = conn.execute(_EMBED_AT, (model_server_url,)).fetchone()[0]
        assert [r["path"] for r in proxy.posts("/api/embed")] == [model_server_url + "/api/embed"]
        direct = conn.execute(_EMBED_AT, (f"http://localhost:{port}",)).fetchone()[0]
    assert len(proxy.posts("/api/embed")) == 1  # localhost is in no_proxy
    assert np.array_equal(vec(proxied), vec(direct)) and len(vec(proxied)) == 384


def test_https_model_servers_are_checked_against_the_ca_the_servers_environment_trusts(
        server_environment, app_role, model_server_url):
    front = server_environment["front"]
    with psycopg.connect(server_environment["dsn"], autocommit=True) as conn:  # SSL_CERT_FILE trusts it
        through_tls = conn.execute(_EMBED_AT, (front.url,)).fetchone()[0]
        direct = conn.execute(_EMBED_AT, (f"http://localhost:{model_server_url.rsplit(':', 1)[1]}",)).fetchone()[0]
    assert np.array_equal(vec(through_tls), vec(direct)) and len(front.posts("/api/embed")) == 1
    # https_proxy: the request went through the proxy's tunnel, TLS end to end inside it.
    tunnels = [r["path"] for r in server_environment["proxy"].seen if r["method"] == "CONNECT"]
    assert tunnels == [front.url.removeprefix("https://")]
    with psycopg.connect(app_role, autocommit=True) as conn:  # the suite's cluster trusts the system's CAs only
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as refused:
            conn.execute(_EMBED_AT, (front.url,))
    assert "failed the TLS check" in str(refused.value) and "certificate" in str(refused.value)
    assert "SSL_CERT_FILE" in refused.value.diag.message_hint
    assert len(front.posts("/api/embed")) == 1  # nothing reached the model through an unchecked channel


def test_query_text_is_embedded_once_per_query_not_per_row(db, model_server_url):
    """ORDER BY embedding <=> ai.ollama_embed(...) must not call the model for every row."""
    import httpx

    def embedded() -> float:
        text = httpx.get(model_server_url + "/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("pgweave_serve_inputs_embedded_total{"))

    with psycopg.connect(db) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, embedding vector(384))")
        conn.execute("""INSERT INTO docs SELECT i, e.embedding FROM ai.ollama_embed('all-minilm',
                        ARRAY['cats purr', 'dogs bark', 'stocks fall', 'rain falls']) e,
                        generate_series(1, 50) i WHERE e.index = i % 4""")
        before = embedded()
        rows = conn.execute("""SELECT id FROM docs
                               ORDER BY embedding <=> ai.ollama_embed('all-minilm', 'kittens')
                               LIMIT 3""").fetchall()
        after = embedded()
    assert len(rows) == 3 and all(r[0] % 4 == 0 for r in rows)  # 'cats purr' rows rank first
    assert after - before == 1


def test_statements_planned_for_parallel_workers_call_the_model_in_one_backend(db, model_server_url):
    """Every PL/Python function is PARALLEL UNSAFE: in parallel mode (a worker, or the leader of
    a parallel plan) plpy.execute cannot open its subtransaction, and the backend can crash.
    Under settings that force parallel plans, statements that call models still work."""
    with psycopg.connect(db, autocommit=True) as conn:
        unsafe = conn.execute("""SELECT p.oid::regprocedure::text FROM pg_proc p
                                 JOIN pg_language l ON l.oid = p.prolang
                                 WHERE p.pronamespace = 'ai'::regnamespace AND l.lanname = 'plpython3u'
                                   AND p.proparallel <> 'u'""").fetchall()
        assert unsafe == []
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, embedding vector(384))")
        conn.execute("""INSERT INTO docs SELECT i, e.embedding FROM ai.ollama_embed('all-minilm',
                        ARRAY['cats purr', 'dogs bark', 'stocks fall', 'rain falls']) e,
                        generate_series(1, 4000) i WHERE e.index = i % 4""")
        conn.execute("ANALYZE docs")
        conn.execute("""SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
                        SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
                        SET force_parallel_mode = on""")
        # The same scan without a model call is planned for workers: the settings bite.
        plan = [r[0] for r in conn.execute("EXPLAIN SELECT count(*) FROM docs WHERE id % 7 = 0")]
        assert any("Parallel Seq Scan" in line for line in plan), plan

        before = served_inputs(model_server_url)
        nearest = conn.execute("""SELECT count(*) FROM docs
                                  WHERE embedding <=> ai.ollama_embed('all-minilm', 'kittens') < 0.5""").fetchone()[0]
        assert nearest == 1000  # the 'cats purr' rows
        assert served_inputs(model_server_url) - before == 1
        assert conn.execute("""SELECT count(*) FROM docs
                               WHERE embedding <=> ai.openai_embed('all-minilm', 'kittens') < 0.5""").fetchone()[0] == 1000
        assert served_inputs(model_server_url) - before == 2
        # One call per row when the text comes from the row (here three rows).
        per_row = conn.execute("""SELECT count(*) FROM docs
                                  WHERE id <= 3 AND embedding <=> ai.ollama_embed('all-minilm', id::text) < 2""").fetchone()[0]
        assert per_row == 3
        assert served_inputs(model_server_url) - before == 5
        assert conn.execute("SELECT 1").fetchone() == (1,)  # no backend crashed: that would end this one too
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x'))").fetchone()[0] == 384


def test_ollama_embed_options_and_keep_alive_reach_the_server(app_role, recorder):
    dims = _one(app_role, """SELECT vector_dims(ai.ollama_embed('all-minilm', 'x', keep_alive => '5m',
                             embedding_options => '{"num_ctx": 256}', host => %s))""", (recorder.url,))
    assert dims == 384
    [sent] = recorder.posts("/api/embed")
    assert sent["json"]["keep_alive"] == "5m" and sent["json"]["options"] == {"num_ctx": 256}
    assert sent["json"]["model"] == "all-minilm" and sent["json"]["input"] in ("x", ["x"])


def test_credentials_in_a_model_servers_url_are_sent_as_basic_auth(app_role, recorder):
    """An Ollama behind a reverse proxy that asks for a password: http://user:password@host,
    percent-encoded as URLs are; never part of an error (see tests/reliability)."""
    url = recorder.url.replace("http://", "http://alice:s%40cr%3At@")
    assert _one(app_role, "SELECT vector_dims(ai.ollama_embed('all-minilm', 'x', host => %s))", (url,)) == 384
    [sent] = recorder.posts("/api/embed")
    assert sent["headers"]["authorization"] == "Basic " + base64.b64encode(b"alice:s@cr:t").decode()


def test_a_gzip_compressed_reply_is_read_whole(app_role, recorder, model_server_url):
    texts = [f"paragraph {i} about write-ahead logging and checkpoints" for i in range(40)]
    sql = "SELECT embedding::text FROM ai.ollama_embed('all-minilm', %s::text[], host => %s)"
    recorder.mode = "gzip"
    compressed = [r[0] for r in _all(app_role, sql, (texts, recorder.url))]
    plain = [r[0] for r in _all(app_role, sql, (texts, model_server_url))]
    assert recorder.posts("/api/embed")[0]["headers"]["accept-encoding"] == "gzip"
    assert len(compressed) == 40 and all(np.array_equal(vec(a), vec(b)) for a, b in zip(compressed, plain))


def test_a_compressed_reply_is_inflated_no_further_than_max_reply_bytes(app_role, recorder):
    """A hostile or broken server's 1 MiB of gzip holding 1 GiB: refused at max_reply_bytes
    (32 MiB by default) without the backend ever holding much more than that."""
    recorder.mode = "gzip_bomb"
    with psycopg.connect(app_role, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="larger than 33554432 bytes"):
            conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (recorder.url,))
        peak_kb = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                           if line.startswith("VmHWM:")))
    assert peak_kb < 300 * 1024, f"the backend peaked at {peak_kb // 1024} MiB"


def test_embedding_options_must_be_an_object(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="embedding_options must be a JSON object"):
        _one(db, "SELECT ai.ollama_embed('all-minilm', 'x', embedding_options => '[1]')")


def test_empty_and_huge_texts_embed(db, st_model):
    assert _one(db, "SELECT vector_dims(ai.ollama_embed('all-minilm', ''))") == 384
    huge = "PostgreSQL " * 20000  # far past the model's 256-token window: truncated, as Ollama does
    emb = _one(db, "SELECT ai.ollama_embed('all-minilm', %s)", (huge,))
    assert _cos(emb, st_model.encode(huge)) > 0.9999


def test_batch_of_null_array_is_empty(db):
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT * FROM ai.ollama_embed('all-minilm', NULL::text[])").fetchall() == []


# --- OpenAI-compatible ----------------------------------------------------------------

def test_openai_embed_single_and_batch_match_ollama(db):
    with psycopg.connect(db) as conn:
        register_vector(conn)
        o = conn.execute("SELECT ai.ollama_embed('all-minilm', 'hello world')").fetchone()[0]
        s = conn.execute("SELECT ai.openai_embed('all-minilm', 'hello world')").fetchone()[0]
        rows = conn.execute("""SELECT index, embedding FROM ai.openai_embed('all-minilm',
                               ARRAY['hello world', NULL, 'bye']) ORDER BY index""").fetchall()
    assert _cos(o, s) > 0.9999
    assert [r[0] for r in rows] == [0, 1, 2] and rows[1][1] is None
    assert _cos(rows[0][1], s) > 0.9999


def test_openai_embed_dimensions(db):
    emb = _one(db, "SELECT ai.openai_embed('all-minilm', 'hello', dimensions => 128)")
    assert len(vec(emb)) == 128
    assert abs(float(np.linalg.norm(vec(emb))) - 1.0) < 1e-4


def test_openai_base_url_argument(db, model_server_url):
    with psycopg.connect(db) as conn:
        conn.execute("SET ai.openai_base_url = 'http://127.0.0.1:9/v1'")
        dims = conn.execute("SELECT vector_dims(ai.openai_embed('all-minilm', 'x', base_url => %s))",
                            (model_server_url + "/v1",)).fetchone()[0]
    assert dims == 384


def test_openai_list_models(db):
    with psycopg.connect(db) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM ai.openai_list_models()")}
    assert "all-minilm" in ids or "all-minilm:latest" in ids


def test_openai_unknown_model_lists_available_ones(db):
    with pytest.raises(psycopg.errors.UndefinedObject) as info:
        _one(db, "SELECT ai.openai_embed('text-embedding-3-small', 'x')")
    assert "all-minilm" in info.value.diag.message_hint


def test_openai_unreachable_names_the_setting(db):
    with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as info:
        _one(db, "SELECT ai.openai_embed('m', 'x', base_url => 'http://127.0.0.1:9/v1')")
    assert "ai.openai_base_url" in info.value.diag.message_hint


def test_openai_bad_dimensions_is_a_clear_error(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="dimensions must be positive"):
        _one(db, "SELECT ai.openai_embed('all-minilm', 'x', dimensions => 0)")


def test_a_number_json_cannot_carry_is_refused_before_anything_is_sent(app_role, recorder):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="NaN") as refused:
        _one(app_role, "SELECT ai.openai_chat_complete('tiny-lm', '[{\"role\": \"user\", \"content\": \"hi\"}]', "
                       "temperature => 'NaN', base_url => %s)", (recorder.url + "/v1",))
    assert "finite" in refused.value.diag.message_hint and recorder.requests == 0


# --- secrets ----------------------------------------------------------------------------

def test_api_key_is_sent_but_never_echoed(app_role, recorder):
    """A server that refuses the key and echoes it back (as OpenAI does): the key went out in
    the Authorization header, and the error names the problem but never shows the key."""
    recorder.mode = "reject_key"
    with psycopg.connect(app_role) as conn:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as info:
            conn.execute("SELECT ai.openai_embed('all-minilm', 'x', api_key => 'sk-secret-123456789', base_url => %s)",
                         (recorder.url + "/v1",))
    [sent] = recorder.posts("/v1/embeddings")
    assert sent["headers"]["authorization"] == "Bearer sk-secret-123456789"
    diag = info.value.diag
    text = " ".join(str(x) for x in (info.value, diag.message_hint, diag.message_detail, diag.context))
    assert "refused the request" in text
    assert "sk-secret-123456789" not in text and "sk-secret" not in text


def test_secret_store_is_readable_only_by_granted_roles(db, pg_server):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS keyless; CREATE ROLE keyless LOGIN")
        conn.execute("DROP ROLE IF EXISTS keyholder; CREATE ROLE keyholder LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('keyless'), ai.grant_ai_usage('keyholder')")
        conn.execute("SELECT ai.store_secret('OPENAI_API_KEY', 'sk-stored-abcdefgh')")
        conn.execute("SELECT ai.grant_secret('OPENAI_API_KEY', 'keyholder')")
    try:
        with psycopg.connect(role_dsn(db, "keyless")) as conn:
            assert conn.execute("SELECT count(*) FROM ai._secret").fetchone()[0] == 0
        with psycopg.connect(role_dsn(db, "keyholder")) as conn:
            assert conn.execute("SELECT value FROM ai._secret").fetchone()[0] == "sk-stored-abcdefgh"
            # pgweave serve ignores keys: the call works with the stored key attached.
            assert conn.execute(
                "SELECT vector_dims(ai.openai_embed('all-minilm', 'x'))").fetchone()[0] == 384
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY keyless, keyholder")
            conn.execute("DROP ROLE keyless; DROP ROLE keyholder")


# --- privileges -----------------------------------------------------------------------

def test_public_cannot_call_model_functions_until_granted(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS app_user; CREATE ROLE app_user LOGIN")
    try:
        with psycopg.connect(role_dsn(db, "app_user")) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x')")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SELECT ai.grant_ai_usage('app_user')")
        with psycopg.connect(role_dsn(db, "app_user")) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
            assert conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x'))").fetchone()[0] == 384
            assert conn.execute("SELECT count(*) FROM ai.openai_embed('all-minilm', ARRAY['a','b'])").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) > 0 FROM ai.ollama_list_models()").fetchone()[0]
            assert conn.execute("SELECT count(*) > 0 FROM ai.openai_list_models()").fetchone()[0]
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY app_user; DROP ROLE app_user")
