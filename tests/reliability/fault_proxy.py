"""A fault-injecting HTTP proxy in front of the real model server.

Modes: ``pass`` (forward), ``500``, ``429``, ``hang`` (answer after ``hang_seconds``),
``malformed`` (invalid JSON), ``wrong_dims`` (forward, then cut every vector in half),
``slow`` (forward after ``hang_seconds``), ``reject_key`` (401 echoing the key). Counts what it saw, so tests can report figures.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    """Start with ``FaultProxy(upstream)``; set ``mode``; ``url`` is where clients point."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.hang_seconds = 5.0
        self.requests = 0
        self.faults = 0
        self.in_flight = threading.Event()  # set while a forwarded request is being answered
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else None
                proxy.requests += 1
                mode = proxy.mode
                if mode in ("500", "429", "malformed", "hang"):
                    proxy.faults += 1
                if mode == "reject_key":  # what OpenAI does: echo (part of) the key it refused
                    proxy.faults += 1
                    key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    body = {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}}
                    return self._answer(401, json.dumps(body).encode())
                if mode == "500":
                    return self._answer(500, b'{"error": "injected server error"}')
                if mode == "429":
                    return self._answer(429, b'{"error": "injected rate limit"}')
                if mode == "malformed":
                    return self._answer(200, b'{"embeddings": [[0.1, 0.2,')
                if mode in ("hang", "slow"):
                    proxy.in_flight.set()
                    time.sleep(proxy.hang_seconds)
                    if mode == "hang":
                        return self._answer(504, b'{"error": "too late"}')
                response = httpx.request(method, proxy.upstream + self.path, content=payload,
                                         headers={"Content-Type": "application/json"}, timeout=600)
                body = response.content
                if mode == "wrong_dims" and self.path.endswith("/embed"):
                    proxy.faults += 1
                    data = response.json()
                    data["embeddings"] = [v[: len(v) // 2] for v in data.get("embeddings", [])]
                    body = json.dumps(data).encode()
                proxy.in_flight.clear()
                self._answer(response.status_code, body, response.headers.get("content-type", "application/json"))

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
