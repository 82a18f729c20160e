"""`t2g extract` refuses what it cannot extract from before any model loads: the model
path in these tests does not exist, so a check that came after the load would fail
with the model's error instead of its own."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from t2g.cli import app

# Every character str.strip() removes: the texts these make hold nothing to extract.
WHITESPACE = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()]
blank = st.text(alphabet=st.sampled_from(WHITESPACE), max_size=8)


def t2g_extract(tmp_path, *args: str):
    model = tmp_path / "no-such-model"
    return CliRunner().invoke(app, ["extract", "--model", str(model), *args])


def refused(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "no-such-model" not in result.output and "does not exist" not in result.output  # the model was never touched
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


def test_a_text_that_passes_the_checks_reaches_the_model(tmp_path):
    # The control: with nothing to refuse, the missing model is what fails.
    result = t2g_extract(tmp_path, "Marin works for Zentek.", "--entity-types", "person")
    assert result.exit_code == 2 and "does not exist" in result.output, result.output


@settings(max_examples=50, deadline=None)
@given(text=blank)
def test_an_empty_or_blank_text_is_refused(tmp_path_factory, text):
    tmp_path = tmp_path_factory.mktemp("blank")
    refused(t2g_extract(tmp_path, text, "--entity-types", "person"), "TEXT is empty")


@pytest.mark.parametrize("types", [",", "", " , ,, ", "\t"])
def test_an_empty_entity_type_list_is_refused(tmp_path, types):
    refused(
        t2g_extract(tmp_path, "Marin works for Zentek.", "--entity-types", types), "--entity-types", "names no type"
    )


@settings(max_examples=50, deadline=None)
@given(text=blank, before=st.integers(0, 3), blank_lines=st.integers(0, 2))
def test_a_blank_text_in_an_input_file_is_refused_naming_its_line(tmp_path_factory, text, before, blank_lines):
    tmp_path = tmp_path_factory.mktemp("input")
    lines = [json.dumps({"id": i, "text": f"Marin works for Zentek {i}."}) for i in range(before)]
    lines += [""] * blank_lines + [json.dumps({"id": "bad", "text": text}), json.dumps({"text": "Zentek hired Talie."})]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = before + blank_lines + 1
    refused(
        t2g_extract(tmp_path, "--input", str(src), "--entity-types", "person"),
        f"--input {src} line {line}: 'text' is empty",
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "has no texts"),
        ("\n  \n\n", "has no texts"),
        ('{"text": "ok"}\n["not", "an object"]\n', "line 2: every line must be a JSON object"),
        ('{"text": "ok"}\n{"text": 3}\n', "line 2: every line must be a JSON object"),
        ('{"text": "ok"}\n\n{"text": \n', "line 3: not JSON"),
    ],
    ids=["empty", "blank-lines", "list", "number", "broken"],
)
def test_a_malformed_input_file_is_refused_naming_its_line(tmp_path, content, message):
    src = tmp_path / "in.jsonl"
    src.write_text(content, encoding="utf-8")
    refused(t2g_extract(tmp_path, "--input", str(src), "--entity-types", "person"), message)


def test_a_raw_line_separator_inside_a_text_is_not_a_line_break(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028 as is; str.splitlines would cut there.
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": "one\u2028two"}, ensure_ascii=False) + "\n" + json.dumps({"text": " "}) + "\n",
        encoding="utf-8",
    )
    refused(t2g_extract(tmp_path, "--input", str(src), "--entity-types", "person"), "line 2: 'text' is empty")
