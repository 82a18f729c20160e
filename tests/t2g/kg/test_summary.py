"""The markdown summary for the Prefect artifact: right counts, and names that cannot bend its tables."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from t2g.kg.summary import graph_summary, md_cell
from tests.support.graph_sample import HOSTILE, sample_graph


def _section(md: str, title: str) -> list[list[str]]:
    """The rows of the table under a `### title` heading, cells split on unescaped pipes."""
    lines = md.split("### " + title, 1)[1].split("###", 1)[0].strip().splitlines()
    rows = []
    for line in lines[2:]:
        cells, cell, i = [], "", 1
        while i < len(line) - 1:
            if line[i] == "\\":
                cell += line[i : i + 2]
                i += 2
                continue
            if line[i] == "|":
                cells.append(cell.strip())
                cell = ""
            else:
                cell += line[i]
            i += 1
        rows.append(cells + [cell.strip()] if cell.strip() else cells)
    return rows


def test_counts_by_type_rule_and_reason():
    g = sample_graph()
    md = graph_summary(g["nodes"], g["edges"], g["merges"], Counter(ungrounded=4, bad_type=1, empty=0))
    assert "**5** entities, **5** relations, **2** merges, **5** mentions dropped." in md
    assert _section(md, "Entities by type") == [
        ["person", "2", "6"],
        ["location", "1", "2"],
        ["organization", "1", "3"],
        ["work of art", "1", "1"],
    ]
    assert ["member\\_of", "1", "3"] in _section(md, "Relations by type")
    assert _section(md, "Merges by rule") == [["acronym", "1"], ["surname\\_after\\_full\\_name", "1"]]
    assert _section(md, "Dropped mentions by reason") == [["ungrounded", "4"], ["bad\\_type", "1"]]
    top = _section(md, "Most connected entities (top 10)")
    assert top[0] == ["Angela Merkel", "person", "3", "5"] and len(top) == 5


def test_a_hostile_name_stays_in_its_cell():
    g = sample_graph()
    md = graph_summary(g["nodes"], g["edges"], g["merges"], {})
    assert HOSTILE not in md and "<script>" not in md
    assert all(len(row) == 4 for row in _section(md, "Most connected entities (top 10)"))
    assert "_none_" in md.split("### Dropped mentions by reason")[1]


def test_an_empty_graph_summarises():
    g = {k: t.slice(0, 0) for k, t in sample_graph().items()}
    md = graph_summary(g["nodes"], g["edges"], g["merges"], {})
    assert "**0** entities, **0** relations" in md and md.count("_none_") == 5


@given(st.text())
def test_md_cell_is_one_line_without_a_bare_pipe(value):
    cell = md_cell(value)
    assert "\n" not in cell and "\r" not in cell and "<" not in cell
    assert all(cell[i - 1] == "\\" for i, c in enumerate(cell) if c == "|")
