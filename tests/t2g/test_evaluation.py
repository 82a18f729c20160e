"""`t2g eval` end to end: reading interchange files, the report, and refusing bad input."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from t2g.cli import app, main
from t2g.evaluation import InputError, evaluate, evaluate_files, format_report, read_interchange


def _ent(text: str, type_: str) -> dict[str, str]:
    return {"text": text, "type": type_}


def _rel(head: str, tail: str, type_: str) -> dict[str, str]:
    return {"head": head, "tail": tail, "type": type_}


GOLD: list[dict[str, Any]] = [
    {
        "id": "d1",
        "text": "Satya Nadella is the CEO of Microsoft.",
        "entity_types": ["person", "company"],  # extra keys are allowed and ignored
        "entities": [_ent("Satya Nadella", "person"), _ent("Microsoft", "company")],
        "relations": [_rel("Satya Nadella", "Microsoft", "CEO of")],
    },
    {
        "id": "d2",
        "text": "Tim Cook runs Apple, which is based in Cupertino.",
        "entities": [_ent("Tim Cook", "person"), _ent("Apple", "company"), _ent("Cupertino", "city")],
        "relations": [_rel("Tim Cook", "Apple", "CEO of"), _rel("Apple", "Cupertino", "located in")],
    },
    {"id": "d3", "text": "It rained all day.", "entities": [], "relations": []},
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_eval(capsys: pytest.CaptureFixture[str], gold: Path, pred: Path, *extra: str) -> tuple[int, str, str]:
    """Run the real CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--gold", str(gold), "--predictions", str(pred), *extra])
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out, out.err


def scores(report: Any) -> list[float]:
    """Every precision/recall/F1 in a report (not counts or support)."""
    if isinstance(report, dict):
        return [v for k, sub in report.items() if k not in ("support",) for v in scores(sub)]
    return [report] if isinstance(report, float) else []


# --- reports --------------------------------------------------------------------------


def test_gold_against_itself_is_perfect_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = write_jsonl(tmp_path / "gold.jsonl", GOLD)
    code, out, err = run_eval(capsys, gold, gold, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["examples"], report["missing_predictions"], report["unmatched_predictions"]) == (3, 0, 0)
    assert set(report["entities"]["per_type"]) == {"person", "company", "city"}
    assert set(report["relations"]["per_type"]) == {"ceo of", "located in"}
    assert report["entities"]["per_type"]["person"]["support"] == 2
    found = scores(report)
    assert len(found) == 2 * (3 + 1 + 3 + 1) + 3 * 3 + 2 * 3  # every score is there...
    assert all(v == 1.0 for v in found)  # ...and perfect


def rename(records: list[dict[str, Any]], rid: str, old: str, new: str, in_relations: bool) -> list[dict[str, Any]]:
    out = copy.deepcopy(records)
    rec = next(r for r in out if r["id"] == rid)
    for e in rec["entities"]:
        e["text"] = new if e["text"] == old else e["text"]
    if in_relations:
        for r in rec["relations"]:
            r["head"] = new if r["head"] == old else r["head"]
            r["tail"] = new if r["tail"] == old else r["tail"]
    return out


def test_one_renamed_entity_matches_hand_computation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Prediction = gold with "Apple" renamed to "Apple Inc." in d2. The rename is applied to
    # the relations too (a model that names an entity differently names it so everywhere),
    # so both d2 relations that mention Apple stop matching.
    pred = rename(GOLD, "d2", "Apple", "Apple Inc.", in_relations=True)
    # Spelling and duplicates that normalisation must forgive, so the arithmetic is unchanged:
    pred[0]["entities"] = [
        _ent(" satya  NADELLA", "PERSON"),
        _ent("Microsoft", "Company"),
        _ent("microsoft", "company"),
    ]
    pred[0]["relations"] = [_rel("SATYA NADELLA", "microsoft", "ceo  of")]
    code, out, err = run_eval(
        capsys, write_jsonl(tmp_path / "gold.jsonl", GOLD), write_jsonl(tmp_path / "pred.jsonl", pred), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["examples"], report["missing_predictions"], report["unmatched_predictions"]) == (3, 0, 0)

    # Entities.
    #   d1: TP 2 FP 0 FN 0 -> F1 1
    #   d2: gold {tim cook, apple, cupertino}, pred {tim cook, apple inc., cupertino}
    #       TP 2 FP 1 FN 1 -> F1 2*2/(2*2+1+1) = 4/6 = 2/3
    #   d3: both empty     -> F1 1
    #   micro: TP 4 FP 1 FN 1 -> P 4/5, R 4/5, F1 8/10 = 0.8
    #   mean F1: (1 + 2/3 + 1)/3 = 8/9
    #   relaxed: the rename changes the text, so the same numbers.
    e = report["entities"]
    assert e["micro"] == pytest.approx({"precision": 0.8, "recall": 0.8, "f1": 0.8})
    assert e["mean_f1"] == pytest.approx(8 / 9)
    assert e["relaxed"]["micro"] == pytest.approx({"precision": 0.8, "recall": 0.8, "f1": 0.8})
    assert e["relaxed"]["mean_f1"] == pytest.approx(8 / 9)
    #   company: gold {microsoft, apple}, pred {microsoft, apple inc.}
    #       TP 1 FP 1 FN 1 -> P 1/2, R 1/2, F1 2/4 = 1/2, support 2
    #   person and city are untouched.
    assert e["per_type"]["company"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert e["per_type"]["person"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert e["per_type"]["city"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}

    # Relations.
    #   d1: TP 1 FP 0 FN 0 -> F1 1
    #   d2: gold {(tim cook, apple, ceo of), (apple, cupertino, located in)}
    #       pred {(tim cook, apple inc., ceo of), (apple inc., cupertino, located in)}
    #       TP 0 FP 2 FN 2 -> F1 0
    #   d3: both empty     -> F1 1
    #   micro: TP 1 FP 2 FN 2 -> P 1/3, R 1/3, F1 2/(2+2+2) = 1/3
    #   mean F1: (1 + 0 + 1)/3 = 2/3; relaxed (head, tail only): the same.
    r = report["relations"]
    third = {"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3}
    assert r["micro"] == pytest.approx(third)
    assert r["mean_f1"] == pytest.approx(2 / 3)
    assert r["relaxed"]["micro"] == pytest.approx(third)
    assert r["relaxed"]["mean_f1"] == pytest.approx(2 / 3)
    #   ceo of:     TP 1 (d1) FP 1 FN 1 -> 1/2 each, support 2
    #   located in: TP 0      FP 1 FN 1 -> 0 each,   support 1
    assert r["per_type"]["ceo of"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r["per_type"]["located in"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_rename_not_applied_to_relations_leaves_relations_perfect(tmp_path: Path) -> None:
    # The other choice: only the entity is renamed, the relations still say "Apple".
    # Relations are matched by their own head/tail text, so they all still match
    # (and entity numbers are as in the test above).
    pred = rename(GOLD, "d2", "Apple", "Apple Inc.", in_relations=False)
    report = evaluate_files(write_jsonl(tmp_path / "g.jsonl", GOLD), write_jsonl(tmp_path / "p.jsonl", pred))
    assert report["entities"]["micro"]["f1"] == pytest.approx(0.8)
    assert all(v == 1.0 for v in scores(report["relations"]))


def test_missing_prediction_is_scored_empty_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # d2 has no prediction; "zzz" is not a gold id.
    pred = [GOLD[0], GOLD[2], {"id": "zzz", "entities": [_ent("x", "person")], "relations": []}]
    code, out, err = run_eval(
        capsys, write_jsonl(tmp_path / "gold.jsonl", GOLD), write_jsonl(tmp_path / "pred.jsonl", pred), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["examples"], report["missing_predictions"], report["unmatched_predictions"]) == (3, 1, 1)
    # Entities: d1 TP 2; d2 scored against an empty graph: TP 0 FP 0 FN 3 (F1 0); d3 empty/empty.
    #   micro: TP 2 FP 0 FN 3 -> P 1, R 2/5, F1 4/(4+0+3) = 4/7; mean (1 + 0 + 1)/3 = 2/3
    e = report["entities"]
    assert e["micro"] == pytest.approx({"precision": 1.0, "recall": 0.4, "f1": 4 / 7})
    assert e["mean_f1"] == pytest.approx(2 / 3)
    # Relations: d1 TP 1; d2 FN 2 -> micro P 1, R 1/3, F1 2/(2+2) = 1/2
    assert report["relations"]["micro"] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5})
    # The unmatched prediction's "x" is ignored: no phantom false positive for person.
    assert e["per_type"]["person"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})


def test_evaluate_is_a_pure_function_of_records() -> None:
    gold = {r["id"]: r for r in GOLD}
    assert evaluate(gold, {}) == evaluate(gold, {})
    assert evaluate(gold, {})["missing_predictions"] == 3
    assert evaluate(gold, gold)["entities"]["micro"]["f1"] == 1.0


def test_text_report_is_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = write_jsonl(tmp_path / "gold.jsonl", GOLD)
    code, out, _ = run_eval(capsys, gold, gold)
    assert code == 0
    assert re.search(r"^entities\s+1\.000\s+1\.000\s+1\.000", out, re.M)
    assert re.search(r"^relations\s+1\.000", out, re.M)
    assert re.search(r"^located in\s+1\.000\s+1\.000\s+1\.000\s+1$", out, re.M)
    assert out.strip() == format_report(evaluate_files(gold, gold))


def test_ids_may_be_integers_and_a_bom_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    body = "\n".join(json.dumps({"id": i, "entities": [], "relations": []}) for i in (1, 2))
    path.write_bytes(b"\xef\xbb\xbf" + body.encode() + b"\n\n  \n")
    assert list(read_interchange(path)) == ["1", "2"]


# --- bad input ------------------------------------------------------------------------

GOOD_LINE = json.dumps(GOLD[0]).encode()
BAD_LINES: dict[str, tuple[bytes, str]] = {
    "not json": (b'{"id": "x", "entities": [', "not JSON"),
    "not an object": (b'["id", "x"]', "expected a JSON object, got array"),
    "missing id": (b'{"entities": [], "relations": []}', "missing 'id'"),
    "null id": (b'{"id": null, "entities": [], "relations": []}', "'id' must be"),
    "boolean id": (b'{"id": true, "entities": [], "relations": []}', "'id' must be"),
    "duplicate id": (GOOD_LINE, "duplicate id 'd1' (first on line 1)"),
    "entities missing": (b'{"id": "x", "relations": []}', "missing 'entities'"),
    "entities not a list": (b'{"id": "x", "entities": {}, "relations": []}', "'entities' must be a list"),
    "entity not an object": (b'{"id": "x", "entities": ["Apple"], "relations": []}', "entities[0] must be an object"),
    "entity type not a string": (
        b'{"id": "x", "entities": [{"text": "Apple", "type": 3}], "relations": []}',
        "entities[0].type must be a string, got number",
    ),
    "relation without tail": (
        b'{"id": "x", "entities": [], "relations": [{"head": "a", "type": "r"}]}',
        "relations[0].tail must be a string, got nothing",
    ),
    "text not a string": (b'{"id": "x", "text": 1, "entities": [], "relations": []}', "'text' must be a string"),
    "not utf-8": (b'{"id": "x", "text": "caf\xe9", "entities": [], "relations": []}', "not valid UTF-8"),
}


@pytest.mark.parametrize("which", ["gold", "pred"])
@pytest.mark.parametrize("case", list(BAD_LINES))
def test_malformed_line_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, which: str
) -> None:
    line, reason = BAD_LINES[case]
    good = write_jsonl(tmp_path / "good.jsonl", GOLD)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(GOOD_LINE + b"\n\n" + line + b"\n")  # the blank line still counts: bad line is 3
    gold, pred = (bad, good) if which == "gold" else (good, bad)
    code, out, err = run_eval(capsys, gold, pred, "--json")
    assert code == 2 and out == ""
    assert f"{bad}:3: " in err and reason in err


def test_subprocess_entry_point_rejects_bad_file(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", GOLD)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("oops\n")
    cmd = [sys.executable, "-m", "t2g", "eval", "--gold", str(good), "--predictions", str(bad), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{bad}:1: not JSON" in done.stderr and "Traceback" not in done.stderr


def test_unreadable_and_empty_gold_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no examples"):
        evaluate_files(empty, empty)
    with pytest.raises(InputError, match="cannot read"):
        evaluate_files(tmp_path / "absent.jsonl", empty)


# Junk: raw bytes, random JSON values, and records that are almost right.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
item_like = st.dictionaries(
    st.sampled_from(["text", "type", "head", "tail", "id"]), st.text(max_size=4) | json_values, max_size=4
)
record_like = st.dictionaries(
    st.sampled_from(["id", "text", "entities", "relations", "entity_types"]),
    st.sampled_from(["a", "b"]) | st.integers(0, 2) | st.lists(item_like, max_size=3) | json_values,
    max_size=5,
)
valid_record = st.builds(
    lambda rid, ents, rels: {"id": rid, "entities": ents, "relations": rels},
    st.sampled_from("abcdefgh"),
    st.lists(st.builds(_ent, st.text(max_size=4), st.text(max_size=4)), max_size=3),
    st.lists(st.builds(_rel, st.text(max_size=3), st.text(max_size=3), st.text(max_size=3)), max_size=2),
)
junk_line = (
    st.binary(max_size=30)
    | st.text(max_size=30).map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
    | record_like.map(lambda v: json.dumps(v).encode())
)


@st.composite
def junk_file(draw: st.DrawFn) -> bytes:
    # Mostly valid records, so the report path runs too, with at most one junk line.
    records = draw(st.lists(valid_record, max_size=4, unique_by=lambda r: r["id"]))
    lines = [json.dumps(r).encode() for r in records]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(junk_line))
    return b"\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gold_bytes=junk_file(), pred_bytes=junk_file(), as_json=st.booleans())
def test_junk_never_produces_a_traceback(gold_bytes: bytes, pred_bytes: bytes, as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gold, pred = Path(tmp, "gold.jsonl"), Path(tmp, "pred.jsonl")
        gold.write_bytes(gold_bytes)
        pred.write_bytes(pred_bytes)
        args = ["eval", "--gold", str(gold), "--predictions", str(pred)] + (["--json"] if as_json else [])
        result = CliRunner().invoke(app, args)
    # Either a report (exit 0) or an InputError naming the file (exit 2); never a crash.
    assert result.exit_code in (0, 2), result.exception
    if result.exit_code == 2:
        assert re.match(rf"error: ({re.escape(str(gold))}|{re.escape(str(pred))})(:\d+)?: ", result.stderr)
    elif as_json:
        assert json.loads(result.stdout)["examples"] >= 1
    else:
        assert result.stdout.startswith("examples ")
