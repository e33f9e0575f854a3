"""Pooled HTTP connections per backend, with retries, bounds, and errors that say what to do.

The module lives as long as the database session (it is cached in GD), so the
keep-alive connections are reused by every call a backend makes. urllib3 keeps the
connections (one pool per host, through the proxy the server's environment names:
http_proxy, https_proxy, no_proxy) and makes them (TLS against the certificate authorities of
SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE); http.client writes the
requests and parses the replies.

The backend's own thread writes each request and reads its reply. PL/Python holds Python's
interpreter lock while a statement runs, so a request thread could neither write nor read
while the engine inserted rows, and handing the lock over cost time too (README.md, "The
engine's own cost"). Every read and every write of the socket first waits until it can go on,
in slices; between slices the backend runs a trivial statement, where PostgreSQL notices a
cancel, a statement_timeout or pg_terminate_backend (PL/Python has no CHECK_FOR_INTERRUPTS of
its own), so a model call stops when its statement is stopped. Only a new connection (DNS,
TCP, TLS, a proxy's tunnel) is made in a thread of its own, which the backend waits for the
same way; that thread blocks every signal, so PostgreSQL's handlers always run in the
backend's own thread. Not sliced: reading the rest of a TLS record whose first bytes have
come (for at most the socket timeout).
"""

from __future__ import annotations

import http.client
import io
import json as jsonlib
import math
import os
import queue
import select
import signal
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import plpy
import urllib3
from urllib3.exceptions import ConnectTimeoutError, DecodeError, HTTPError, NewConnectionError
from urllib3.util.retry import Retry

from . import settings
from .errors import fail
from .secrets import redact
from .vectors import to_pgvector

_pools: dict[str | None, urllib3.PoolManager] = {}  # by proxy (None: direct)
_proxies: dict[str, str | None] = {}                 # by scheme://host:port
_HEADERS = {"User-Agent": "pgweave", "Accept": "*/*", "Accept-Encoding": "gzip"}
_PIECE = 1 << 20  # a reply is read in pieces of at most this size, counted against max_bytes

# Retried: connection errors, 429 and 5xx. Never retried: other 4xx (the request is wrong).
_RETRY_STATUS = (429, 500, 502, 503, 504)
_RETRY_AFTER_STATUS = (429, 503)  # whose Retry-After header is obeyed, as urllib3 does
_SLICE_SECONDS = 0.05  # how often a waiting backend looks for a cancel
_BACKOFF = 0.25        # as urllib3: no wait before the first retry, _BACKOFF * 2^(n-1) s before the n-th
_TIMEOUT_HINT = ("raise the setting ai.http_timeout (seconds; at most the max_http_timeout a "
                 "superuser sets in ai._model_call_limit), or check the server's load")
_TLS_HINT = ("the database server trusts the certificate authorities of its system's store: give "
             "the model server a certificate one of them signed, or point SSL_CERT_FILE in the "
             "PostgreSQL service's environment at a file holding the model server's CA")
_ping_plan = None


def _proxy(url: str) -> str | None:
    """The proxy the server's environment names for this URL's origin, or None."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # host[:port], without credentials
    origin = f"{parts.scheme}://{host}"
    if origin not in _proxies:
        _proxies[origin] = None if proxy_bypass_environment(host) else getproxies_environment().get(parts.scheme)
    return _proxies[origin]


def _trusted_cas() -> dict[str, str]:
    """The certificate authorities the server's environment names: SSL_CERT_FILE and
    SSL_CERT_DIR (OpenSSL's), or REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (what requests read,
    when pgweave used it). Without any, urllib3's default: the system's store (Debian's
    urllib3 reads its bundle file and ignores SSL_CERT_FILE, hence this)."""
    options = {}
    cafile = next((os.environ[n] for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
                   if os.environ.get(n)), None)
    if cafile:
        options["ca_certs"] = cafile
    if os.environ.get("SSL_CERT_DIR"):
        options["ca_cert_dir"] = os.environ["SSL_CERT_DIR"]
    return options


def pool(url: str) -> urllib3.PoolManager:
    """This backend's connection pools for a URL (through its proxy, if any)."""
    proxy = _proxy(url)
    if proxy not in _pools:
        # As many kept connections per host as a backfill may have requests in flight.
        options = {"num_pools": 8, "maxsize": settings.MAX_IN_FLIGHT, "headers": _HEADERS, **_trusted_cas()}
        _pools[proxy] = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    return _pools[proxy]


@dataclass
class Reply:
    """A server's answer: status, reason, the body (read up to the size limit) and its type."""
    status_code: int
    reason: str
    content: bytes
    content_type: str | None = None
    retry_after: str | None = None

    @property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.content.decode("utf-8", errors="replace")


class _TooLarge(Exception):
    """The reply is longer than max_reply_bytes."""


class _GaveUp(Exception):
    """The whole request (retries, Retry-After waits, a reply dripping in) outlasted its deadline."""


class _Failed(Exception):
    """No usable reply. ``kind``: "timeout" (nothing came for the socket timeout), "tls" (the
    certificate check failed), "unreachable" (no connection, after the retries) or "broken"
    (the connection or the reply broke off); ``cause``: what was raised."""

    def __init__(self, kind: str, cause: BaseException):
        super().__init__(kind, cause)
        self.kind, self.cause = kind, cause


# What a broken exchange raises: the socket's errors (timeouts, resets; ssl's are OSError
# too), http.client's (a reply that is not HTTP, cut short), urllib3's (no connection, a gzip
# body that does not inflate).
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, HTTPError)


def _failure(exc: BaseException, connecting: bool) -> _Failed:
    """The kind of a transport error (``connecting``: raised while making the connection; a
    TLS error after that is a broken connection, not a failed certificate check)."""
    if connecting and isinstance(exc, (ssl.SSLError, urllib3.exceptions.SSLError)):
        return _Failed("tls", exc)
    # (urllib3 1.26's NewConnectionError, a refused connection, is a kind of connect timeout.)
    if isinstance(exc, TimeoutError) or (isinstance(exc, ConnectTimeoutError)
                                         and not isinstance(exc, NewConnectionError)):
        return _Failed("timeout", exc)
    return _Failed("unreachable" if connecting else "broken", exc)


def _url_auth(url: str) -> dict[str, str]:
    """Basic auth for credentials written into the URL (http://user:password@host), as
    requests sent them; urllib3 leaves them out."""
    parts = urlsplit(url)
    if parts.username is None:
        return {}
    return urllib3.make_headers(basic_auth=f"{unquote(parts.username)}:{unquote(parts.password or '')}")


def _check_for_interrupts() -> None:
    """Run a trivial statement: PostgreSQL raises a pending cancel or terminate there."""
    global _ping_plan
    if _ping_plan is None:
        _ping_plan = plpy.prepare("SELECT 1")
    plpy.execute(_ping_plan)


_ALL_SIGNALS = signal.valid_signals()  # a set built from enums: too slow to make per request


class _Runner:
    """A thread that makes new connections, then waits for the next one to make. It never
    touches plpy and takes no signal. One given up on keeps its thread until it ends; the
    next gets another one."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="pgweave-connect", daemon=True).start()

    def _serve(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
        while True:
            work, args, outcome, done = self.inbox.get()
            try:
                outcome["value"] = work(*args)
            except BaseException as exc:  # handed to the backend's thread
                outcome["error"] = exc
            finally:
                _idle.append(self)
                done.set()


_idle: list[_Runner] = []


def _in_thread(until: float, work, *args) -> Any:
    """Run work(*args) in a thread of its own while the backend waits for it in slices,
    checking for interrupts between them; its value. Raises _GaveUp at ``until``
    (time.monotonic())."""
    outcome: dict[str, Any] = {}
    done = threading.Event()
    runner = _idle.pop() if _idle else _Runner()
    runner.inbox.put((work, args, outcome, done))
    while not done.wait(_SLICE_SECONDS):
        _check_for_interrupts()
        if time.monotonic() > until:
            raise _GaveUp()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclass
class Sent:
    """A request on its way (``send``); ``receive`` waits for its reply."""
    method: str
    url: str
    body: bytes | None
    headers: dict
    socket_timeout: float   # how long any one wait for the server may last
    max_bytes: int
    retries: int
    until: float            # time.monotonic() when the whole request is given up on
    deadline: float         # the same, in seconds from the start
    unreachable_hint: str
    pool: Any               # urllib3's pool of connections to the host (or to the proxy)
    target: str             # what the request line asks for
    conn: Any = None        # the connection the request went out on, until its reply is read
    failures: int = 0       # attempts that failed and were made again
    last_check: float = 0.0  # time.monotonic() when the backend last looked for a cancel (or sent)


def _backoff(failures: int) -> float:
    """urllib3's wait before the next attempt after this many failed ones (Retry.get_backoff_time)."""
    return 0.0 if failures <= 1 else min(120.0, _BACKOFF * 2 ** (failures - 1))


def _deadline(socket_timeout: float, retries: int) -> float:
    """How long a whole request may take: every attempt the timeout, plus the backoff."""
    return socket_timeout * (retries + 1) + sum(_backoff(n) for n in range(1, retries + 1))


_routes: dict[str, tuple[Any, str, dict]] = {}  # by URL, see _route


def _route(url: str) -> tuple[Any, str, dict]:
    """The pool a request to this URL goes through, what its request line asks for, and the
    headers the way adds (basic auth for credentials in the URL; through a proxy, Host and the
    proxy's headers). A plain http:// request through a proxy goes to the proxy with the whole
    URL; any other goes to its host (an https:// one through the proxy's tunnel). Kept for the
    last 256 URLs while urllib3 keeps the pool (finding it again was 17 us a request)."""
    route = _routes.get(url)
    if route is None or route[0].pool is None:  # a pool urllib3 closed (more than num_pools hosts)
        if len(_routes) >= 256:
            _routes.clear()
        manager = pool(url)
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        headers = _url_auth(url)
        if parts.scheme == "http" and _proxy(url):
            target = urlunsplit((parts.scheme, host, parts.path or "/", parts.query, ""))
            headers = {**headers, "Host": host, **(manager.proxy_headers or {})}
        else:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        route = _routes[url] = (manager.connection_from_url(url), target, headers)
    return route


def _connect(conn_pool: Any, conn: Any) -> None:
    """Open a connection (runs in a connecting thread): through the proxy's tunnel if it needs one."""
    if getattr(conn_pool, "proxy", None) is not None and conn_pool.scheme == "https":
        conn_pool._prepare_proxy(conn)  # CONNECT, then TLS with the host inside the tunnel
    else:
        conn.connect()


def _write(sent: Sent) -> None:
    """Write the request on a kept connection, made first when there is none. A connection
    that cannot be made is tried again (retries, backoff) until the deadline; a kept one the
    server closed meanwhile is replaced at once (the server never saw the request)."""
    while True:
        conn = sent.pool._get_conn()
        kept = conn.sock is not None
        conn.timeout = sent.socket_timeout  # for connecting, and set on the socket by request()
        try:
            if not kept:
                _in_thread(sent.until, _connect, sent.pool, conn)
        except _TRANSPORT_ERRORS as exc:
            _discard(sent.pool, conn)
            failed = _failure(exc, connecting=True)
            if failed.kind == "tls" or sent.failures >= sent.retries:
                raise failed from None
            sent.failures += 1
            _pause(sent, _backoff(sent.failures))
            continue
        except BaseException:  # a cancel or the deadline, the connection maybe still being made:
            sent.pool._put_conn(None)  # it is left to its thread, never used (its place is given back)
            raise
        try:
            conn.send = lambda data: _send(sent, conn.sock, data)  # for this request only
            try:
                conn.request(sent.method, sent.target, body=sent.body, headers=sent.headers)
            finally:
                del conn.send
        except _TRANSPORT_ERRORS as exc:
            _discard(sent.pool, conn)
            if kept and not isinstance(exc, TimeoutError):
                continue
            raise _failure(exc, connecting=False) from None
        except BaseException:
            _discard(sent.pool, conn)
            raise
        sent.conn = conn
        return


def _send(sent: Sent, sock: Any, data: bytes) -> None:
    """What http.client writes a request with: each write of the socket after _wait, so a
    server that stops reading a long request does not hold a cancel up."""
    view = memoryview(data)
    while view:
        _wait(sent, sock, select.POLLOUT)
        view = view[sock.send(view):]


def _discard(conn_pool: Any, conn: Any) -> None:
    """Close a connection whose state is unknown and give its place back to the pool."""
    conn.close()
    conn_pool._put_conn(conn)


def _pause(sent: Sent, seconds: float) -> None:
    """Sleep before a retry, looking for a cancel every slice; _GaveUp at once when the
    retry would come after the deadline."""
    end = time.monotonic() + seconds
    if end > sent.until:
        raise _GaveUp()
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(_SLICE_SECONDS, left))
        _check_for_interrupts()


def _wait(sent: Sent, sock: Any, event: int) -> None:
    """Wait until a read (event select.POLLIN) or a write (POLLOUT) of the socket will not
    block: in slices, looking for a cancel between them (and at least every slice while bytes
    keep moving), raising _GaveUp at the deadline and TimeoutError after socket_timeout
    without a byte."""
    now = time.monotonic()
    if now > sent.until:
        raise _GaveUp()
    if now - sent.last_check > _SLICE_SECONDS:
        _check_for_interrupts()
        sent.last_check = now
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
    if event == select.POLLIN and pending is not None and pending():
        return
    poller = select.poll()
    poller.register(sock, event)
    quiet_since = now
    while not poller.poll(_SLICE_SECONDS * 1000):
        _check_for_interrupts()
        now = sent.last_check = time.monotonic()
        if now > sent.until:
            raise _GaveUp()
        if now - quiet_since > sent.socket_timeout:
            raise TimeoutError(f"no byte for {sent.socket_timeout:g} s")


class _WaitingReader(io.RawIOBase):
    """A socket's reads, each after _wait: what http.client reads a reply from."""

    def __init__(self, sock: Any, sent: Sent):
        super().__init__()
        self.sock, self.sent = sock, sent
        self.raw = sock.makefile("rb", buffering=0)  # holds the socket open until closed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        _wait(self.sent, self.sock, select.POLLIN)
        return self.raw.readinto(buffer)

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Waiting:
    """The socket as http.client.HTTPResponse sees it: only makefile is asked for."""

    def __init__(self, sock: Any, sent: Sent):
        self.sock, self.sent = sock, sent

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_WaitingReader(self.sock, self.sent))


def _read_reply(sent: Sent) -> Reply:
    """Read the reply to the request on sent.conn, at most max_bytes of it; the connection
    goes back to the pool once the reply is read whole, else it is closed. A gzip body is
    inflated piece by piece and never past the bound: a megabyte of gzip can hold a gigabyte."""
    conn, sent.conn = sent.conn, None
    conn.response_class = lambda sock, *args, **kwargs: http.client.HTTPResponse(
        _Waiting(sock, sent), *args, **kwargs)
    try:
        try:  # http.client's own getresponse: urllib3 2's would wrap the reply in its own class
            response = http.client.HTTPConnection.getresponse(conn)
        finally:
            del conn.response_class  # the connection keeps no reference to this request
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > sent.max_bytes:
            raise _TooLarge(int(declared))
        encoding = (response.getheader("Content-Encoding") or "").strip().lower()
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
        content = bytearray()
        # read(n) fills a buffer of the size left (at most n), waiting before each read of
        # the socket; read1(n) made an n-byte buffer for each read (5x the time for 300 kB
        # over a socketpair; 1.02x for a backfill, 7 of 10 interleaved rounds).
        while piece := response.read(_PIECE):
            try:
                content += inflate.decompress(piece, sent.max_bytes + 1 - len(content)) if inflate else piece
            except zlib.error as exc:
                raise DecodeError(f"a gzip body that does not inflate: {exc}") from None
            if len(content) > sent.max_bytes:
                raise _TooLarge(len(content))
        response.close()  # read whole: the connection may take the next request
    except BaseException:
        _discard(sent.pool, conn)
        raise
    sent.pool._put_conn(conn)
    return Reply(response.status, str(response.reason or ""), bytes(content),
                 response.getheader("Content-Type"), response.getheader("Retry-After"))


def _exchange(sent: Sent) -> Reply:
    """The reply to a written request; 429 and 5xx are asked again (retries, backoff, or
    the Retry-After the server names) while attempts are left."""
    while True:
        try:
            reply = _read_reply(sent)
        except _TRANSPORT_ERRORS as exc:
            raise _failure(exc, connecting=False) from None
        if reply.status_code not in _RETRY_STATUS or sent.failures >= sent.retries:
            _check_for_interrupts()  # a timeout that fired as the reply came wins over it
            return reply
        sent.failures += 1
        wait = _backoff(sent.failures)
        if reply.retry_after and reply.status_code in _RETRY_AFTER_STATUS:
            try:
                wait = Retry(0).parse_retry_after(reply.retry_after)
            except HTTPError:  # not seconds, not a date: the backoff, as without one
                pass
        _pause(sent, wait)
        _write(sent)


def _request(method: str, url: str, body: bytes | None, headers: dict | None, socket_timeout: float,
             max_bytes: int, retries: int, unreachable_hint: str) -> Sent:
    """A request, not written yet: _write sends it, _exchange reads its reply."""
    deadline = _deadline(socket_timeout, retries)
    conn_pool, target, route_headers = _route(url)
    now = time.monotonic()
    return Sent(method, url, body, {**_HEADERS, **route_headers, **(headers or {})}, socket_timeout,
                max_bytes, retries, now + deadline, deadline, unreachable_hint, conn_pool, target, last_check=now)


TooLarge, GaveUp, Failed = _TooLarge, _GaveUp, _Failed  # what download raises
check_for_interrupts = _check_for_interrupts  # for other waits of a backend (parsing a document)


def download(url: str, *, timeout: float, max_bytes: int, retries: int) -> Reply:
    """GET a document (ai.loading_uri): no redirects, at most max_bytes, retried like a model
    call, stopped by a cancel. The caller checks the URL and says what a failure means."""
    sent = _request("GET", url, None, None, timeout, max_bytes, retries, "")
    _write(sent)
    return _exchange(sent)


def send(method: str, url: str, *, json: Any = None, headers: dict | None = None,
         unreachable_hint: str, quick: bool = False) -> Sent:
    """Write one request to an allowed host, and return without waiting for its reply: a
    caller may send the next one before it ``receive``s this one's.

    ``quick``: a probe that must not hold anyone up (at most 5 s, no retries).
    """
    settings.check_host(url)
    body, headers = _json_body(json, headers)
    timeout = min(5.0, settings.timeout_seconds()) if quick else settings.timeout_seconds()
    left = settings.statement_seconds_left()
    # The socket waits no longer than the statement may run (plus a margin, so that the
    # statement's own cancel, with its usual message, comes first).
    socket_timeout = timeout if left is None else min(timeout, left + 1.0)
    max_bytes = int(settings.limit("max_reply_bytes"))
    retries = 0 if quick else settings.retries()
    sent = _request(method, url, body, headers, socket_timeout, max_bytes, retries, unreachable_hint)
    try:
        _write(sent)
    except (_GaveUp, _Failed) as exc:
        _fail(exc, sent)
    return sent


def _json_body(payload: Any, headers: dict | None) -> tuple[bytes | None, dict | None]:
    """A request's JSON body and its headers (none for no payload)."""
    if payload is None:
        return None, headers
    try:
        body = jsonlib.dumps(payload, allow_nan=False).encode()
    except ValueError as exc:
        fail(f"cannot send this request: {exc}", sqlstate="22023",
             hint="NaN and infinity are not JSON: pass finite numbers in the options")
    return body, {"Content-Type": "application/json", **(headers or {})}


def receive(sent: Sent) -> Reply:
    """Wait for a sent request's reply; turn transport failures into errors with a hint."""
    try:
        return _exchange(sent)
    except (_GaveUp, _TooLarge, _Failed) as exc:
        _fail(exc, sent)
    raise AssertionError("unreachable")


def _fail(exc: Exception, sent: Sent) -> None:
    """Raise the error, with its hint, for a request that got no usable reply."""
    where = origin(sent.url)
    if isinstance(exc, _GaveUp):
        fail(f"the model server at {where} did not finish answering within {sent.deadline:g} s",
             hint=_TIMEOUT_HINT, sqlstate="57014")
    if isinstance(exc, _TooLarge):
        fail(f"the model server at {where} sent a reply larger than {sent.max_bytes} bytes "
             f"(at least {exc.args[0]})", sqlstate="54000",
             hint="ask for less (fewer inputs per call, a lower max_tokens), or have a superuser "
                  "raise max_reply_bytes: UPDATE ai._model_call_limit SET value = ... "
                  "WHERE name = 'max_reply_bytes'")
    if exc.kind == "timeout":
        fail(f"the model server at {where} did not answer within {sent.socket_timeout:g} s",
             hint=_TIMEOUT_HINT, sqlstate="57014")
    if exc.kind == "tls":
        fail(f"the model server at {where} failed the TLS check: {_tls_reason(exc.cause)}",
             hint=_TLS_HINT, sqlstate="08001")
    if exc.kind == "unreachable":
        fail(f"cannot reach the model server at {where}", hint=sent.unreachable_hint, sqlstate="08001")
    fail(f"request to the model server at {where} failed: {type(exc.cause).__name__}",
         hint=sent.unreachable_hint, sqlstate="08000")


def _tls_reason(error: BaseException) -> str:
    """What the TLS check said (certificate verify failed, hostname mismatch), without the
    exception classes urllib3 may wrap it in."""
    inner = error.args[0] if isinstance(error, urllib3.exceptions.SSLError) and error.args else error
    return str(getattr(inner, "verify_message", None) or getattr(inner, "reason", None) or inner)[:200]


def _decode(reply: Reply) -> Any:
    """The reply's JSON; ValueError saying what it is instead (not JSON, or nested too deeply)."""
    try:
        return jsonlib.loads(reply.content)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"something that is not JSON ({exc})") from None


def error_message(reply: Reply, *secrets: str | None) -> str:
    """The server's error text from an Ollama- or OpenAI-shaped body, secrets redacted."""
    try:
        body = _decode(reply)
    except ValueError:
        return redact(reply.text[:500] or reply.reason, *secrets)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        err = err.get("message") or err
    return redact(str(err or body)[:500], *secrets)


def json_body(reply: Reply, url: str) -> Any:
    """Decode a JSON object reply, or fail saying the server is not the kind we expected."""
    try:
        body = _decode(reply)
    except ValueError as exc:
        malformed(url, str(exc)[:200])
    if not isinstance(body, dict):
        malformed(url, f"a JSON {type(body).__name__} instead of an object")
    return body


def malformed(url: str, what: str) -> None:
    """Fail for a reply of the wrong shape."""
    fail(f"{origin(url)} answered with {what}", sqlstate="58000",
         hint="check that the URL points at an Ollama or OpenAI-compatible server")


def vectors(values: Any, url: str) -> list[str]:
    """Check that a reply's embeddings are lists of finite numbers; return them as pgvector
    literals."""
    if not isinstance(values, list):
        malformed(url, f"embeddings that are not a list ({type(values).__name__})")
    for i, v in enumerate(values):
        if not isinstance(v, list) or not v or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            malformed(url, f"embedding {i} that is not a non-empty list of finite numbers")
    return [to_pgvector(v) for v in values]


def refusal_warning(exc: Exception) -> str | None:
    """For a probe that failed: a warning when the host is not allowed (say so now), else None."""
    if getattr(exc, "sqlstate", None) == "42501":
        return f"{exc}; {getattr(exc, 'hint', '')}"
    return None


def origin(url: str) -> str:
    """Scheme, host and port of a URL: never a path or query that might hold a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def checked(response: Reply, url: str, payload: Any = None, models_hint=None, secret: str | None = None) -> Reply:
    """A successful reply as it is; any other status as an error that says what to do."""
    status = response.status_code
    if status < 300:
        return response
    message = error_message(response, secret)
    where = origin(url)
    model = payload.get("model") if isinstance(payload, dict) else None
    if status < 400:
        fail(f"{where} answered with a redirect ({status}), which is not followed", sqlstate="58000",
             hint="point the setting or argument at the server's final URL")
    if status == 404 and model:
        fail(f"model {model!r} is not available on {where}", detail=message,
             hint=models_hint() if models_hint else None, sqlstate="42704", column="model")
    if status in (401, 403):
        fail(f"{where} refused the request: {message}",
             hint="pass api_key, or store the key with ai.store_secret and ai.grant_secret, "
                  "or (a superuser allowing its name in ai._environment_secret) set it in the "
                  "server's environment under api_key_name", sqlstate="28000")
    if status == 429:
        fail(f"{where} is rate limiting requests: {message}",
             hint="retry later or lower the request rate", sqlstate="53400")
    if status >= 500:
        fail(f"{where} failed with {status}: {message}",
             hint="check the model server's log", sqlstate="58000")
    fail(f"{where} rejected the request ({status}): {message}", sqlstate="22023",
         hint="the model server refused these arguments (its words are above): fix them and retry")
