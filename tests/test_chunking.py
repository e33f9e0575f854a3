"""The in-database splitters give exactly LangChain's chunks (they run without LangChain)."""

from __future__ import annotations

import functools
import importlib.util
import random

import pytest
from langchain_text_splitters import CharacterTextSplitter as LCCharacter
from langchain_text_splitters import RecursiveCharacterTextSplitter as LCRecursive

from pgweave.corpus import postgres_docs
from pgweave_testing.helpers import REPO

_spec = importlib.util.spec_from_file_location("chunking", REPO / "plpython/pgweave_db/chunking.py")
chunking = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunking)

WORDS = ("postgres vector index query planner embedding chunk row trigger queue worker model "
         "search hybrid rank fusion latency throughput replica backup vacuum").split()


def _document(seed: int) -> str:
    """A document with paragraphs, lines and sentences of varying length."""
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(rng.randint(1, 8)):
        lines = []
        for _ in range(rng.randint(1, 4)):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))).capitalize()
                         + rng.choice([".", "?", "!"]) for _ in range(rng.randint(1, 5))]
            lines.append(" ".join(sentences))
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("size,overlap", [(800, 400), (200, 50), (100, 0), (50, 10)])
def test_recursive_splitter_matches_langchain(size, overlap):
    ours = chunking.RecursiveCharacterTextSplitter(size, overlap)
    theirs = LCRecursive(chunk_size=size, chunk_overlap=overlap, separators=chunking.DEFAULT_SEPARATORS)
    for seed in range(40):
        text = _document(seed)
        assert ours.split_text(text) == theirs.split_text(text), f"seed {seed}"


@pytest.mark.parametrize("size,overlap", [(800, 400), (120, 20)])
def test_character_splitter_matches_langchain(size, overlap):
    ours = chunking.CharacterTextSplitter(size, overlap, "\n\n")
    theirs = LCCharacter(chunk_size=size, chunk_overlap=overlap, separator="\n\n")
    for seed in range(40):
        text = _document(seed)
        assert ours.split_text(text) == theirs.split_text(text), f"seed {seed}"


@functools.cache
def _sql_reference() -> list:
    """The manual's SQL reference pages (parsed once for both sizes)."""
    return postgres_docs(prefix="sql-")


@pytest.mark.parametrize("size,overlap", [(800, 100), (300, 60)])
def test_recursive_splitter_matches_langchain_on_the_postgresql_manual(size, overlap):
    # Real pages: code blocks, tables, long lines without a separator, runs of blank lines.
    pages = _sql_reference()
    assert len(pages) > 100
    ours = chunking.RecursiveCharacterTextSplitter(size, overlap)
    theirs = LCRecursive(chunk_size=size, chunk_overlap=overlap, separators=chunking.DEFAULT_SEPARATORS)
    for page in pages:
        assert ours.split_text(page.body) == theirs.split_text(page.body), page.slug


def test_the_overlap_counts_the_separators_as_langchain_does():
    # A one-character separator between short words: every chunk boundary is an overlap
    # boundary, where the separators' length decides which words are kept.
    for size, overlap in [(20, 5), (31, 10), (47, 20), (64, 0), (100, 33)]:
        ours = chunking.CharacterTextSplitter(size, overlap, " ")
        theirs = LCCharacter(chunk_size=size, chunk_overlap=overlap, separator=" ")
        for seed in range(20):
            text = _document(seed).replace("\n", " ")
            assert ours.split_text(text) == theirs.split_text(text), (size, overlap, seed)


def test_regex_separators_match_langchain():
    ours = chunking.RecursiveCharacterTextSplitter(120, 20, [r"\n\s*\n", r"\.\s", " ", ""], True)
    theirs = LCRecursive(chunk_size=120, chunk_overlap=20, separators=[r"\n\s*\n", r"\.\s", " ", ""],
                         is_separator_regex=True)
    for seed in range(20):
        text = _document(seed)
        assert ours.split_text(text) == theirs.split_text(text)


def test_blank_and_null_text_have_no_chunks():
    config = {"implementation": "recursive_character_text_splitter"}
    assert chunking.chunk(config, None) == []
    assert chunking.chunk(config, "  \n ") == []
    assert chunking.chunk({"implementation": "none"}, "whole text") == ["whole text"]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="chunk_overlap"):
        chunking.RecursiveCharacterTextSplitter(100, 200)
