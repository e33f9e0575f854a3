"""Pooled HTTP connections per backend, with retries, bounds, and errors that say what to do.

The module lives as long as the database session (it is cached in GD), so the
keep-alive connections are reused by every call a backend makes. It speaks urllib3 directly
(requests is built on it): requests' own work (merging the environment, netrc and hooks into
each request) took 0.7 ms of a 64-text embedding request with a fast model server, more than
the reply. Proxies (http_proxy, https_proxy, no_proxy) and trusted certificate authorities
(SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) come from the server's
environment.

A request runs in a request thread (kept for the backend's next request) while the backend
waits for it in slices, running a trivial statement between slices: that is where
PostgreSQL notices a cancel, a statement_timeout or pg_terminate_backend (PL/Python has no
CHECK_FOR_INTERRUPTS of its own), so a model call stops when its statement is stopped. The thread blocks every signal,
so PostgreSQL's handlers always run in the backend's own thread.
"""

from __future__ import annotations

import json as jsonlib
import math
import os
import queue
import signal
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import plpy
import urllib3
from urllib3.exceptions import DecodeError, HTTPError, MaxRetryError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as TransportTimeout
from urllib3.util.retry import Retry

from . import settings
from .errors import fail
from .secrets import redact
from .vectors import to_pgvector

_pools: dict[str | None, urllib3.PoolManager] = {}  # by proxy (None: direct)
_proxies: dict[str, str | None] = {}                 # by scheme://host:port
_retries: dict[int, Retry] = {}
_HEADERS = {"User-Agent": "pgweave", "Accept": "*/*", "Accept-Encoding": "gzip"}
_PIECE = 1 << 20  # a reply is read in pieces of this size, counted against max_bytes

# Retried: connection errors, 429 and 5xx. Never retried: other 4xx (the request is wrong).
_RETRY_STATUS = (429, 500, 502, 503, 504)
_SLICE_SECONDS = 0.05  # how often a waiting backend looks for a cancel
_BACKOFF = 0.25        # urllib3 waits _BACKOFF * 2^(n-1) s before the n-th retry, at most 120 s
_TIMEOUT_HINT = ("raise the setting ai.http_timeout (seconds; at most the max_http_timeout a "
                 "superuser sets in ai._model_call_limit), or check the server's load")
_TLS_HINT = ("the database server trusts the certificate authorities of its system's store: give "
             "the model server a certificate one of them signed, or point SSL_CERT_FILE in the "
             "PostgreSQL service's environment at a file holding the model server's CA")
_ping_plan = None


def _retry(retries: int) -> Retry:
    """urllib3's retry policy for this count (a Retry is never changed, only copied)."""
    if retries not in _retries:
        _retries[retries] = Retry(
            total=retries, connect=retries, read=0, status=retries,
            backoff_factor=_BACKOFF, status_forcelist=_RETRY_STATUS,
            allowed_methods=frozenset({"GET", "POST"}), raise_on_status=False,
            respect_retry_after_header=True, redirect=0,
        )
    return _retries[retries]


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

    @property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.content.decode("utf-8", errors="replace")


class _TooLarge(Exception):
    """The reply is longer than max_reply_bytes."""


def _url_auth(url: str) -> dict[str, str]:
    """Basic auth for credentials written into the URL (http://user:password@host), as
    requests sent them; urllib3 leaves them out."""
    parts = urlsplit(url)
    if parts.username is None:
        return {}
    return urllib3.make_headers(basic_auth=f"{unquote(parts.username)}:{unquote(parts.password or '')}")


def _read_bounded(response: urllib3.HTTPResponse, max_bytes: int) -> bytes:
    """A reply's body, at most max_bytes (else _TooLarge). A gzip body is inflated piece by
    piece and never past the bound: a megabyte of gzip can hold a gigabyte, which urllib3
    would inflate whole before the bound is looked at."""
    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    content = bytearray()
    try:
        for piece in response.stream(_PIECE, decode_content=False):
            content += inflate.decompress(piece, max_bytes + 1 - len(content)) if inflate else piece
            if len(content) > max_bytes:
                raise _TooLarge(len(content))
    except zlib.error as exc:
        raise DecodeError(f"a gzip body that does not inflate: {exc}") from None
    return bytes(content)


def _fetch(method: str, url: str, body: bytes | None, headers: dict | None, timeout: float,
           max_bytes: int, retries: int) -> Reply:
    """Send the request and read at most max_bytes of the reply (runs in the request thread)."""
    manager = pool(url)
    headers = {**manager.headers, **_url_auth(url), **(headers or {})}
    response = manager.request(method, url, body=body, headers=headers,
                               timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=_retry(retries),
                               redirect=False, preload_content=False)
    complete = False
    try:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise _TooLarge(int(declared))
        content = _read_bounded(response, max_bytes)
        complete = True
        return Reply(response.status, str(response.reason or ""), content, response.headers.get("Content-Type"))
    finally:
        if not complete:  # a connection with unread bytes on it is not reused
            response.close()
        response.release_conn()


def _check_for_interrupts() -> None:
    """Run a trivial statement: PostgreSQL raises a pending cancel or terminate there."""
    global _ping_plan
    if _ping_plan is None:
        _ping_plan = plpy.prepare("SELECT 1")
    plpy.execute(_ping_plan)


class _GaveUp(Exception):
    """The whole request (retries, Retry-After waits, a reply dripping in) outlasted its deadline."""


_ALL_SIGNALS = signal.valid_signals()  # a set built from enums: too slow to make per request


class _Runner:
    """A request thread that waits for the next request when done: starting a thread per
    request was a tenth of a backfill's time with a fast model server. It never touches plpy
    and takes no signal. A request given up on keeps its thread until it ends; the next
    request gets another one."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="pgweave-request", daemon=True).start()

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


def _start(work, *args) -> tuple[threading.Event, dict[str, Any]]:
    """Hand work(*args) to an idle request thread; its outcome lands in the dict."""
    outcome: dict[str, Any] = {}
    done = threading.Event()
    runner = _idle.pop() if _idle else _Runner()
    runner.inbox.put((work, args, outcome, done))
    return done, outcome


def _wait(done: threading.Event, outcome: dict[str, Any], until: float) -> Any:
    """Wait for a started work in slices, checking for interrupts between them; its value.

    Raises _GaveUp at ``until`` (time.monotonic()): the socket timeout bounds each wait for a
    byte, not a server that sends one byte at a time, or asks to be retried after a day.
    """
    while not done.wait(_SLICE_SECONDS):
        _check_for_interrupts()
        if time.monotonic() > until:
            raise _GaveUp()
    _check_for_interrupts()  # a timeout that fired as the request ended wins over its outcome
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _in_thread(deadline_seconds: float, work, *args) -> Any:
    """Run work(*args) in a request thread and wait for it (see _wait)."""
    done, outcome = _start(work, *args)
    return _wait(done, outcome, time.monotonic() + deadline_seconds)


def _deadline(socket_timeout: float, retries: int) -> float:
    """How long a whole request may take: every attempt the timeout, plus urllib3's backoff."""
    return socket_timeout * (retries + 1) + sum(min(120.0, _BACKOFF * 2 ** n) for n in range(retries))


TooLarge, GaveUp = _TooLarge, _GaveUp  # what download raises, besides urllib3's HTTPError
check_for_interrupts = _check_for_interrupts  # for other waits of a backend (parsing a document)


def download(url: str, *, timeout: float, max_bytes: int, retries: int) -> Reply:
    """GET a document (ai.loading_uri): no redirects, at most max_bytes, retried like a model
    call, stopped by a cancel. The caller checks the URL and says what a failure means."""
    return _in_thread(_deadline(timeout, retries), _fetch, "GET", url, None, None, timeout, max_bytes, retries)


@dataclass
class Sent:
    """A request on its way (``send``); ``receive`` waits for its reply."""
    url: str
    done: threading.Event
    outcome: dict
    until: float            # time.monotonic() when the whole request is given up on
    deadline: float         # the same, in seconds from the start
    socket_timeout: float
    max_bytes: int
    unreachable_hint: str


def send(method: str, url: str, *, json: Any = None, headers: dict | None = None,
         unreachable_hint: str, quick: bool = False) -> Sent:
    """Start one request to an allowed host in a request thread, and return at once: a
    caller may send the next one before it ``receive``s this one's reply.

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
    deadline = _deadline(socket_timeout, retries)
    done, outcome = _start(_fetch, method, url, body, headers, socket_timeout, max_bytes, retries)
    return Sent(url, done, outcome, time.monotonic() + deadline, deadline, socket_timeout, max_bytes,
                unreachable_hint)


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
    url = sent.url
    try:
        return _wait(sent.done, sent.outcome, sent.until)
    except _GaveUp:
        fail(f"the model server at {origin(url)} did not finish answering within {sent.deadline:g} s",
             hint=_TIMEOUT_HINT, sqlstate="57014")
    except _TooLarge as exc:
        fail(f"the model server at {origin(url)} sent a reply larger than {sent.max_bytes} bytes "
             f"(at least {exc.args[0]})", sqlstate="54000",
             hint="ask for less (fewer inputs per call, a lower max_tokens), or have a superuser "
                  "raise max_reply_bytes: UPDATE ai._model_call_limit SET value = ... "
                  "WHERE name = 'max_reply_bytes'")
    except HTTPError as exc:
        # Retries used up: MaxRetryError says why (a timeout, or no connection); a timeout
        # while the reply's body arrived comes as it is.
        cause = exc.reason if isinstance(exc, MaxRetryError) else exc
        # (urllib3 1.26's NewConnectionError, a refused connection, is a kind of timeout.)
        if isinstance(cause, TransportTimeout) and not isinstance(cause, NewConnectionError):
            fail(f"the model server at {origin(url)} did not answer within {sent.socket_timeout:g} s",
                 hint=_TIMEOUT_HINT, sqlstate="57014")
        if isinstance(cause, SSLError):
            fail(f"the model server at {origin(url)} failed the TLS check: {_tls_reason(cause)}",
                 hint=_TLS_HINT, sqlstate="08001")
        if isinstance(exc, MaxRetryError):
            fail(f"cannot reach the model server at {origin(url)}", hint=sent.unreachable_hint,
                 sqlstate="08001")
        fail(f"request to the model server at {origin(url)} failed: {type(exc).__name__}",
             hint=sent.unreachable_hint, sqlstate="08000")
    raise AssertionError("unreachable")


def _tls_reason(error: SSLError) -> str:
    """What the TLS check said (certificate verify failed, hostname mismatch), without the
    exception classes urllib3 wraps it in."""
    inner = error.args[0] if error.args else error
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
