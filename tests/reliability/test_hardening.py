"""Hardening of the model-calling layer, tried as a careless or hostile granted role would.

Every test runs the hostile call as a non-superuser role granted ai usage, in a database that
is not pg_cron's. Slow and hostile model servers are tiny loopback HTTP servers started here.

Bad inputs tried, and their outcomes now (before: the outcome in brackets):
- api_key_name => 'PATH' towards a server that records the key: no key sent unless a superuser
  allowed the name [the server's PATH sent as a bearer token];
- a session SET of ai.ollama_host, or a host or base_url argument, naming a host nobody
  allowed: refused, 42501 [the request sent];
- a literal api_key in a failed call: not in the server log [on its STATEMENT line];
- DROP ROLE of one grantee of a secret: the others keep using it [role "..." does not exist];
- statement_timeout 1s, a server that answers after 20 s: canceled at the timeout [returned
  after 20 s]; pg_cancel_backend / pg_terminate_backend, before the reply or halfway through
  its body, while a connection is being made that never completes, or while a 32 MB request
  is written to a server that stops reading it: honoured at once [after the answer];
- a 503 with Retry-After: 1, then the answer: asked again after that second; Retry-After:
  3600: given up on at once, past the call's deadline;
- SET ai.http_timeout = 36000: held to the superuser's max_http_timeout [waited for hours];
- a reply dripping in a byte every 0.3 s: given up on after the call's deadline (attempts x
  timeout + backoff) [read for as long as it dripped];
- a reply larger than max_reply_bytes, with or without Content-Length: refused, 54000 [read whole];
- SET ai.embedding_requests_in_flight = 'many': an error naming the setting, recorded for the
  batch; a number: that many requests at once, never more [setting new];
- a reply nested 100,000 deep, or with strings for numbers: a clear error [RecursionError,
  ValueError: could not convert string to float]; numbers that are not numbers (1-2), NaN or
  1e999 in an otherwise plain reply (whose arrays are passed through to pgvector undecoded):
  a clear error from the call, and from a vectorizer's batch an error about the server, with
  nothing stored and the items kept;
- chunk_size 1, overlap above half, a backtracking separator regex: refused by
  ai._check_chunking with a hint [accepted]; a row making more chunks than max_chunks_per_row:
  an error recorded, nothing stored [22,000 chunks stored];
- an unreachable explicit host: the hint speaks of the host argument [told to SET ai.ollama_host];
- an embedding model the reachable server lacks: ai._embedding_model_warning names the models
  it has and how to get the one asked for; NULL when the server cannot be reached.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import psycopg
import pytest

from pgweave_testing.database import SERVER_LOG
from pgweave_testing.helpers import role_dsn
from pgweave.localdb import free_port

ROLE = "hardened"
KEY = "sk-hardening-LITERAL-9f8e7d6c5b4a"
EMBEDDING = {"embeddings": [[0.5] * 384]}


@pytest.fixture
def role(db) -> Iterator[str]:
    """DSN of a non-superuser role granted ai usage."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}; CREATE ROLE {ROLE} LOGIN")
        conn.execute(f"SELECT ai.grant_ai_usage('{ROLE}')")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {ROLE}")
    yield role_dsn(db, ROLE)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {ROLE}; DROP ROLE {ROLE}")


class TinyServer:
    """A loopback HTTP server whose answer is ``answer(handler)``; records what it was sent."""

    def __init__(self, answer: Callable[["TinyServer", BaseHTTPRequestHandler], None]):
        self.seen: list[dict] = []
        self.got_request = threading.Event()
        self.answered_late = threading.Event()  # a slow answer was sent after its full wait
        self.midway = threading.Event()  # a stalled answer has sent its headers and half its body
        self.stop = threading.Event()  # ends every pending sleep at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                """Record the request, then answer it."""
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                server.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                    "body": self.body})
                server.got_request.set()
                try:
                    answer(server, self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving and end every pending answer."""
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200, length: bool = True) -> None:
    """Answer with a JSON body (without Content-Length: the connection's end marks the body's)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def tiny_server(answer) -> Iterator[TinyServer]:
    """A TinyServer for the duration of a with-block."""
    server = TinyServer(answer)
    try:
        yield server
    finally:
        server.close()


def slow(seconds: float):
    """An answer that comes after ``seconds`` (sooner when the server closes): a valid embedding."""
    def answer(server: TinyServer, handler: BaseHTTPRequestHandler) -> None:
        if not server.stop.wait(seconds):
            server.answered_late.set()
        send(handler, json.dumps(EMBEDDING).encode())
    return answer


def stalled(seconds: float):
    """An answer whose headers and first half come at once, the rest after ``seconds``."""
    def answer(server: TinyServer, handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps(EMBEDDING).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:len(body) // 2])
        handler.wfile.flush()
        server.midway.set()
        if not server.stop.wait(seconds):
            server.answered_late.set()
        handler.wfile.write(body[len(body) // 2:])
    return answer


def fixed(body: bytes, status: int = 200, length: bool = True):
    """An answer that is always ``body``."""
    return lambda server, handler: send(handler, body, status, length)


def superuser(db: str, *statements: str) -> None:
    """Run statements as the superuser (what only a superuser may decide)."""
    with psycopg.connect(db, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


# --- leaks --------------------------------------------------------------------------------

def test_the_servers_environment_is_sent_only_for_names_a_superuser_allowed(db, role):
    with tiny_server(fixed(json.dumps({"data": [{"index": 0, "embedding": [0.5] * 384}]}).encode())) as server:
        with psycopg.connect(role) as conn:
            conn.execute("SELECT ai.openai_embed('all-minilm', 'x', api_key_name => 'PATH', base_url => %s)",
                         (server.url + "/v1",))
        superuser(db, "INSERT INTO ai._environment_secret (name) VALUES ('PATH')")
        with psycopg.connect(role) as conn:
            conn.execute("SELECT ai.openai_embed('all-minilm', 'x', api_key_name => 'PATH', base_url => %s)",
                         (server.url + "/v1",))
    not_allowed, allowed = (s["authorization"] for s in server.seen)
    assert not_allowed is None
    assert allowed.startswith("Bearer /")  # the server's PATH, once a superuser allowed the name


def test_only_hosts_a_superuser_allowed_or_configured_are_called(db, role, model_server_url):
    superuser(db, "DELETE FROM ai._model_host WHERE host = 'loopback'")
    with tiny_server(fixed(json.dumps(EMBEDDING).encode())) as server:
        port = server.url.rsplit(":", 1)[1]
        with psycopg.connect(role, autocommit=True) as conn:
            # The database's configured host (ALTER DATABASE, by the fixture) still works.
            assert conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x'))").fetchone()[0] == 384
        with psycopg.connect(role) as conn:
            conn.execute(f"SET ai.ollama_host = '{server.url}'")
            for attempt in ("SELECT ai.ollama_embed('all-minilm', 'x')",  # the session's own setting
                            f"SELECT ai.ollama_embed('all-minilm', 'x', host => '{server.url}')",
                            f"SELECT ai.openai_embed('all-minilm', 'x', base_url => '{server.url}/v1')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"127.0.0.1:{port} is not allowed") as info:
                    conn.execute(attempt)
                conn.rollback()
                conn.execute(f"SET ai.ollama_host = '{server.url}'")
                assert "INSERT INTO ai._model_host" in info.value.diag.message_hint
        assert server.seen == []
        superuser(db, f"INSERT INTO ai._model_host (host) VALUES ('127.0.0.1:{port}')")
        with psycopg.connect(role) as conn:
            assert conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x', host => %s))",
                                (server.url,)).fetchone()[0] == 384
    assert len(server.seen) == 1


def test_a_literal_api_key_of_a_failed_call_stays_out_of_the_server_log(db, role, model_server_url):
    assert SERVER_LOG, "this test reads the native cluster's log file"
    closed = free_port()
    marker = f"after_the_key_{closed}"
    with psycopg.connect(role, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection):
            conn.execute(f"SELECT ai.openai_embed('all-minilm', 'x', api_key => '{KEY}', "
                         f"base_url => 'http://127.0.0.1:{closed}/v1')")
        # A successful call gives the log back its STATEMENT lines for the rest of the transaction.
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.transaction():
                conn.execute(f"SELECT ai.openai_embed('all-minilm', 'x', api_key => '{KEY}')")
                conn.execute(f"SELECT 1/0 AS {marker}")
    deadline = time.monotonic() + 10  # the logger writes asynchronously
    while marker not in SERVER_LOG[0].read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    log = SERVER_LOG[0].read_text(errors="replace")
    assert f"cannot reach the model server at http://127.0.0.1:{closed}" in log
    assert f"STATEMENT:  SELECT 1/0 AS {marker}" in log
    assert KEY not in log and KEY[:14] not in log


def test_dropping_one_grantee_of_a_secret_leaves_it_working_for_the_others(db, role):
    superuser(db, "SELECT ai.store_secret('SHARED_KEY', 'sk-shared-0123456789')",
              "DROP ROLE IF EXISTS departed; CREATE ROLE departed",
              "SELECT ai.grant_secret('SHARED_KEY', 'departed')",  # granted first: checked first
              f"SELECT ai.grant_secret('SHARED_KEY', '{ROLE}')",
              "DROP ROLE departed")
    with tiny_server(fixed(json.dumps({"data": [{"index": 0, "embedding": [0.5] * 384}]}).encode())) as server:
        with psycopg.connect(role) as conn:
            conn.execute("SELECT ai.openai_embed('all-minilm', 'x', api_key_name => 'SHARED_KEY', base_url => %s)",
                         (server.url + "/v1",))
    assert server.seen[0]["authorization"] == "Bearer sk-shared-0123456789"


# --- bounded resources --------------------------------------------------------------------

@pytest.mark.parametrize("timeout", ["1s", "1500ms"])
def test_a_slow_model_server_is_cut_off_by_statement_timeout(role, timeout):
    with tiny_server(slow(20)) as server:
        with psycopg.connect(role) as conn:
            conn.execute(f"SET statement_timeout = '{timeout}'")
            with pytest.raises(psycopg.errors.QueryCanceled, match="^canceling statement due to statement timeout"):
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))
            assert not server.answered_late.is_set()  # canceled while waiting, not after the answer
            conn.rollback()
            for after in ("0", "10min", "2h", "1d"):  # the session is fine afterwards, whatever the unit
                conn.execute(f"SET statement_timeout = '{after}'")
                assert conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x'))").fetchone()[0] == 384


def _call_in_thread(dsn: str, url: str, text: str = "x") -> tuple[threading.Thread, dict]:
    """Start a model call to ``url`` in a thread; returns the thread and where its outcome lands."""
    outcome: dict = {}

    def run():
        try:
            with psycopg.connect(dsn) as conn:
                outcome["pid"] = conn.info.backend_pid
                outcome["value"] = conn.execute("SELECT ai.ollama_embed('all-minilm', %s, host => %s)::text",
                                                (text, url)).fetchone()[0]
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("answer", [slow, stalled], ids=["before-the-reply", "halfway-through-the-body"])
def test_cancel_and_terminate_stop_a_waiting_model_call(db, role, answer):
    with tiny_server(answer(30)) as server:
        for stop in ("pg_cancel_backend", "pg_terminate_backend"):
            server.got_request.clear()
            server.midway.clear()
            thread, outcome = _call_in_thread(role, server.url)
            assert server.got_request.wait(20)
            if answer is stalled:
                assert server.midway.wait(20)
                time.sleep(0.3)  # the backend reads the headers and the first half meanwhile
            superuser(db, f"SELECT {stop}({outcome['pid']})")
            thread.join(25)  # the server would answer only after 30 s
            assert not thread.is_alive() and "value" not in outcome
            assert not server.answered_late.is_set()  # stopped while waiting, not after the answer
            if stop == "pg_cancel_backend":
                assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
                assert str(outcome["error"]).startswith("canceling statement due to user request")
            else:
                assert isinstance(outcome["error"], psycopg.OperationalError)


def test_ai_http_timeout_is_held_to_the_superusers_maximum(db, role):
    superuser(db, "UPDATE ai._model_call_limit SET value = 1 WHERE name = 'max_http_timeout'")
    with tiny_server(slow(20)) as server:
        with psycopg.connect(role) as conn:
            conn.execute("SET ai.http_timeout = '36000'")
            with pytest.raises(psycopg.errors.QueryCanceled, match="did not answer within 1 s") as info:
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))
        assert not server.answered_late.is_set()
    assert "max_http_timeout" in info.value.diag.message_hint


def drip(handler_server: TinyServer, handler: BaseHTTPRequestHandler) -> None:
    """An answer sent one byte every 0.3 s: never silent long enough for a read timeout."""
    body = json.dumps(EMBEDDING).encode()[:200]
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        if handler_server.stop.wait(0.3):
            return
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
    handler_server.answered_late.set()


def test_a_reply_dripping_in_byte_by_byte_is_given_up_on(role):
    with tiny_server(drip) as server:
        with psycopg.connect(role) as conn:
            conn.execute("SET ai.http_timeout = '1'; SET ai.http_retries = 0")
            with pytest.raises(psycopg.errors.QueryCanceled, match="did not finish answering within 1 s"):
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))
        assert not server.answered_late.is_set()


@contextmanager
def unanswered_port() -> Iterator[str]:
    """The URL of a port where a connection is never made: its listener's accept queue is
    full, so the kernel drops every further SYN (what a firewall that drops packets does)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        filler.close()
        listener.close()


@contextmanager
def deaf_server() -> Iterator[tuple[str, list]]:
    """The URL of a server that accepts connections and never reads from them, and the
    connections it holds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # closed at the end
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in held:
            conn.close()


def _cancel_while_waiting(db: str, thread: threading.Thread, outcome: dict, ready: Callable[[], bool]) -> None:
    """Once the call runs and ``ready()`` says it is where the test wants it, cancel it; it
    must end at once (every wait here is far shorter than ai.http_timeout, 120 s)."""
    with psycopg.connect(db, autocommit=True) as watch:
        deadline = time.monotonic() + 20
        while not (watch.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'",
                                 (outcome.get("pid"),)).fetchone()[0] and ready()):
            assert time.monotonic() < deadline, "the call never got there"
            time.sleep(0.05)
        time.sleep(0.5)  # the backend waits meanwhile
        watch.execute("SELECT pg_cancel_backend(%s)", (outcome["pid"],))
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), psycopg.errors.QueryCanceled), outcome


def test_cancel_stops_a_connection_that_is_never_made(db, role):
    with unanswered_port() as url:
        thread, outcome = _call_in_thread(role, url)
        _cancel_while_waiting(db, thread, outcome, lambda: True)


def test_cancel_stops_a_request_the_server_stops_reading(db, role):
    """32 MB of request: more than the kernel's buffers on both ends take."""
    with deaf_server() as (url, held):
        thread, outcome = _call_in_thread(role, url, "x" * (32 << 20))
        _cancel_while_waiting(db, thread, outcome, lambda: bool(held))


def test_retry_after_is_obeyed_within_the_calls_deadline(role):
    arrivals: list[float] = []

    def busy_once(after: str):
        def answer(server: TinyServer, handler: BaseHTTPRequestHandler) -> None:
            arrivals.append(time.monotonic())
            if len(arrivals) == 1:
                handler.send_response(503)
                handler.send_header("Retry-After", after)
                handler.send_header("Content-Length", "2")
                handler.end_headers()
                handler.wfile.write(b"{}")
            else:
                send(handler, json.dumps(EMBEDDING).encode())
        return answer

    with psycopg.connect(role, autocommit=True) as conn:
        conn.execute("SET ai.http_retries = 1; SET ai.http_timeout = '5'")
        with tiny_server(busy_once("1")) as server:
            got = conn.execute("SELECT vector_dims(ai.ollama_embed('all-minilm', 'x', host => %s))",
                               (server.url,)).fetchone()[0]
        assert got == 384 and len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.95
        arrivals.clear()
        with tiny_server(busy_once("3600")) as server:
            start = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled, match="did not finish answering within"):
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))
        assert len(arrivals) == 1 and time.monotonic() - start < 5  # not an hour, nor the whole deadline


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "streamed"])
def test_a_reply_larger_than_max_reply_bytes_is_refused(db, role, with_length):
    superuser(db, "UPDATE ai._model_call_limit SET value = 100000 WHERE name = 'max_reply_bytes'")
    huge = json.dumps({"embeddings": [[0.5] * 384], "padding": "x" * 2_000_000}).encode()
    with tiny_server(fixed(huge, length=with_length)) as server:
        with psycopg.connect(role) as conn:
            with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="larger than 100000 bytes") as info:
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))
    assert "max_reply_bytes" in info.value.diag.message_hint


@pytest.mark.parametrize("body, says", [
    (b"[" * 100_000, "nested too deeply"),
    (json.dumps({"embeddings": [["0.1", "x"]]}).encode(), "not a non-empty list of finite numbers"),
    (json.dumps({"embeddings": {"a": 1}}).encode(), "embeddings that are not a list"),
    (json.dumps([1, 2]).encode(), "instead of an object"),
    (b'{"embeddings":[[1-2,0.5]]}', "not JSON"),  # only digits and signs, yet no numbers
    (b'{"embeddings":[[NaN,0.5]]}', "finite numbers"),  # Python's JSON writes NaN
], ids=["deeply-nested", "strings-for-numbers", "object-for-list", "array-for-object", "number-lookalikes",
        "nan"])
def test_a_malformed_reply_gets_a_clear_error(role, body, says):
    with tiny_server(fixed(body)) as server:
        with psycopg.connect(role) as conn:
            with pytest.raises(psycopg.errors.SystemError, match=says) as info:
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))
    assert "Ollama or OpenAI-compatible" in info.value.diag.message_hint


@pytest.mark.parametrize("body", [
    b'{"data": [ {"index": 1, "embedding": [ 0.25 , -1.5e-3 ]},\n {"index": 0, "embedding": [1, 2]} ]}',
    b'{"object":"list","data":[{"object":"embedding","embedding":[1,2],"index":0},'
    b'{"object":"embedding","embedding":[0.25,-0.0015],"index":1}]}',
], ids=["spaced-out-of-order", "plain"])
def test_openai_replies_come_back_in_input_order_spaced_or_not(role, body):
    with tiny_server(fixed(body)) as server, psycopg.connect(role) as conn:
        rows = conn.execute("SELECT index, embedding::text FROM ai.openai_embed('m', ARRAY['a', 'b'], "
                            "api_key => 'k', base_url => %s) ORDER BY index", (server.url,)).fetchall()
    assert rows == [(0, "[1,2]"), (1, "[0.25,-0.0015]")]


def test_a_backfill_keeps_as_many_requests_in_flight_as_set_and_refuses_nonsense(role):
    """Requests overlap at a slow server (the next is sent before the last reply is read), as
    many as ai.embedding_requests_in_flight says; the vectors still land on their own rows."""
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def overlapping(server: TinyServer, handler: BaseHTTPRequestHandler) -> None:
        if not handler.path.endswith("/api/embed"):
            return send(handler, b'{"models": []}')
        inputs = json.loads(handler.body)["input"]
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        server.stop.wait(0.3)
        with lock:
            state["now"] -= 1
        vectors = [[float(len(text))] + [0.5] * 383 for text in inputs]  # each row's own vector
        send(handler, json.dumps({"embeddings": vectors}).encode())

    with tiny_server(overlapping) as server, psycopg.connect(role, autocommit=True) as conn:
        conn.execute("CREATE TABLE flight_docs (id int PRIMARY KEY, body text)")
        conn.execute("""SELECT ai.create_vectorizer('flight_docs'::regclass, loading => ai.loading_column('body'),
                        embedding => ai.embedding_ollama('all-minilm', 384, base_url => %s),
                        processing => ai.processing_default(embedding_batch_size => 1),
                        chunking => ai.chunking_none(), scheduling => ai.scheduling_none())""", (server.url,))
        for in_flight in (None, "1", "3"):
            conn.execute("TRUNCATE flight_docs")
            conn.execute("INSERT INTO flight_docs SELECT i, repeat('x', i) FROM generate_series(1, 6) i")
            if in_flight:
                conn.execute(f"SET ai.embedding_requests_in_flight = {in_flight}")
            state["most"] = 0
            conn.execute("CALL ai.execute_vectorizer('flight_docs_embedding')")
            assert state["most"] == int(in_flight or 2), (in_flight, state)
            stored = conn.execute("SELECT id, (embedding::real[])[1] FROM flight_docs_embedding_store ORDER BY id").fetchall()
            assert stored == [(i, float(i)) for i in range(1, 7)]
        conn.execute("SET ai.embedding_requests_in_flight = 'many'")
        conn.execute("INSERT INTO flight_docs VALUES (7, 'seven')")
        conn.execute("CALL ai.execute_vectorizer('flight_docs_embedding')")
        error = conn.execute("SELECT message FROM ai.vectorizer_errors WHERE name = 'flight_docs_embedding' "
                             "ORDER BY recorded DESC LIMIT 1").fetchone()[0]
    assert "ai.embedding_requests_in_flight = 'many' is not a positive number" in error


def test_a_number_no_float32_holds_is_refused_by_pgvector_naming_it(role):
    with tiny_server(fixed(b'{"embeddings":[[1e999,0.5]]}')) as server:
        with psycopg.connect(role) as conn:
            with pytest.raises(psycopg.errors.NumericValueOutOfRange, match='"1e999" is out of range for type vector'):
                conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => %s)", (server.url,))


def _vector(first: str, size: int = 384) -> str:
    """A reply's array as text: ``first``, then 0.5s up to ``size`` items."""
    return "[" + ",".join([first] + ["0.5"] * (size - 1)) + "]"


@pytest.mark.parametrize("vectors, says", [
    (lambda n: [_vector("1-2")] * n, "the model server sent an embedding that is not a vector pgvector accepts"),
    (lambda n: [_vector('"0.5"')] * n, "the model server sent an embedding that is not a vector pgvector accepts"),
    (lambda n: [_vector("[0.5]")] * n, "not a non-empty list of finite numbers"),
    (lambda n: [_vector("0.5")] + [_vector("0.5", 383)] * (n - 1),
     "not a vector pgvector accepts: expected 384 dimensions, not 383"),
], ids=["number-lookalike", "string", "nested-list", "later-vectors-shorter"])
def test_a_vectorizer_fed_a_bad_reply_stores_nothing_and_blames_the_server(role, vectors, says):
    """The engine passes the server's arrays to pgvector without decoding them (found by their
    brackets) and counts the length of a reply's first one only: a reply that only looks like
    numbers, or whose later vectors are shorter, fails the batch with an error about the
    server, not about the rows; one that is not a list of flat lists is decoded and refused."""
    def bad(server: TinyServer, handler: BaseHTTPRequestHandler) -> None:
        if not handler.path.endswith("/api/embed"):
            return send(handler, b'{"models": []}')
        inputs = json.loads(handler.body)["input"]
        send(handler, ('{"model":"all-minilm","embeddings":[' + ",".join(vectors(len(inputs))) + "]}").encode())

    with tiny_server(bad) as server, psycopg.connect(role, autocommit=True) as conn:
        conn.execute("CREATE TABLE lookalike_docs (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO lookalike_docs VALUES (1, 'one'), (2, 'two')")
        conn.execute("""SELECT ai.create_vectorizer('lookalike_docs'::regclass, loading => ai.loading_column('body'),
                        embedding => ai.embedding_ollama('all-minilm', 384, base_url => %s),
                        chunking => ai.chunking_none(), scheduling => ai.scheduling_none())""", (server.url,))
        conn.execute("CALL ai.execute_vectorizer('lookalike_docs_embedding')")
        stored = conn.execute("SELECT count(*) FROM lookalike_docs_embedding_store").fetchone()[0]
        queued = conn.execute("SELECT ai.vectorizer_queue_pending('lookalike_docs_embedding', exact_count => true)"
                              ).fetchone()[0]
        errors = conn.execute("SELECT message, details->>'sqlstate', details->>'items' FROM ai.vectorizer_errors "
                              "WHERE name = 'lookalike_docs_embedding'").fetchall()
    assert server.seen, "the engine never called the server"
    assert stored == 0 and queued == 2
    assert errors and all(e[1] == "58000" and e[2] == "2" for e in errors), errors
    assert says in errors[0][0]


# --- chunking -----------------------------------------------------------------------------

@pytest.mark.parametrize("chunking, says", [
    ("ai.chunking_recursive_character_text_splitter(1, 0)", "chunk_size 1 is too small"),
    ("ai.chunking_character_text_splitter(100, 90)", "chunk_overlap 90 must be between 0 and half"),
    (r"ai.chunking_recursive_character_text_splitter(800, 0, ARRAY['\s*\n\s*\n\s*'], true)", "backtracks"),
    (r"ai.chunking_character_text_splitter(800, 0, '(a+)+$', true)", "backtracks"),
    (r"ai.chunking_character_text_splitter(800, 0, '(unclosed', true)", "not a valid regular expression"),
], ids=["tiny-size", "big-overlap", "whitespace-regex", "nested-repeat", "bad-regex"])
def test_chunking_that_cannot_end_well_is_refused_with_a_hint(role, chunking, says):
    with psycopg.connect(role) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=says) as info:
            conn.execute(f"SELECT ai._check_chunking({chunking})")
    assert info.value.diag.message_hint


def test_sound_chunking_passes_the_check(role):
    with psycopg.connect(role) as conn:
        for chunking in ("ai.chunking_recursive_character_text_splitter()", "ai.chunking_none()",
                         r"ai.chunking_recursive_character_text_splitter(120, 20, ARRAY['\n\s*\n', '\.\s', ' ', ''], true)"):
            conn.execute(f"SELECT ai._check_chunking({chunking})")


def test_a_row_making_more_chunks_than_the_bound_is_refused_not_stored(db, role):
    superuser(db, "UPDATE ai._model_call_limit SET value = 5 WHERE name = 'max_chunks_per_row'",
              "CREATE TABLE long_docs (id int PRIMARY KEY, body text)",
              f"GRANT SELECT, INSERT ON long_docs TO {ROLE}",
              """SELECT ai.create_vectorizer('long_docs'::regclass, loading => ai.loading_column('body'),
                     embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
                     chunking => ai.chunking_recursive_character_text_splitter(100, 0),
                     grant_to => ARRAY['%s'])""" % ROLE)
    with psycopg.connect(role, autocommit=True) as conn:  # a role that may only insert rows
        conn.execute("INSERT INTO long_docs VALUES (1, repeat('word ', 5000)), (2, 'a short one')")
    with psycopg.connect(db, autocommit=True) as conn:  # the owner's engine processes them
        conn.execute("CALL ai.execute_vectorizer('long_docs_embedding')")
        stored = dict(conn.execute("SELECT id, count(*) FROM long_docs_embedding_store GROUP BY id").fetchall())
        errors = [r[0] for r in conn.execute("SELECT message FROM ai.vectorizer_errors")]
    assert 1 not in stored
    assert any(re.search(r"makes \d+ chunks, more than max_chunks_per_row \(5\)", e) for e in errors), errors


# --- first contact ------------------------------------------------------------------------

def test_an_unreachable_explicit_host_is_not_blamed_on_the_settings(role):
    closed = free_port()
    with psycopg.connect(role) as conn:
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as info:
            conn.execute(f"SELECT ai.ollama_embed('all-minilm', 'x', host => 'http://127.0.0.1:{closed}')")
    hint = info.value.diag.message_hint
    assert "host argument" in hint and "SET ai.ollama_host" not in hint


def test_a_model_the_server_lacks_gets_a_warning_that_says_how_to_get_it(role):
    closed = free_port()
    with psycopg.connect(role) as conn:
        missing, present, offline, refused = conn.execute(f"""SELECT
            ai._embedding_model_warning(ai.embedding_ollama('nomic-embed-text', 768)),
            ai._embedding_model_warning(ai.embedding_ollama('all-minilm', 384)),
            ai._embedding_model_warning(ai.embedding_ollama('nomic-embed-text', 768,
                                                            base_url => 'http://127.0.0.1:{closed}')),
            ai._embedding_model_warning(ai.embedding_openai('all-minilm', 384,
                                                            base_url => 'http://10.9.9.9:8000/v1'))""").fetchone()
    assert "all-minilm" in missing and "ollama pull nomic-embed-text" in missing
    assert present is None and offline is None
    assert "10.9.9.9:8000 is not allowed" in refused  # said at creation, not at the first batch
