"""Prometheus metrics of the model server, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter("pgweave_serve_requests", "HTTP requests served", ["endpoint", "status"],
                   registry=REGISTRY)
INPUTS_EMBEDDED = Counter("pgweave_serve_inputs_embedded", "Texts embedded", ["model"], registry=REGISTRY)
TOKENS = Counter("pgweave_serve_tokens", "Tokens processed (prompt and generated)", ["model"],
                 registry=REGISTRY)
MODEL_CALLS = Counter("pgweave_serve_model_calls", "Batched model invocations", ["model"], registry=REGISTRY)
LATENCY = Histogram("pgweave_serve_request_seconds", "Request latency", ["endpoint"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def render() -> bytes:
    """The metrics in Prometheus' text format."""
    return generate_latest(REGISTRY)
