"""The `t2g` command. Each command is a thin shell over a function importable from Python;
heavy imports happen inside the command so `t2g --help` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="t2g: text to knowledge graph, the DeepSeek-R1 recipe as a Prefect pipeline.",
)


@app.command()
def toyworld(
    n: int = typer.Option(100, "--n", help="number of documents"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same file)"),
    out: Path = typer.Option(..., "--out", help="interchange JSONL to write"),
) -> None:
    """Write N toy-world documents with their exact gold graphs (interchange JSONL)."""
    from t2g.toyworld import write_jsonl

    written = write_jsonl(out, n=n, seed=seed)
    typer.echo(f"wrote {written} documents to {out}")


@app.command(name="eval")
def eval_(
    gold: Path = typer.Option(..., "--gold", help="gold interchange JSONL"),
    predictions: Path = typer.Option(..., "--predictions", help="predicted interchange JSONL"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
) -> None:
    """Score predictions against gold: micro P/R/F1, mean F1, relaxed and per-type."""
    from t2g.evaluation import InputError, evaluate_files, format_report

    try:
        report = evaluate_files(gold, predictions)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report) if as_json else format_report(report))


@app.command()
def extract(
    text: str | None = typer.Argument(None, help="the text (or use --input)"),
    model: str = typer.Option(
        ..., "--model", help="a model folder, or a model stage's artifact: its folder or URI as `t2g run` prints it"
    ),
    entity_types: str = typer.Option(..., "--entity-types", help="comma-separated, e.g. person,organisation"),
    relation_types: str = typer.Option("", "--relation-types", help="comma-separated, e.g. works_for"),
    input_: Path | None = typer.Option(
        None,
        "--input",
        help="JSONL with a 'text' field per line (and optional 'id'), a Parquet file, or a folder of .txt files",
    ),
    constrained: bool = typer.Option(True, "--constrained/--free", help="JSON-schema constrained decoding"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="texts per generate call"),
    keep_ungrounded: bool = typer.Option(
        False,
        "--keep-ungrounded",
        help="keep entities whose name is not in the text (dropped by default, with their relations)",
    ),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="run the model folder's own code"),
) -> None:
    """Extract graphs of the given types; prints interchange JSONL (one graph per text).

    --input is streamed in batches (a progress bar on stderr). Entities whose name does
    not occur in their text are dropped with the relations naming them, and counted on
    stderr (each such graph lists them under "ungrounded"); --keep-ungrounded keeps them."""
    from t2g.kg.inputs import InputError, batches, check, documents

    # Every input check comes before the model loads: a bad call costs nothing.
    if (text is None) == (input_ is None):
        _refuse("give a TEXT or --input FILE.jsonl (one of them)")
    if text is not None and not text.strip():
        _refuse("TEXT is empty: give the text to extract from")
    etypes = [t.strip() for t in entity_types.split(",") if t.strip()]
    rtypes = [t.strip() for t in relation_types.split(",") if t.strip()]
    if not etypes:
        _refuse(f"--entity-types {entity_types!r} names no type: give comma-separated types, e.g. person,organisation")
    try:
        total = check(input_) if input_ is not None else 1  # one streaming pass: a bad line refuses the file now
    except InputError as exc:
        _refuse(str(exc))

    from t2g.inference import LocalGenerator, LocalModel
    from t2g.inference import extract as run_extract
    from t2g.kg.guard import drop_ungrounded
    from t2g.training import TrainingError

    try:
        generator = LocalGenerator(LocalModel(_model_folder(model), trust_remote_code), batch_size)
        generator.backend()  # load now: a model that does not load fails before any output
    except TrainingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = documents(input_) if input_ is not None else iter([{"id": 0, "text": text}])
    dropped = with_dropped = 0
    with _progress(total, "texts", disable=input_ is None) as bar:
        for batch in batches(rows, batch_size):
            graphs = run_extract([r["text"] for r in batch], etypes, rtypes, generator, constrained=constrained,
                                 max_new_tokens=max_new_tokens, batch_size=batch_size)  # fmt: skip
            for row, graph in zip(batch, graphs):
                if not keep_ungrounded:
                    graph, gone = drop_ungrounded(graph, row["text"])
                    if gone:
                        graph["ungrounded"] = gone
                        dropped, with_dropped = dropped + len(gone), with_dropped + 1
                out = {"id": row["id"], "text": row["text"], **graph, "entity_types": etypes, "relation_types": rtypes}
                typer.echo(json.dumps(out, ensure_ascii=False))
            bar.update(len(batch))
    if dropped:
        typer.echo(f"dropped {dropped} ungrounded entity name(s) in {with_dropped} text(s) (not in the text; "
                   "--keep-ungrounded keeps them)", err=True)  # fmt: skip


def _model_folder(model: str) -> str:
    """--model as a loadable folder: a store artifact resolved through its manifest."""
    from t2g.kg.models import ModelRefError, artifact_model

    try:
        return str(artifact_model(model))
    except ModelRefError as exc:
        _refuse(str(exc))


def _progress(total: int, unit: str, disable: bool = False):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=f" {unit}", file=sys.stderr, disable=disable, dynamic_ncols=True)


@app.command()
def dag(
    config: Path = typer.Option(Path("configs/tiny.yaml"), "--config", help="recipe YAML"),
    until: str | None = typer.Option(None, "--until", help="only this stage and what it needs"),
    overrides: list[str] = typer.Option([], "--set", help="override a recipe field: section.key=value (YAML value)"),
) -> None:
    """Print the recipe's graph: each stage in run order with its inputs, sharding and device."""
    from t2g.config import RecipeError
    from t2g.dag import DagError, describe, plan
    from t2g.kg.config import load_recipe

    try:
        nodes = plan(load_recipe(config, overrides=overrides), until)
    except (RecipeError, DagError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("\n".join(describe(nodes)))


store_app = typer.Typer(
    no_args_is_help=True, help="Check and tidy an artifact store (file://DIR or s3://bucket/prefix)."
)
app.add_typer(store_app, name="store")


@store_app.command("verify")
def store_verify(
    store: str = typer.Option(..., "--store", help="store root: file://DIR or s3://bucket/prefix (AWS environment)"),
    stage: str | None = typer.Option(None, "--stage", help="only this stage"),
) -> None:
    """Read every finished artifact and check it against its manifest; exit 1 if any is corrupt."""
    from t2g.store import Store

    s = Store(store)
    corrupt = 0
    for st, key in s.artifacts(stage):
        problems = s.verify(st, key)
        corrupt += bool(problems)
        typer.echo(f"CORRUPT {st}/{key}: {'; '.join(problems)}" if problems else f"ok      {st}/{key}")
    if corrupt:
        typer.echo(f"{corrupt} corrupt artifact(s)", err=True)
        raise typer.Exit(1)


@store_app.command("gc")
def store_gc(
    store: str = typer.Option(..., "--store", help="store root: file://DIR or s3://bucket/prefix (AWS environment)"),
    grace_hours: float = typer.Option(
        24.0, "--grace-hours", help="keep anything younger (must exceed the longest write)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be removed, remove nothing"),
) -> None:
    """Remove parts and files no verified manifest owns, folders without a manifest and .tmp
    leftovers; skip (and name) every artifact whose manifest fails verification: exit 1 then."""
    from t2g.store import Store

    report = Store(store).gc(grace_s=grace_hours * 3600, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for uri in report.removed:
        typer.echo(f"{verb} {uri}")
    for line in report.skipped:
        typer.echo(f"skipped: {line}")
    typer.echo(f"{verb} {len(report.removed)} file(s); kept {len(report.kept_fresh)} younger than {grace_hours:g} h")
    if report.skipped:
        typer.echo(
            f"{len(report.skipped)} artifact(s) left alone: their manifest fails verification (see `t2g store verify`)",
            err=True,
        )
        raise typer.Exit(1)


cache_app = typer.Typer(
    no_args_is_help=True, help="Inspect and prune the LLM response cache (the store's _llm_cache/)."
)
app.add_typer(cache_app, name="cache")
_CACHE_STORE = "the store holding the cache (a recipe's llm_cache, else its store): file://DIR or s3://bucket/prefix"


@cache_app.command("stats")
def cache_stats(
    store: str = typer.Option(..., "--store", help=_CACHE_STORE),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Entries, bytes, oldest and newest entry of the LLM response cache."""
    from t2g.llm.cache import open_cache

    stats = open_cache(store).stats()
    if as_json:
        typer.echo(json.dumps(stats))
        return
    typer.echo(
        f"{stats['uri']}: {stats['entries']} entries, {stats['bytes']} bytes, oldest {stats['oldest']}, newest {stats['newest']}"
    )


@cache_app.command("prune")
def cache_prune(
    store: str = typer.Option(..., "--store", help=_CACHE_STORE),
    older_than_days: float | None = typer.Option(
        None, "--older-than-days", min=0, help="only entries written earlier; default: all"
    ),
) -> None:
    """Delete LLM cache entries (all, or those older than D days): their requests are sent again when next needed."""
    from t2g.llm.cache import open_cache

    gone = open_cache(store).prune(None if older_than_days is None else older_than_days * 86400)
    typer.echo(
        f"removed {gone} entr{'y' if gone == 1 else 'ies'}"
        + (f" older than {older_than_days:g} days" if older_than_days is not None else "")
    )


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="t2g")


if __name__ == "__main__":
    main(sys.argv[1:])
