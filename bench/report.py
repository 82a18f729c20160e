"""The README's results section, generated from bench/results.json.

    python -m bench.report     # rewrite README.md between the results markers

The figures are never typed by hand: `render(results)` turns what `make bench` (and the
GPU scripts) recorded into Markdown, and tests/repo/test_docs.py fails when the README's
section differs from it. A benchmark missing from results.json leaves its row out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
README = REPO / "README.md"
START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _f1_table(run: dict[str, Any]) -> list[str]:
    """base / SFT / GRPO rows of one recorded recipe run (`f1`, optional `comparisons`)."""
    f1 = run.get("f1") or {}
    rows = [
        f"| {name} | {m['entities']:.3f} | {m['relations']:.3f} | {m['valid_json_rate']:.3f} |"
        for name, m in ((n, f1[n]) for n in ("base", "sft", "grpo") if n in f1)
    ]
    if not rows:
        return []
    lines = ["| model | entity F1 | relation F1 | valid JSON |", "|---|---:|---:|---:|", *rows]
    delta = (run.get("comparisons") or {}).get("grpo - sft")
    if delta:
        r = delta["relations"]
        lines += [
            "",
            f"GRPO - SFT, relation F1: {100 * r['delta']:+.1f} points (95% paired bootstrap interval "
            f"{100 * r['low']:+.1f} to {100 * r['high']:+.1f}) on {delta['documents']} test documents.",
        ]
    return lines


def _demo(results: dict[str, Any]) -> list[str]:
    """The demo's table: `bench cache`'s first run is `make demo` from an empty store."""
    run = results.get("cache") or {}
    if not run.get("f1"):
        return []
    lock = f", lock {run['lock']}" if run.get("lock") else ""
    note = f"; {run['note']}" if run.get("note") else ""
    host = run.get("machine") or {}
    # The wall time is the host's matmul rate; the figures are the kernels' (AVX2: what make picks).
    kernels = f", {host['cpu_kernels']} kernels" if host.get("cpu_kernels") else ""
    on = (
        f" on {host['cores']} cores doing {host['matmul_gflops']:.0f} GFLOPS{kernels}"
        if host.get("matmul_gflops")
        else ""
    )
    head = (
        f"**`make demo`** (seed 0, {run.get('recipe', 'configs/tiny.yaml')}{lock}: {run['first_s']:.0f} s from an "
        f"empty store{on}{note}):"
    )
    return [head, "", *_f1_table(run), ""]


def _cpu_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    if sft := results.get("sft"):
        rows.append(
            f"| SFT throughput (`bench/sft.py`: tiny model, {sft['examples']} examples of ~{sft['mean_tokens_per_example']:.0f} "
            f"tokens, batch {sft['batch_size']}) | {sft['t2g']['examples_per_s']:.1f} examples/s, against "
            f"{sft['seed_style']['examples_per_s']:.1f} padded to {sft['max_length']:,} tokens ({sft['speedup']:.2f}x) |"
        )
    if cache := results.get("cache"):
        until = f" `--until {cache['until']}`" if cache.get("until") else ""
        rows.append(
            f"| cached rerun (`bench/cache.py`: `t2g run` on configs/tiny.yaml{until}, twice) | first run "
            f"{cache['first_s']:.1f} s, rerun {cache['cached_rerun_s']:.1f} s with {cache['cache_hits']} of "
            f"{cache['stages']} stages cache hits |"
        )
    if (suite := results.get("suite")) and suite.get("counts"):
        counts = ", ".join(f"{n} {word}" for word, n in suite["counts"].items() if word != "warnings")
        host = suite.get("machine") or {}
        rate = f", {host['matmul_gflops']:.0f} GFLOPS" if host.get("matmul_gflops") else ""
        rows.append(
            f"| `make test` (`bench/suite.py`: `bash .ci/run` on a clean clone of {suite['commit']}{rate}) | "
            f"pytest {suite['pytest_s']:.0f} s (goal {suite['goal_s']}), {counts}; {suite['wall_s']:.0f} s with the install |"
        )
    if regen := results.get("regen"):
        rows.append(
            f"| regeneration (`bench/regen.py`: fake teacher, {regen['documents']:,} documents then "
            f"+{regen['new_documents']} new) | {regen['regen']['requests']} of {regen['full']['requests']:,} requests "
            f"({100 * regen['ratio_requests']:.1f}%) and {100 * regen['ratio_wall']:.1f}% of the full relabel's "
            f"wall time (goal {100 * regen['goal']:.0f}%)"
            + (f"; the new requests alone take {100 * regen['ratio_floor']:.1f}%" if "ratio_floor" in regen else "")
            + " |"
        )
    if load := results.get("load"):
        rows.append(
            f"| load (`bench/load.py`: collect, extract (gold), filter over {load['documents']:,} documents) | "
            f"peak RSS {load['peak_rss_mb']:,.0f} MB (limit {load['peak_rss_limit_mb']:,}), "
            f"{load['docs_per_s']:.0f} documents/s |"
        )
    if rew := results.get("rewards"):
        rows.append(
            f"| GRPO rewards (`bench/rewards.py`: {len(rew['rewards'])} rewards over {rew['n']:,} completions) | "
            f"{rew['t2g_s']:.2f} CPU s, against {rew['baseline_s']:.2f} s for seed-style rewards that each re-parse ({rew['ratio']:.1f}x) |"
        )
    if res := results.get("graph_resolution"):
        rows.append(
            f"| entity resolution (`bench/graph_resolution.py`: {res['documents']:,} toy documents with identities, "
            f"gold mentions) | B-cubed F1 {res['f1']:.4f} against {res['exact_f1']:.4f} for exact matching, "
            f"{res['cross_type_nodes']} cross-type nodes; {res['scale']['documents_per_cpu_s']:,} documents per CPU-second "
            f"at {res['scale']['documents']:,}{_graph_scale(results.get('graph'))} |"
        )
    if not rows:
        return []
    machine = (results.get("load") or {}).get("machine", "2 CPU cores").split(",")[0]
    return [f"On the development machine, {machine}:", "", "| figure | measured |", "|---|---|", *rows, ""]


def _graph_scale(graph: dict[str, Any] | None) -> str:
    """The corpus graph at scale (bench/graph_scale.py), said after resolution's figures."""
    if not graph:
        return ""
    inc = graph["incremental"]
    return (
        f"; the graph stages over {graph['documents']:,} documents (`bench/graph_scale.py`): resolve + export "
        f"{graph['resolve_export_docs_per_s']:,.0f} documents/s, peak RSS {graph['peak_rss_mb']:,.0f} MB, "
        f"+{inc['added_documents']:,} documents asked {inc['requests']:,} requests for {inc['new_chunks']:,} new chunks"
    )


def _gpu(results: dict[str, Any]) -> list[str]:
    lines = []
    if real := results.get("gpu_real"):
        m, sft, grpo, t = (real.get(k) or {} for k in ("model", "sft", "grpo", "teacher"))
        lines += [f"On a GPU with a real-size student (`bench/gpu_real.sh`: Qwen2.5-0.5B's shape, random weights, "
                  f"{m.get('dtype', '?')}; {real.get('device', 'a GPU')}, torch {real.get('torch', '?')}, trl {real.get('trl', '?')}):", ""]  # fmt: skip
        if sft:
            lines.append(f"- SFT, {sft['examples']} examples of ~{sft['mean_tokens_per_example']:.0f} tokens, batch {sft['batch_size']}: "
                         f"{sft['t2g']['examples_per_s']:.1f} examples/s, against {sft['seed_style']['examples_per_s']:.1f} "
                         f"padded to {sft['max_length']:,} ({sft['speedup']:.2f}x).")  # fmt: skip
        if grpo:
            lines.append(f"- GRPO, {grpo['prompts']} prompts x {grpo['num_generations']} generations of up to "
                         f"{grpo['max_completion_length']} tokens: {grpo['seconds_per_step']:.1f} s a step, "
                         f"{100 * grpo['generation_share']:.0f}% of it generation.")  # fmt: skip
        if t.get("t2g") and t.get("seed_style"):
            lines.append(f"- teacher, {t['n']} prompts (transformers backend, schema-constrained): "
                         f"{t['t2g']['tokens_per_s']:.0f} tokens/s, against {t['seed_style']['tokens_per_s']:.0f} for "
                         f"batches of {t['seed_batch']} one after another ({t['tokens_per_s_ratio']:.1f}x).")  # fmt: skip
        lines.append("")
    return lines


def _think(results: dict[str, Any]) -> list[str]:
    """Thinking against non-thinking students (bench/think.py): mean F1 over the seeds and
    each seed's thinking-minus-plain GRPO difference with its interval."""
    think = results.get("think")
    if not think or not think.get("seeds"):
        return []
    seeds = sorted(think["seeds"])
    lines = [f"Thinking against non-thinking students (`python -m bench think`: configs/tiny-think.yaml against "
             f"configs/tiny.yaml, same documents, teacher and optimizer steps; mean of seeds {', '.join(seeds)}"
             f"{_when(think)}):", "",
             "| student | SFT entity / relation F1 | GRPO entity / relation F1 | valid JSON | format | think chars |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip

    def mean(mode: str, model: str, key: str) -> float | None:
        vals = [think["seeds"][s][mode]["f1"][model].get(key) for s in seeds]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    for mode, name in (("plain", "JSON only"), ("think", "`<think>` then JSON")):
        fmt, chars = mean(mode, "grpo", "format_rate"), mean(mode, "grpo", "think_chars")
        lines.append(f"| {name} | {mean(mode, 'sft', 'entities'):.3f} / {mean(mode, 'sft', 'relations'):.3f} | "
                     f"{mean(mode, 'grpo', 'entities'):.3f} / {mean(mode, 'grpo', 'relations'):.3f} | "
                     f"{mean(mode, 'grpo', 'valid_json_rate'):.3f} | {'n/a' if fmt is None else f'{fmt:.3f}'} | "
                     f"{'n/a' if chars is None else f'{chars:.0f}'} |")  # fmt: skip
    deltas = []
    for s in seeds:
        d = think["seeds"][s]["think - plain"]["grpo"]
        e, r = d["entities"], d["relations"]
        deltas.append(f"seed {s} {100 * e['delta']:+.1f} ({100 * e['low']:+.1f} to {100 * e['high']:+.1f}) / "
                      f"{100 * r['delta']:+.1f} ({100 * r['low']:+.1f} to {100 * r['high']:+.1f})")  # fmt: skip
    lines += [
        "",
        "Thinking minus JSON-only after GRPO, entity / relation F1 points (95% paired interval): "
        + "; ".join(deltas)
        + ".",
        "",
    ]
    return lines


def _pts(d: dict[str, float]) -> str:
    return f"{100 * d['delta']:+.1f} ({100 * d['low']:+.1f} to {100 * d['high']:+.1f})"


def _r1(results: dict[str, Any]) -> list[str]:
    """R1's second round (configs/tiny-r1.yaml): round two's GRPO against round one's, per seed."""
    r1 = results.get("r1")
    if not r1 or not r1.get("seeds"):
        return []
    seeds = sorted(r1["seeds"], key=int)
    per = [r1["seeds"][k] for k in seeds]
    mean = r1["mean"]
    accepted = ", ".join(str(e["sample_2"]["accepted"]) for e in per)
    closer = ", ".join(f"{e['sample_2']['vs_gold']['closer']}/{e['sample_2']['vs_gold']['further']}" for e in per)
    rel = "; ".join(f"{_pts(e['comparisons']['grpo-2 - grpo']['relations'])}" for e in per)
    took = f", {r1['empty_store_s'] / 60:.0f} min from an empty store" if r1.get("empty_store_s") else ""
    return [f"R1's second round (`configs/tiny-r1.yaml`, student seeds {', '.join(seeds)}{took}{_when(r1)}): {accepted} of "
            f"{per[0]['sample_2']['documents']} sampled documents accepted; the student's answer closer/further from the "
            f"gold than its teacher's label on {closer} of them; GRPO-2 {mean['grpo-2']['entities']:.3f} / "
            f"{mean['grpo-2']['relations']:.3f} against GRPO {mean['grpo']['entities']:.3f} / {mean['grpo']['relations']:.3f} "
            f"(means); GRPO-2 minus GRPO, relation F1 points per seed: {rel}: "
            f"{'meets' if r1.get('meets_goal') else 'short of'} the goal of +3.", ""]  # fmt: skip


def _when(entry: dict[str, Any]) -> str:
    """An entry measured on older code says so (`measured_at`, set by hand when the code under
    it moved and it was not rerun; a rerun writes the entry afresh, without it)."""
    return f"; {entry['measured_at']}" if entry.get("measured_at") else ""


def _repair(results: dict[str, Any]) -> list[str]:
    """The filter's repair mode (filter.ungrounded=repair) against drop, on the same teacher labels."""
    rep = results.get("repair")
    if not rep:
        return []
    y, s0 = rep["yield"], rep["seeds"]["0"]
    d = s0["repair - drop"]["grpo"]
    return [f"Repairing labels instead of dropping them (`filter.ungrounded: repair`, seed 0{_when(rep)}) keeps {y['repair']['documents']} "
            f"documents instead of {y['drop']['documents']}, but the student learns the gaps: GRPO "
            f"{s0['f1']['repair']['grpo']['entities']:.3f} / {s0['f1']['repair']['grpo']['relations']:.3f} against "
            f"{s0['f1']['drop']['grpo']['entities']:.3f} / {s0['f1']['drop']['grpo']['relations']:.3f}, entity "
            f"{_pts(d['entities'])}, relation {_pts(d['relations'])} points.", ""]  # fmt: skip


def render(results: dict[str, Any]) -> str:
    """The Markdown between the README's results markers, from bench/results.json."""
    lines = [
        "<!-- generated by `python -m bench.report` from bench/results.json: do not edit by hand -->",
        "",
        *_demo(results),
        *_cpu_rows(results),
        *_think(results),
        *_r1(results),
        *_repair(results),
        *_gpu(results),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def section(readme: str) -> str:
    """The text between the markers (exclusive). Raises ValueError when they are missing."""
    try:
        head, rest = readme.split(START + "\n", 1)
        body, _ = rest.split(END, 1)
    except ValueError:
        raise ValueError(f"README has no {START} ... {END} section") from None
    return body


def splice(readme: str, rendered: str) -> str:
    """`readme` with its results section replaced by `rendered`."""
    head, rest = readme.split(START + "\n", 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{rendered}{END}{tail}"


def main() -> int:
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    text = README.read_text(encoding="utf-8")
    section(text)  # fail with the reason before writing anything
    README.write_text(splice(text, render(results)), encoding="utf-8")
    print(f"rewrote the results section of {README.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
