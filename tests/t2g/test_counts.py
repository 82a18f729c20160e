"""The counts table of a stage adds up on its own (t2g/counts.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from t2g import counts


def test_filter_counts_show_variants_as_variants():
    # The figures a user could not reconcile: 2043 in, 6 dropped, 4062 out.
    summary = {"rows_in": 2043, "kept": 2037, "variants": 2025, "reasons": {"too few entities": 4, "ungrounded": 2}}
    table = counts.table(summary, 4062, {"dropped": 6}, row_wise=True)
    assert [r["what"] for r in table] == [
        "rows in", "dropped: too few entities", "dropped: ungrounded", "augmentation variants added", "rows out",
        "dropped artifact rows (kept aside, not in rows out)",
    ]  # fmt: skip
    assert sum(r["count"] for r in table[:4]) == table[4]["count"] == 4062
    assert counts.balance(summary, 4062) == 0


def test_repaired_rows_are_shown_as_part_of_rows_out_not_added_to_it():
    # filter.ungrounded: repair: 3 of the 95 kept documents were repaired.
    summary = {"rows_in": 100, "kept": 95, "variants": 40, "reasons": {"too few entities": 5},
               "repaired": {"ungrounded entity removed": 3}}  # fmt: skip
    table = counts.table(summary, 135, {"dropped": 5, "repaired": 3}, row_wise=True)
    assert table == [
        {"what": "rows in", "count": 100},
        {"what": "dropped: too few entities", "count": -5},
        {"what": "augmentation variants added", "count": 40},
        {"what": "rows out", "count": 135},
        {"what": "repaired (kept, in rows out): ungrounded entity removed", "count": 3},
        {"what": "dropped artifact rows (kept aside, not in rows out)", "count": 5},
        {"what": "repaired artifact rows (what repair removed from rows that are in rows out)", "count": 3},
    ]
    assert counts.balance(summary, 135) == 0


def test_rows_not_selected_for_labelling_are_a_named_reason():
    summary = {"rows_in": 2330, "not_selected": 287, "rows_out": 2043}
    table = counts.table(summary, 2043, {}, row_wise=True)
    assert {"what": counts.NOT_SELECTED, "count": -287} in table and counts.balance(summary, 2043) == 0


def test_a_count_that_does_not_add_up_is_shown_not_hidden():
    table = counts.table({"rows_in": 10, "reasons": {"bad": 1}}, 8, {}, row_wise=True)
    assert table[-1] == {"what": "unaccounted for", "count": 1}


@given(st.integers(0, 10_000), st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 50), max_size=4),
       st.integers(0, 100), st.integers(0, 10_000), st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 50), max_size=2))  # fmt: skip
def test_the_table_always_sums_to_rows_out(rows_in, reasons, not_selected, variants, repaired):
    summary = {
        "rows_in": rows_in,
        "reasons": reasons,
        "not_selected": not_selected,
        "variants": variants,
        "repaired": repaired,
    }
    out = rows_in - sum(reasons.values()) - not_selected + variants
    table = counts.table(
        summary, out, {"dropped": sum(reasons.values()), "repaired": sum(repaired.values())}, row_wise=True
    )
    whats = [r["what"] for r in table]
    assert sum(r["count"] for r in table[: whats.index("rows out")]) == out
    assert "unaccounted for" not in whats and counts.balance(summary, out) == 0
