"""`pgweave serve` against the official ollama and openai clients: a real model, no mocks.

Served embeddings are compared with tests/data/reference_embeddings.json: vectors computed once by
plain transformers with hand-written pooling (tests/data/make_reference_embeddings.py), not by the
sentence-transformers code the server runs.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import pytest

MODEL = "all-minilm"
REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_embeddings.json").read_text())


def reference(model: str, text: str) -> np.ndarray:
    """The shipped reference embedding of one of REFERENCE's texts."""
    return np.asarray(REFERENCE["models"][model][REFERENCE["texts"].index(text)])


@pytest.fixture(scope="module")
def serve_url(model_server_url) -> str:
    """The session's shared model server (tests/conftest.py)."""
    return model_server_url


@pytest.fixture
def client(serve_url: str):
    """The official ollama client, pointed at the server."""
    return ollama.Client(host=serve_url)


@pytest.fixture
def oai(serve_url: str):
    """The official openai client, pointed at the server's /v1."""
    return openai.OpenAI(base_url=serve_url + "/v1", api_key="unused", max_retries=0)


def _cos(a, b) -> float:
    """Cosine similarity."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample of the server's /metrics (0 when absent)."""
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_root_version_and_head(serve_url):
    r = httpx.get(serve_url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert httpx.head(serve_url + "/").status_code == 200
    version = httpx.get(serve_url + "/api/version").json()["version"]
    assert all(part.isdigit() for part in version.split("."))


def test_embed_single_and_list_match_the_reference_vectors(client):
    texts = ["hello world", "PostgreSQL keeps the embeddings next to the rows"]
    single = client.embed(model=MODEL, input=texts[0])
    assert len(single.embeddings) == 1 and len(single.embeddings[0]) == 384
    assert single.prompt_eval_count == 4  # [CLS] hello world [SEP]
    batch = client.embed(model=MODEL, input=texts)
    assert batch.model == MODEL and len(batch.embeddings) == 2
    for served, expected in zip(batch.embeddings, [reference(MODEL, t) for t in texts]):
        assert _cos(served, expected) > 0.9999
        assert abs(np.linalg.norm(served) - 1) < 1e-5
    assert _cos(single.embeddings[0], batch.embeddings[0]) > 0.9999


def test_semantic_sanity(client):
    cat, kitten, tax = client.embed(model=MODEL, input=[
        "The cat sits on the mat", "A kitten rests on a rug", "Quarterly tax filing deadlines"]).embeddings
    assert _cos(cat, kitten) > _cos(cat, tax) + 0.2


def test_model_names_follow_ollama_rules(client):
    vectors = [client.embed(model=name, input="x").embeddings[0]
               for name in ("all-minilm", "all-minilm:latest", "all-minilm:l6-v2", "All-MiniLM")]
    assert all(_cos(v, vectors[0]) > 0.9999 for v in vectors)


def test_list_show_ps(client):
    client.embed(model=MODEL, input="load it")
    (entry,) = [m for m in client.list().models if m.model.startswith("all-minilm")]
    assert entry.model == "all-minilm:latest" and entry.size > 80_000_000
    assert len(entry.digest) == 64 and entry.details.family == "bert"
    show = client.show(MODEL)
    assert show.modelinfo["general.architecture"] == "bert"
    assert show.modelinfo["bert.embedding_length"] == 384
    assert show.modelinfo["bert.context_length"] == 256
    assert show.capabilities == ["embedding"]
    (running,) = [m for m in client.ps().models if m.model.startswith("all-minilm")]
    assert running.model == "all-minilm:latest" and running.size_vram == 0
    assert running.context_length == 256 and running.expires_at is not None


def test_legacy_embeddings(client):
    vector = client.embeddings(model=MODEL, prompt="hello world").embedding
    assert _cos(vector, reference(MODEL, "hello world")) > 0.9999
    assert client.embeddings(model=MODEL, prompt="").embedding == []


def test_unknown_model_is_a_404(client, oai):
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="no-such-model", input="x")
    assert info.value.status_code == 404
    assert info.value.error.startswith('model "no-such-model" not found, try pulling it first')
    assert "all-mpnet-base-v2:latest" in info.value.error and "smollm2:135m" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.show("no-such-model")
    assert info.value.status_code == 404 and info.value.error == "model 'no-such-model' not found"
    with pytest.raises(openai.NotFoundError) as oinfo:
        oai.embeddings.create(model="no-such-model", input="x")
    assert oinfo.value.body["type"] == "not_found_error"


def test_openai_base64_default_and_float_agree(oai):
    texts = ["hello world", "The cat sits on the mat"]
    default = oai.embeddings.create(model=MODEL, input=texts)  # the client asks for base64
    floats = oai.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    assert default.usage.prompt_tokens == default.usage.total_tokens == 4 + 8
    for a, b, expected in zip(default.data, floats.data, [reference(MODEL, t) for t in texts]):
        assert len(a.embedding) == 384
        assert np.allclose(a.embedding, b.embedding, atol=1e-7)
        assert _cos(a.embedding, expected) > 0.9999
    assert len(oai.embeddings.create(model=MODEL, input="just one").data) == 1


def test_dimensions_truncate_and_renormalize(client, oai):
    full = np.asarray(client.embed(model=MODEL, input="matryoshka").embeddings[0])
    short = np.asarray(client.embed(model=MODEL, input="matryoshka", dimensions=128).embeddings[0])
    assert short.shape == (128,) and abs(np.linalg.norm(short) - 1) < 1e-5
    assert np.allclose(short, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)
    for item in oai.embeddings.create(model=MODEL, input=["a", "b"], dimensions=128).data:
        assert len(item.embedding) == 128 and abs(np.linalg.norm(item.embedding) - 1) < 1e-5
    for bad in (0, 385):
        with pytest.raises(ollama.ResponseError) as info:
            client.embed(model=MODEL, input="x", dimensions=bad)
        assert info.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model=MODEL, input="x", dimensions=385)


def test_openai_models(oai):
    assert "all-minilm:latest" in [m.id for m in oai.models.list().data]
    model = oai.models.retrieve(MODEL)
    assert model.id == MODEL and model.owned_by == "library"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


def test_long_input_is_truncated_unless_refused(client, serve_url):
    # "word" and each number are one token apiece: 254 of them fill the window with [CLS] and [SEP].
    long_text = " ".join(f"word {i % 50}" for i in range(2500))
    out = client.embed(model=MODEL, input=[long_text, "short"])
    assert out.prompt_eval_count == 256 + 3  # cut to the 256-token window
    first_254 = " ".join(f"word {i % 50}" for i in range(127))
    assert _cos(out.embeddings[0], client.embed(model=MODEL, input=first_254).embeddings[0]) > 0.9999
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model=MODEL, input=[long_text, "short"], truncate=False)
    assert info.value.status_code == 400
    assert info.value.error == "the input length exceeds the context length"
    r = httpx.post(serve_url + "/api/embed", json={"model": MODEL, "input": long_text, "truncate": False})
    assert r.status_code == 400 and r.json() == {"error": "the input length exceeds the context length"}


def test_a_batch_is_one_model_call(client, serve_url):
    labels = {"model": "all-minilm:latest"}
    before = {name: _metric(serve_url, name, **labels) for name in
              ("pgweave_serve_inputs_embedded_total", "pgweave_serve_model_calls_total")}
    requests_before = _metric(serve_url, "pgweave_serve_requests_total", endpoint="/api/embed", status="200")
    client.embed(model=MODEL, input=[f"text number {i}" for i in range(7)])
    assert _metric(serve_url, "pgweave_serve_inputs_embedded_total", **labels) == before[
        "pgweave_serve_inputs_embedded_total"] + 7
    assert _metric(serve_url, "pgweave_serve_model_calls_total", **labels) == before[
        "pgweave_serve_model_calls_total"] + 1
    assert _metric(serve_url, "pgweave_serve_requests_total", endpoint="/api/embed",
                   status="200") == requests_before + 1
    text = httpx.get(serve_url + "/metrics").text
    assert 'pgweave_serve_request_seconds_count{endpoint="/api/embed"}' in text
    assert "pgweave_serve_tokens_total" in text


@pytest.mark.parametrize("body, error", [
    (b"{not json", "invalid JSON"),
    (b"", "missing request body"),
    (b'{"input": "x"}', "model is required"),
    (b'{"model": "all-minilm", "input": [1, 2]}', "invalid input type"),
    (b'{"model": "all-minilm", "input": "x", "dimensions": "many"}', "dimensions must be an integer"),
])
def test_bad_requests_are_400_with_an_error_string(serve_url, body, error):
    r = httpx.post(serve_url + "/api/embed", content=body)
    assert r.status_code == 400
    assert set(r.json()) == {"error"} and error in r.json()["error"]


def test_openai_bad_requests_use_openai_errors(serve_url, oai):
    r = httpx.post(serve_url + "/v1/embeddings", content=b"{oops")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error" and "message" in r.json()["error"]
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model=MODEL, input=[])
    with pytest.raises(openai.BadRequestError):  # token ids: refused like Ollama does
        oai.embeddings.create(model=MODEL, input=[101, 7592, 102])


def test_curl_style_form_content_type_is_accepted(serve_url):
    # `curl -d '{...}'`, as in Ollama's docs, sends application/x-www-form-urlencoded.
    r = httpx.post(serve_url + "/api/embed", content=b'{"model": "all-minilm", "input": "x"}',
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and len(r.json()["embeddings"][0]) == 384


def test_empty_inputs_follow_ollama(client, oai):
    assert client.embed(model=MODEL, input=[]).embeddings == []
    # Ollama embeds nothing for a lone "" (it only loads the model), but does embed [""].
    assert client.embed(model=MODEL, input="").embeddings == []
    (vector,) = client.embed(model=MODEL, input=[""]).embeddings
    assert len(vector) == 384 and abs(np.linalg.norm(vector) - 1) < 1e-5
    assert len(oai.embeddings.create(model=MODEL, input="").data[0].embedding) == 384


def test_concurrent_requests_are_safe(serve_url, client):
    texts = [f"concurrent request {i} " + "padding " * (i * 20) for i in range(12)]

    def one(text: str) -> list[float]:
        r = httpx.post(serve_url + "/api/embed", json={"model": MODEL, "input": [text, "other"]}, timeout=60)
        r.raise_for_status()
        return r.json()["embeddings"][0]

    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(one, texts))
    one_at_a_time = [client.embed(model=MODEL, input=[text, "other"]).embeddings[0] for text in texts]
    for vector, expected in zip(served, one_at_a_time):
        assert _cos(vector, expected) > 0.9999
