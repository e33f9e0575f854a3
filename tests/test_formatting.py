"""The formatting template renders once a row and puts each chunk in place: exactly what
rendering it whole for each chunk gives, whatever the template and the row hold."""

from __future__ import annotations

import importlib.util
import string

import pytest

from pgweave_testing.helpers import REPO

_spec = importlib.util.spec_from_file_location("formatting", REPO / "plpython/pgweave_db/formatting.py")
formatting = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(formatting)

ROW = {"title": "VACUUM $chunk", "author": None, "n": 7, "body": "${chunk} $$ $title"}
CHUNKS = ["plain", "", "a $title and $chunk and ${author} and $$", "\\1 \\g<0> %s {0}"]


@pytest.mark.parametrize("template", [
    "$chunk", "$title: $chunk", "${title}|${chunk}|${author}|$n", "$chunk and again $chunk",
    "no chunk here: $title", "$$chunk is not a chunk, $chunk is", "$unknown $chunk $", "",
    "$body -- $chunk",
])
def test_a_row_renders_once_as_it_would_for_each_chunk(template):
    config = {"template": template}
    values = {k: "" if v is None else str(v) for k, v in ROW.items()}
    render = formatting.formatter(config, ROW)
    for chunk in CHUNKS:
        whole = string.Template(template).safe_substitute({**values, "chunk": chunk})
        assert render(chunk) == whole == formatting.format_chunk(config, chunk, ROW)


def test_no_config_is_the_chunk_itself():
    assert formatting.formatter(None, ROW)("a chunk") == "a chunk"
