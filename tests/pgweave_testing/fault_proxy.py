"""A recording, fault-injecting HTTP proxy in front of the real model server.

Modes: ``pass`` (forward), ``500``, ``429``, ``hang`` (answer 504 after ``hang_seconds``),
``malformed`` (invalid JSON), ``wrong_dims`` (forward, then cut every vector in half), ``gzip``
(forward, the reply gzip-compressed when the client accepts it), ``gzip_bomb`` (1 MiB of gzip
that inflates to 1 GiB of zeros),
``slow`` (forward after ``hang_seconds``), ``reject_key`` (401 echoing the key), ``gate``
(hold every request until ``release()``, then forward). Every request is recorded in
``seen`` (method, path, headers, JSON body), so tests can check what was really sent. It is
also an HTTP forward proxy: a request naming a whole http:// URL goes to that URL, and a
CONNECT opens a tunnel to the host it names (recorded as a CONNECT with that host:port).
"""

from __future__ import annotations

import functools
import gzip
import json
import select
import socket
import ssl
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .helpers import wait_until


class FaultProxy:
    """Start with ``FaultProxy(upstream)``; set ``mode``; ``url`` is where clients point."""

    def __init__(self, upstream: str, tls: tuple[str, str] | None = None):
        """``tls``: (certificate file, key file): serve HTTPS with them."""
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.hang_seconds = 5.0
        self.requests = 0
        self.faults = 0
        self.seen: list[dict] = []
        self.held = 0  # requests waiting at the gate now
        self.in_flight = threading.Event()  # set while a slow/hang request is being answered
        self._gate = threading.Semaphore(0)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: bytes, ctype: str = "application/json",
                        encoding: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else None
                mode = proxy._record(method, self.path, dict(self.headers), payload)
                if mode == "reject_key":  # what OpenAI does: echo (part of) the key it refused
                    key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    body = {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}}
                    return self._answer(401, json.dumps(body).encode())
                if mode == "500":
                    return self._answer(500, b'{"error": "injected server error"}')
                if mode == "429":
                    return self._answer(429, b'{"error": "injected rate limit"}')
                if mode == "malformed":
                    return self._answer(200, b'{"embeddings": [[0.1, 0.2,')
                if mode == "gzip_bomb":
                    return self._answer(200, proxy.gzip_bomb(), encoding="gzip")
                if mode == "gate":
                    with proxy._lock:
                        proxy.held += 1
                    proxy._gate.acquire()
                    with proxy._lock:
                        proxy.held -= 1
                if mode in ("hang", "slow"):
                    proxy.in_flight.set()
                    time.sleep(proxy.hang_seconds)
                    if mode == "hang":
                        return self._answer(504, b'{"error": "too late"}')
                # A client that uses this as its HTTP proxy names the whole URL (absolute form).
                target = self.path if self.path.startswith("http://") else proxy.upstream + self.path
                response = httpx.request(method, target, content=payload, trust_env=False,
                                         headers={"Content-Type": "application/json"}, timeout=600)
                body = response.content
                if mode == "wrong_dims" and self.path.endswith("/embed"):
                    data = response.json()
                    data["embeddings"] = [v[: len(v) // 2] for v in data.get("embeddings", [])]
                    body = json.dumps(data).encode()
                proxy.in_flight.clear()
                ctype = response.headers.get("content-type", "application/json")
                if mode == "gzip" and "gzip" in (self.headers.get("Accept-Encoding") or ""):
                    return self._answer(response.status_code, gzip.compress(body), ctype, "gzip")
                self._answer(response.status_code, body, ctype)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_CONNECT(self):
                """A tunnel to host:port, bytes both ways until either side closes."""
                proxy._record("CONNECT", self.path, dict(self.headers), None)
                host, _, port = self.path.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=30) as upstream:
                    self.send_response(200, "Connection established")
                    self.end_headers()
                    ends = [self.connection, upstream]
                    while True:
                        for end in select.select(ends, [], [], 30)[0]:
                            data = end.recv(65536)
                            if not data:
                                self.close_connection = True
                                return
                            (upstream if end is self.connection else self.connection).sendall(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # The handshake runs in the request's thread: a client that refuses the
            # certificate does not hold up the others.
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
            self.url = self.url.replace("http://", "https://")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    @functools.cache
    def gzip_bomb() -> bytes:
        """1 GiB of zeros, gzip-compressed (about 1 MiB)."""
        squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        zeros = bytes(1 << 20)
        return b"".join(squeeze.compress(zeros) for _ in range(1024)) + squeeze.flush()

    def _record(self, method: str, path: str, headers: dict, payload: bytes | None) -> str:
        """Count and keep one request; return the mode it is answered in."""
        try:
            body = json.loads(payload) if payload else None
        except ValueError:
            body = payload
        with self._lock:
            self.requests += 1
            mode = self.mode
            if mode not in ("pass", "slow", "gate", "gzip"):
                self.faults += 1
            self.seen.append({"method": method, "path": path, "mode": mode,
                              "headers": {k.lower(): v for k, v in headers.items()}, "json": body})
        return mode

    def posts(self, suffix: str) -> list[dict]:
        """The recorded POST requests whose path ends with ``suffix``."""
        with self._lock:
            return [r for r in self.seen if r["method"] == "POST" and r["path"].endswith(suffix)]

    def wait_held(self, n: int, timeout: float = 60.0, threads=()) -> None:
        """Wait until ``n`` requests wait at the gate at the same time; a thread of ``threads``
        that ends meanwhile (it failed, or never reached the model) has its outcome raised."""
        def check() -> bool:
            for thread in threads:
                if not thread.is_alive():
                    thread.result(0)
                    raise AssertionError(f"{thread.name} finished before {n} requests were held")
            return self.held >= n
        wait_until(check, f"{n} requests held at the gate at once", timeout)

    def release(self, n: int = 1) -> None:
        """Let ``n`` held (or future gated) requests through."""
        for _ in range(n):
            self._gate.release()

    def close(self) -> None:
        """Stop serving; requests still held at the gate are let through first."""
        self.release(1000)
        self.server.shutdown()
        self.server.server_close()
