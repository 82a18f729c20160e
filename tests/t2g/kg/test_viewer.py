"""The graph viewer: one self-contained HTML file, hostile names kept inside their JSON, big graphs capped,
and (where Chromium is installed) the page drawn in a headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g.kg.tables import NODES
from t2g.kg.viewer import embed_json, render_html
from tests.support.graph_sample import HOSTILE, demo_graph, sample_graph

_DATA = re.compile(r'<script type="application/json" id="graph-data">(.*?)</script>', re.S)


def _page(g: dict, **kw) -> str:
    return render_html(g["nodes"], g["edges"], g["mentions"], g["evidence"], **kw)


def _embedded(page: str) -> dict:
    (text,) = _DATA.findall(page)
    return json.loads(text)


def test_the_page_is_self_contained():
    page = _page(sample_graph())
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"https?://", page)  # no CDN, no font, no analytics: nothing to fetch
    assert "<link" not in page and "@import" not in page and "fetch(" not in page
    assert [m.group(0) for m in re.finditer(r"<script[^>]*>", page)] == [
        '<script type="application/json" id="graph-data">',
        "<script>",
    ]


def test_a_hostile_name_stays_inside_the_json():
    page = _page(sample_graph())
    assert HOSTILE not in page and "alert(1)</script>" not in page
    assert page.count("</script>") == 2  # the data element's and the code's, nothing from a name
    data = _embedded(page)
    assert any(n["name"] == HOSTILE for n in data["nodes"])
    assert any(item[3].startswith(HOSTILE) for s in data["evidence"].values() for item in s["items"])


_HOSTILE_TEXT = st.lists(
    st.sampled_from(list("<>&/!-\"'\\ sScriptSCRIPT\u2028\u2029") + ["</script", "<!--", "]]>", "</SCRIPT >"]),
    max_size=8,
).map("".join)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _HOSTILE_TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_HOSTILE_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_embedded_json_never_closes_the_element_and_parses_back(value):
    text = embed_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


def test_provenance_and_colours_travel_with_the_page():
    g = sample_graph()
    data = _embedded(_page(g))
    merkel = g["nodes"]["node_id"][0].as_py()
    assert [m[3] for m in data["mentions"][merkel]["items"]] == ["Angela Merkel", "Merkel"]
    first_edge = g["edges"]["edge_id"][0].as_py()
    assert data["evidence"][first_edge]["items"][0][3] == "Angela Merkel is a member of the CDU."
    assert set(data["types"]) == set(g["nodes"]["type"].to_pylist()) and len(set(data["types"].values())) == 4
    assert data["note"] == ""


def test_a_big_graph_is_capped_to_its_most_connected_nodes():
    g = demo_graph()
    data = _embedded(_page(g, max_nodes=10, max_provenance=1))
    degree = {}
    for e in g["edges"].to_pylist():
        degree[e["head"]] = degree.get(e["head"], 0) + 1
        degree[e["tail"]] = degree.get(e["tail"], 0) + 1
    kept = {n["id"] for n in data["nodes"]}
    assert len(kept) == 10
    assert min(degree.get(i, 0) for i in kept) >= max(degree.get(i, 0) for i in degree if i not in kept)
    assert all(e["source"] in kept and e["target"] in kept for e in data["edges"])
    assert data["note"].startswith(f"Showing the 10 most connected of {g['nodes'].num_rows} entities")
    assert all(len(s["items"]) <= 1 for s in data["mentions"].values())


def test_an_empty_graph_still_renders():
    g = sample_graph()
    empty = {k: t.slice(0, 0) for k, t in g.items()}
    assert _embedded(_page(empty))["nodes"] == []
    lone = dict(empty, nodes=pa.Table.from_pylist(g["nodes"].to_pylist()[:1], schema=NODES))
    assert len(_embedded(_page(lone))["nodes"]) == 1


# --- in a real browser: skipped where Chromium is not installed (CI without it) ---------------

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dom(path: Path, fragment: str = "") -> str:
    if not _CHROMIUM:
        import pytest

        pytest.skip("Chromium is not installed (apt-get install chromium): the in-browser checks need it")
    url = path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    out = subprocess.run(
        [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag))


def test_chromium_draws_every_node_and_a_searched_neighbourhood(tmp_path):
    g = demo_graph()
    path = tmp_path / "graph.html"
    path.write_text(_page(g), encoding="utf-8")
    body = _body(_dom(path))
    assert body["layout"] == "done"
    assert (int(body["rendered-nodes"]), int(body["rendered-edges"])) == (g["nodes"].num_rows, g["edges"].num_rows)
    small = sample_graph()
    path.write_text(_page(small), encoding="utf-8")
    body = _body(_dom(path, "search=" + quote("angela merkel")))
    assert (body["rendered-nodes"], body["rendered-edges"]) == ("3", "3")  # Merkel, the CDU, Berlin
    assert body["selected"] == small["nodes"]["node_id"][0].as_py()


def test_chromium_shows_provenance_and_the_hostile_name_as_text(tmp_path):
    g = sample_graph()
    path = tmp_path / "graph.html"
    path.write_text(_page(g), encoding="utf-8")
    dom = _dom(path, "select=" + quote(HOSTILE))
    assert _body(dom)["layout"] == "done"  # the page's script ran to its end: nothing broke out of the JSON
    assert len(re.findall(r"<script", dom)) == 2
    details = dom[dom.index('id="details"') :]
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; wrote Faust." in details  # as text, escaped
    dom = _dom(path, "select=" + quote("Angela Merkel"))
    assert "Angela Merkel is a member of the CDU." in dom and "doc0 [0:40]" in dom
