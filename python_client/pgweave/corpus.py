"""A real corpus that needs no download: the PostgreSQL documentation from Debian's
`postgresql-doc-15` package, as plain-text pages (for `make demo` and the benchmarks)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

DOCS_DIR = Path(os.environ.get("PGWEAVE_DOCS_DIR", "/usr/share/doc/postgresql-doc-15/html"))


@dataclass(frozen=True)
class Page:
    """One documentation page."""

    slug: str   # file name without .html, e.g. sql-createindex
    title: str
    body: str


def _page(path: Path) -> Page:
    """Parse one HTML page into title and text, without the navigation header and footer."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    for nav in soup.select(".navheader, .navfooter, script, style"):
        nav.decompose()
    title = " ".join((soup.title.get_text() if soup.title else path.stem).split())
    for block in soup.find_all(["p", "div", "pre", "li", "dt", "dd", "tr", "h1", "h2", "h3", "h4", "table"]):
        block.append("\n")
    text = soup.get_text()
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip()
    return Page(path.stem, title, text)


def postgres_docs(limit: int | None = None, prefix: str | None = "sql-") -> list[Page]:
    """The documentation pages (the SQL command reference by default), in file-name order."""
    if not DOCS_DIR.is_dir():
        raise FileNotFoundError(f"{DOCS_DIR} not found: install Debian's postgresql-doc-15 "
                                "(`make setup` does) or set PGWEAVE_DOCS_DIR")
    paths = sorted(p for p in DOCS_DIR.glob("*.html") if prefix is None or p.name.startswith(prefix))
    pages = (_page(p) for p in paths)
    out = [p for p in pages if len(p.body) > 200]
    return out[:limit] if limit else out
