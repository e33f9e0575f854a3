"""SYNTHETIC embedding server for overhead benchmarks: answers Ollama's /api/embed instantly.

Not a model. Each text gets a deterministic "hash vector": md5(text) picks one of POOL unit
vectors made once from a fixed seed, printed in advance as shortest float32 JSON (as Ollama
prints), so an answer costs one md5 and a string join per text. Texts with the same md5 bucket
share a vector. Every table that uses it says "synthetic". It exists to measure what pgweave
(and pgai) cost around a model that costs nothing: a GPU server or a fast remote API.

    python bench/synthetic_server.py [--port 0] [--dimensions 384]   # prints its URL, serves until killed

Routes: POST /api/embed (Ollama), GET /stats (requests and texts served), GET /api/tags, POST /api/show (pgai's worker asks for the
context length), GET / . HTTP/1.1 keep-alive on one asyncio loop, one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json

import numpy as np

from pgweave.serve.app import float32_list  # how pgweave serve prints, as Ollama does

POOL = 4096
MODEL = "synthetic"


def pool(dimensions: int, size: int = POOL, seed: int = 22) -> list[bytes]:
    """``size`` deterministic unit vectors as JSON arrays of shortest float32 decimals."""
    v = np.random.default_rng(seed).standard_normal((size, dimensions))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [json.dumps(row, separators=(",", ":")).encode() for row in float32_list(v)]


def vector_for(vectors: list[bytes], text: str) -> bytes:
    """The hash vector of a text (deterministic: the same text, the same vector)."""
    return vectors[int.from_bytes(hashlib.md5(text.encode()).digest()[:4], "little") % len(vectors)]


def embed_body(vectors: list[bytes], body: dict) -> bytes:
    """/api/embed's answer for a request body."""
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else list(texts or [])
    tokens = sum(len(t) // 4 + 1 for t in texts)
    return (b'{"model":' + json.dumps(body.get("model", MODEL)).encode() + b',"embeddings":['
            + b",".join(vector_for(vectors, t) for t in texts)
            + b'],"total_duration":0,"load_duration":0,"prompt_eval_count":' + str(tokens).encode() + b"}")


STATS = {"requests": 0, "texts": 0}


def route(vectors: list[bytes], dimensions: int, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
    """(status, JSON body) for one request."""
    if path == "/api/embed" and method == "POST":
        body = json.loads(raw or b"{}")
        STATS["requests"] += 1
        STATS["texts"] += 1 if isinstance(body.get("input"), str) else len(body.get("input") or [])
        return 200, embed_body(vectors, body)
    if path == "/stats":  # what it has served: the benchmark checks nothing was embedded twice
        return 200, json.dumps(STATS).encode()
    if path == "/api/tags":
        return 200, json.dumps({"models": [{"name": MODEL + ":latest", "model": MODEL + ":latest"}]}).encode()
    if path == "/api/show":
        return 200, json.dumps({"modelfile": "", "parameters": "", "template": "", "details": {},
                                "model_info": {"general.architecture": "bert", "bert.context_length": 512,
                                               "bert.embedding_length": dimensions}}).encode()
    if path == "/":
        return 200, b'"synthetic embedding server is running"'
    return 404, json.dumps({"error": f"no route {method} {path}"}).encode()


async def serve(port: int, dimensions: int, ready: asyncio.Future | None = None, latency: float = 0.0) -> None:
    """Serve until cancelled; prints the URL (or sets ``ready`` to it). ``latency``: seconds each
    /api/embed answer waits first (requests overlap, as on a remote API or a GPU server)."""
    vectors = pool(dimensions)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                status, body = route(vectors, dimensions, method, path.split("?")[0], raw)
                if latency and path.startswith("/api/embed"):
                    await asyncio.sleep(latency)
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % (status, b"OK" if status == 200 else b"Not Found", len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    if ready is not None:
        ready.set_result(url)
    else:
        print(url, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Command line: serve on --port (0: a free one), print the URL on the first line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait before each /api/embed answer")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.dimensions, latency=args.latency_ms / 1000))


if __name__ == "__main__":
    main()
