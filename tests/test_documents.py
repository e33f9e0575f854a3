"""Documents: PDF, HTML, Markdown and DOCX in a bytea column, by path and by URL, parsed into
cited chunks that search finds; what a document may not do (be read from outside the allowed
directory, be corrupt, be too large) is recorded and parked. As a non-superuser table owner in a
database that is not pg_cron's (`app_role` in the `db` fixture: no background processing, CALL
drains)."""

from __future__ import annotations

import http.server
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path

import docx
import psycopg
import pytest

from pgweave_testing.helpers import execute_vectorizer, served_inputs

PAGES = [
    "Chapter one. The lighthouse keeper climbs the stairs every evening to light the lamp "
    "that guides the fishing boats home through the fog.",
    "Chapter two. Sourdough bread needs a starter of flour and water, fed daily, and a long "
    "slow rise before it is baked in a hot oven.",
    "Chapter three. Glaciers carve valleys as they move, grinding rock into fine flour that "
    "turns mountain lakes a milky turquoise.",
]
HTML = b"""<!doctype html><html><head><title>Bicycles</title><style>p {color: red}</style>
<script>var tracking = 1;</script></head><body>
<h1>Bicycle maintenance</h1><p>Oil the <b>chain</b> every few hundred kilometres.</p>
<h2>Brakes</h2><p>Replace worn brake pads before they reach the metal backing plate.</p>
</body></html>"""
MARKDOWN = b"""# Beekeeping

Bees need a dry hive and a water source nearby.

## Harvest

Honey is extracted from the frames with a centrifuge in late summer.
"""


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF, one page per string (Helvetica, lines of at most 70 characters)."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    kids = []
    for text in pages:
        lines, line = [], ""
        for word in text.split():
            if len(line) + len(word) > 70:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
        stream = "BT /F1 11 Tf 14 TL 72 720 Td " + " T* ".join(f"({escape(l)}) Tj" for l in lines) + " ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_docx() -> bytes:
    """A Word document with a heading, a paragraph and a table (python-docx)."""
    document = docx.Document()
    document.add_heading("Volcano safety", level=1)
    document.add_paragraph("Carry a gas mask near the crater; sulphur dioxide is heavier than air.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Alert level", "Orange"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture
def folder(db):
    """A directory the server's OS user can read, allowed by the superuser as a document source."""
    path = Path(tempfile.mkdtemp(prefix="pgweave-docs-"))
    path.chmod(0o755)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO ai._document_source (location) VALUES (%s)", (str(path),))
    yield path
    shutil.rmtree(path)


def write(folder: Path, name: str, data: bytes) -> Path:
    """A file in the folder, readable by the server's OS user."""
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def create(conn, table: str, loading: str, **extra: str) -> None:
    """A document vectorizer on <table>, small chunks, no background processing."""
    more = "".join(f", {k} => {v}" for k, v in extra.items())
    conn.execute(f"""SELECT ai.create_vectorizer('{table}'::regclass, loading => {loading},
        embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
        chunking => ai.chunking_recursive_character_text_splitter(300, 0){more})""")


def chunks(conn, table: str) -> dict[int, list[str]]:
    """The stored chunks of each row, in order."""
    out: dict[int, list[str]] = {}
    for key, chunk in conn.execute(f"SELECT id, chunk FROM {table}_embedding_store ORDER BY id, chunk_seq"):
        out.setdefault(key, []).append(chunk)
    return out


def best(conn, table: str, query: str) -> tuple[int, str]:
    """The id and chunk semantic search ranks first."""
    return conn.execute(f"SELECT (s.hit).id, (s.hit).chunk FROM ai.semantic_search(NULL::{table}_embedding, %s, k => 1) s",
                        (query,)).fetchone()


def failures(conn, table: str) -> tuple[list[int], list[str]]:
    """The parked ids (the failed queue) and the recorded error messages of a vectorizer."""
    vid = conn.execute("SELECT id FROM ai.vectorizer WHERE name = %s", (f"{table}_embedding",)).fetchone()[0]
    parked = [r[0] for r in conn.execute(f"SELECT id FROM ai._vectorizer_q_failed_{vid} ORDER BY id")]
    errors = [r[0] for r in conn.execute("SELECT message FROM ai.vectorizer_errors WHERE vectorizer_id = %s", (vid,))]
    return parked, errors


def test_pdf_html_markdown_and_docx_in_a_bytea_column_become_cited_searchable_chunks(app_role):
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE files (id int PRIMARY KEY, name text, body bytea)")
        for row in [(1, "book.pdf", make_pdf(PAGES)), (2, "bikes.html", HTML), (3, "bees.md", MARKDOWN),
                    (4, "volcano.docx", make_docx()), (5, "note.txt", b"Plain notes about tea.")]:
            conn.execute("INSERT INTO files VALUES (%s, %s, %s)", row)
        create(conn, "files", "ai.loading_column('body')")
    execute_vectorizer(app_role, "files_embedding")
    with psycopg.connect(app_role) as conn:
        stored = chunks(conn, "files")
        assert [c.split("\n")[0] for c in stored[1]] == ["(page 1)", "(page 2)", "(page 3)"]
        assert "Sourdough bread needs a starter" in stored[1][1]
        assert stored[2] == ["(section: Bicycle maintenance)\nBicycle maintenance\nOil the chain every few hundred kilometres.",
                             "(section: Bicycle maintenance / Brakes)\nBrakes\nReplace worn brake pads before they reach the metal backing plate."]
        assert not any("tracking" in c or "color" in c for c in stored[2])  # scripts and styles are not text
        assert stored[3][1].startswith("(section: Beekeeping / Harvest)\n## Harvest")
        assert "sulphur dioxide" in stored[4][0] and "Alert level | Orange" in stored[4][0]
        assert stored[5] == ["Plain notes about tea."]
        assert not any(c.startswith("\\x") for cs in stored.values() for c in cs)  # never hex
        key, chunk = best(conn, "files", "how do I bake bread with a starter?")
        assert (key, chunk.split("\n")[0]) == (1, "(page 2)")
        assert best(conn, "files", "what should I do about brake pads?")[0] == 2
        assert best(conn, "files", "dangerous gas at a volcano crater")[0] == 4


def test_changing_one_page_of_a_pdf_reembeds_only_that_page(app_role, model_server_url):
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE files (id int PRIMARY KEY, body bytea)")
        conn.execute("INSERT INTO files VALUES (1, %s)", (make_pdf(PAGES),))
        create(conn, "files", "ai.loading_column('body')")
    execute_vectorizer(app_role, "files_embedding")
    before = served_inputs(model_server_url)
    edited = [PAGES[0], PAGES[1].replace("a hot oven", "a cast iron pot"), PAGES[2]]
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("UPDATE files SET body = %s WHERE id = 1", (make_pdf(edited),))
    execute_vectorizer(app_role, "files_embedding")
    assert served_inputs(model_server_url) - before == 1  # page 2's one chunk, nothing else
    with psycopg.connect(app_role) as conn:
        assert "cast iron pot" in chunks(conn, "files")[1][1]


class _Server(http.server.ThreadingHTTPServer):
    """A local web server for the folder; the first request for a path named flaky-* fails with 503."""

    def __init__(self, folder: Path):
        self.failed: set[str] = set()
        folder_ = folder

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder_), **kwargs)

            def do_GET(self):
                if "flaky-" in self.path and self.path not in self.server.failed:
                    self.server.failed.add(self.path)
                    self.send_error(503, "try again")
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def web(folder, db):
    """The folder served over HTTP on a free port, the server's URL allowed by the superuser."""
    server = _Server(folder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO ai._document_source (location) VALUES (%s)", (url,))
    yield url
    server.shutdown()


def test_documents_by_path_file_uri_and_url_are_loaded_and_transient_failures_retried(app_role, folder, web,
                                                                                      model_server_url):
    write(folder, "book.pdf", make_pdf(PAGES))
    write(folder, "bees.md", MARKDOWN)
    write(folder, "flaky-bikes.html", HTML)
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, uri text)")
        conn.execute("INSERT INTO docs VALUES (1, %s), (2, %s), (3, %s)",
                     (str(folder / "book.pdf"), f"file://{folder}/bees.md", web + "flaky-bikes.html"))
        create(conn, "docs", "ai.loading_uri('uri')")
    execute_vectorizer(app_role, "docs_embedding")
    with psycopg.connect(app_role) as conn:
        assert failures(conn, "docs") == ([], [])
        stored = chunks(conn, "docs")
        assert len(stored[1]) == 3 and stored[1][2].startswith("(page 3)\nChapter three")
        assert stored[2][0] == "(section: Beekeeping)\n# Beekeeping\n\nBees need a dry hive and a water source nearby."
        assert stored[3][1].endswith("metal backing plate.")  # served after one 503
        assert best(conn, "docs", "glaciers grinding rock")[0] == 1
    # The file changes in place; touching its row (even SET uri = uri) re-reads it, and only the
    # changed page is embedded again.
    write(folder, "book.pdf", make_pdf([PAGES[0], PAGES[1], PAGES[2].replace("turquoise", "emerald green")]))
    before = served_inputs(model_server_url)
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("UPDATE docs SET uri = uri WHERE id = 1")
    execute_vectorizer(app_role, "docs_embedding")
    assert served_inputs(model_server_url) - before == 1
    with psycopg.connect(app_role) as conn:
        assert chunks(conn, "docs")[1][2].endswith("emerald green.")


def test_owner_cannot_read_files_or_urls_outside_what_the_superuser_allowed(app_role, folder, web):
    secret_dir = Path(tempfile.mkdtemp(prefix="pgweave-secret-"))
    secret_dir.chmod(0o755)
    write(secret_dir, "salary.txt", b"the director earns a great deal")
    os.symlink("/etc/passwd", folder / "passwd-link")
    os.symlink(secret_dir, folder / "dir-link")
    try:
        outside = ["/etc/passwd", "file:///etc/passwd", f"{folder}/../{secret_dir.name}/salary.txt",
                   str(folder / "passwd-link"), str(folder / "dir-link" / "salary.txt"),
                   "http://localhost:1/secret", "s3://bucket/key.pdf", "relative/path.txt"]
        with psycopg.connect(app_role, autocommit=True) as conn:
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, uri text)")
            for i, uri in enumerate(outside, 1):
                conn.execute("INSERT INTO docs VALUES (%s, %s)", (i, uri))
            create(conn, "docs", "ai.loading_uri('uri')", processing="ai.processing_default(max_attempts => 1)")
            # The allowlist and the limits are the superuser's: an owner can neither add nor raise.
            for statement in ("INSERT INTO ai._document_source (location) VALUES ('/')",
                              "UPDATE ai._document_limit SET value = 1e12"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        execute_vectorizer(app_role, "docs_embedding")
        with psycopg.connect(app_role) as conn:
            assert chunks(conn, "docs") == {}
            parked, errors = failures(conn, "docs")
            assert parked == list(range(1, len(outside) + 1))
            assert sum("not below a directory a superuser allowed" in e for e in errors) == 5
            assert any("not below a URL prefix a superuser allowed" in e for e in errors)
            assert any("s3:// URIs are not supported" in e for e in errors)
            assert not any("root:" in e or "great deal" in e for e in errors), errors
    finally:
        shutil.rmtree(secret_dir)


def test_corrupt_oversized_and_missing_documents_are_recorded_and_parked_the_rest_embedded(app_role, db, folder):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE ai._document_limit SET value = 4000 WHERE name = 'max_document_bytes'")
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE files (id int PRIMARY KEY, body bytea)")
        conn.execute("INSERT INTO files VALUES (1, %s), (2, %s), (3, %s), (4, %s)",
                     (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ngarbage", make_pdf(PAGES * 6),
                      MARKDOWN, b"\x89PNG\r\n\x1a\n\x00\x00binary"))
        create(conn, "files", "ai.loading_column('body')")
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, uri text)")
        conn.execute("INSERT INTO docs VALUES (1, %s)", (str(folder / "not-yet.pdf"),))
        create(conn, "docs", "ai.loading_uri('uri')")
    execute_vectorizer(app_role, "files_embedding")
    execute_vectorizer(app_role, "docs_embedding")
    with psycopg.connect(app_role) as conn:
        assert list(chunks(conn, "files")) == [3]
        parked, errors = failures(conn, "files")
        assert parked == [1, 2, 4]  # parked at once: no retry can fix them
        assert any("cannot parse the PDF document" in e for e in errors)
        assert any("document in column 'body' is" in e and "more than the 4000 bytes a document may have" in e for e in errors)
        assert any("binary content of no known kind" in e for e in errors)
        # A missing file may still arrive: recorded, and retried with back-off (not parked yet).
        parked, errors = failures(conn, "docs")
        assert parked == [] and any("does not exist" in e for e in errors)
        vid = conn.execute("SELECT id FROM ai.vectorizer WHERE name = 'docs_embedding'").fetchone()[0]
        assert conn.execute(f"SELECT _attempts FROM ai._vectorizer_q_{vid}").fetchall() == [(1,)]


def test_bytea_without_a_parser_is_refused_at_create_time_and_pgai_parser_names_work(app_role):
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE files (id int PRIMARY KEY, body bytea, path text)")
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            create(conn, "files", "ai.loading_column('body')", parsing="ai.parsing_none()")
        assert "would embed its bytes as hex" in str(refused.value)
        assert "ai.parsing_auto()" in refused.value.diag.message_hint
        with pytest.raises(psycopg.errors.DatatypeMismatch) as refused:
            create(conn, "files", "ai.loading_uri('body')")
        assert "ai.loading_column('body')" in refused.value.diag.message_hint
        notices = []
        conn.add_notice_handler(lambda n: notices.append(n.message_primary))
        create(conn, "files", "ai.loading_column('body')", parsing="ai.parsing_pymupdf()")
        assert conn.execute("SELECT config->'parsing' FROM ai.vectorizer").fetchone()[0] == {"implementation": "auto"}
        assert any("is ai.parsing_auto() here" in n for n in notices)


def test_a_parse_that_outlasts_its_deadline_is_stopped_recorded_and_parked(app_role, db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE ai._document_limit SET value = 0.001 WHERE name = 'parse_timeout_seconds'")
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE files (id int PRIMARY KEY, body bytea)")
        conn.execute("INSERT INTO files VALUES (1, %s)", (make_pdf(PAGES),))
        create(conn, "files", "ai.loading_column('body')")
    execute_vectorizer(app_role, "files_embedding")
    with psycopg.connect(app_role) as conn:
        parked, errors = failures(conn, "files")
        assert parked == [1] and chunks(conn, "files") == {}
        assert any("parsing the PDF document took longer than 0.001 s" in e for e in errors), errors
