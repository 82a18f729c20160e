"""The user docs stay true: a short README whose results table is generated, links that
resolve inside the repository, nothing outside it, and a quickstart recipe that loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt  # ships with rich, which typer requires

from bench import report
from t2g.config import load_recipe

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
QUICKSTART = "<!-- quickstart-recipe -->"


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


def test_results_section_is_generated_from_results_json():
    results = json.loads((REPO / "bench" / "results.json").read_text(encoding="utf-8"))
    assert report.section(README.read_text(encoding="utf-8")) == report.render(results), (
        "README's results section differs from bench/results.json: run `python -m bench.report` (never edit it by hand)"
    )


@given(st.text().filter(lambda s: report.END not in s and report.START not in s))
def test_splice_then_section_gives_back_what_was_rendered(rendered):
    readme = f"# t\n\nintro\n{report.START}\nold\n{report.END}\n\nrest\n"
    spliced = report.splice(readme, rendered)
    assert report.section(spliced) == rendered
    assert spliced.startswith("# t\n\nintro\n") and spliced.endswith(f"{report.END}\n\nrest\n")


def test_a_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="results:start"):
        report.section("# no markers here\n")


def test_docs_exist():
    assert {p.name for p in DOCS} >= {"design.md", "store.md", "service.md", "scaling.md", "reliability.md", "log.md"}


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_no_page_points_outside_the_repository_to_shared(page):
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{_id(page)} mentions ../shared, which users of the repository do not have"


def _links(page: Path) -> list[str]:
    """Every link target of a Markdown page (code blocks and inline code excluded)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(page.read_text(encoding="utf-8"))
    out = []
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open":
                out.append(str(child.attrs["href"]))
    return out


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_relative_links_point_at_files_in_the_repository(page):
    broken = []
    for href in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href) or href.startswith("#"):
            continue  # a URL or an anchor on the same page
        target = (page.parent / href.split("#", 1)[0]).resolve()
        if not target.exists() or not target.is_relative_to(REPO):
            broken.append(href)
    assert not broken, f"{_id(page)} links to what the repository does not hold: {broken}"


def test_pages_have_links_to_check():
    # Guards the link test itself: a parser that found nothing would pass vacuously.
    assert "docs/design.md" in _links(README) and "../RELIABILITY.md" in _links(REPO / "docs" / "reliability.md")


def test_quickstart_recipe_in_readme_loads(tmp_path):
    text = README.read_text(encoding="utf-8")
    assert QUICKSTART in text, f"README lost the {QUICKSTART} marker before the quickstart's yaml block"
    block = re.match(r"\s*```yaml\n(.*?)\n```", text.split(QUICKSTART, 1)[1], re.S)
    assert block, f"no ```yaml block right after {QUICKSTART}"
    path = tmp_path / "my-texts.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    recipe = load_recipe(path)
    # What the quickstart promises the user: their texts, a teacher server, a hub student, S3.
    assert recipe.extract.backend == "openai" and recipe.extract.base_url
    assert recipe.store.startswith("s3://")
    assert any(s.kind == "jsonl" for s in recipe.collect.sources)
