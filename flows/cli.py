"""The `t2g` console command: the domain commands of t2g.cli plus those that run flows
(they live here because t2g/ never imports Prefect)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from t2g.cli import app

# Before Prefect is imported: a loaded 2-core laptop can take longer than Prefect's 20 s
# default to start the local (ephemeral) API, and this build sends no telemetry.
for _name, _value in (
    ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"),
    ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
):
    os.environ.setdefault(_name, _value)


@app.command()
def run(
    config: Path = typer.Option(Path("configs/tiny.yaml"), "--config", help="recipe YAML"),
    store: str | None = typer.Option(None, "--store", help="artifact store URI (file://DIR or s3://bucket/prefix)"),
    until: str | None = typer.Option(None, "--until", help="stop after this stage"),
    overrides: list[str] = typer.Option([], "--set", help="override a recipe field: section.key=value (YAML value)"),
    orchestrate: bool = typer.Option(
        False, "--orchestrate", help="run through Prefect even when every stage is finished"
    ),
) -> None:
    """Run the pipeline on a recipe (Prefect's local API unless PREFECT_API_URL is set).

    When the store already holds every stage's artifact (keys come from the recipe alone),
    the run says so and ends without starting Prefect: there is nothing to orchestrate."""
    from t2g.config import RecipeError
    from t2g.dag import DagError, cached, plan
    from t2g.kg.config import load_recipe

    try:  # fail on a bad recipe or graph before Prefect starts anything
        recipe = load_recipe(config, overrides=overrides, store=store)
        nodes = plan(recipe, until)
    except (RecipeError, DagError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from flows.report import closing_report, llm_lines, stage_lines
    from tasks.storage import open_store

    started = time.time()
    try:
        found = None if orchestrate else cached(nodes, open_store(recipe.store))
    except Exception:  # an unreachable store: let the orchestrated run retry and report it
        found = None
    if found is not None:
        refs = {stage: {**ref.to_dict(), "hit": True} for stage, ref in found.items()}
        typer.echo(
            f"\nrecipe {recipe.name}: {len(refs)} stages in {time.time() - started:.1f} s ({len(refs)} cache hits: "
            "every stage finished in the store, nothing to run, Prefect not started)"
        )
    else:
        refs = _orchestrated(recipe, config, overrides, until)
        hits = sum(bool(r.get("hit")) for r in refs.values())
        typer.echo(f"\nrecipe {recipe.name}: {len(refs)} stages in {time.time() - started:.1f} s ({hits} cache hits)")
    typer.echo("\n".join(stage_lines(refs) + llm_lines(open_store(recipe.store), refs)))
    if report := closing_report(recipe, refs):  # the F1 table, when the run evaluated
        typer.echo(report)


def _option_errors(exc) -> str:
    """A pydantic error as the options to change: each field is the option --<field, dashed>."""
    return "; ".join(
        f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()
    )


@app.command()
def graph(
    config: Path | None = typer.Option(
        None, "--config", help="a recipe with graph sections: runs them (and what they need)"
    ),
    store: str | None = typer.Option(None, "--store", help="with --config: artifact store URI"),
    overrides: list[str] = typer.Option([], "--set", help="with --config: override a recipe field: section.key=value"),
    model: str | None = typer.Option(
        None,
        "--model",
        help="a model folder, a model stage's artifact (folder or URI), or with --base-url the served model's name",
    ),
    input_: Path | None = typer.Option(
        None, "--input", help="JSONL of id/text, a Parquet file, or a folder of .txt files"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="folder for nodes/edges/mentions.parquet, graph.graphml, neo4j/, graph.html"
    ),
    entity_types: str = typer.Option("person,organisation,location", "--entity-types", help="comma-separated"),
    relation_types: str = typer.Option("", "--relation-types", help="comma-separated"),
    base_url: str | None = typer.Option(
        None, "--base-url", help="an OpenAI-compatible server (vllm serve, …): --model is its model name"
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", "--api-key-env", help="environment variable holding the server's key"
    ),
    max_tokens: int = typer.Option(256, "--max-tokens", help="chunk size, in words (or --tokenizer tokens)"),
    overlap_tokens: int = typer.Option(32, "--overlap-tokens"),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="count tokens with this model's tokenizer (default: words)"
    ),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens"),
    batch_size: int = typer.Option(8, "--batch-size", help="local model: chunks per generate call"),
    device: str = typer.Option("auto", "--device", help="local model: auto, cpu, cuda, …"),
    formats: str = typer.Option(
        "graphml,neo4j,html", "--formats", help="comma-separated: graphml, neo4j, html, embedded"
    ),
) -> None:
    """Build a knowledge graph: of a recipe's corpus (--config: the graph stages, cached like
    every stage), or of a folder or file of texts with a model (--model --input --out)."""
    if config is not None:
        if any(v is not None for v in (model, input_, out, base_url)):
            typer.echo(
                "error: --config runs the recipe's graph stages; --model/--input/--out/--base-url are for a graph without a recipe",
                err=True,
            )
            raise typer.Exit(2)
        run(config=config, store=store, until="export", overrides=overrides, orchestrate=False)
        return
    from pydantic import ValidationError

    from t2g.kg.config import ChunkConfig, ExportConfig, GraphConfig, ResolveConfig
    from t2g.kg.inputs import InputError, check

    if model is None or input_ is None or out is None:
        typer.echo("error: give --config RECIPE, or --model, --input and --out", err=True)
        raise typer.Exit(2)
    try:
        bad: list = []
        total = check(input_, bad=bad)
        chunk = ChunkConfig(max_tokens=max_tokens, overlap_tokens=overlap_tokens, tokenizer=tokenizer)
        export = ExportConfig(formats=[f.strip() for f in formats.split(",") if f.strip()])
        etypes = [t.strip() for t in entity_types.split(",") if t.strip()]
        rtypes = [t.strip() for t in relation_types.split(",") if t.strip()]
        if not etypes:  # as `t2g extract` says it; GraphConfig's own error named no option
            raise ValueError(
                f"--entity-types {entity_types!r} names no type: give comma-separated types, e.g. person,organisation"
            )
        if base_url is None:
            from t2g.kg.models import artifact_model

            settings = dict(
                backend="transformers", model=str(artifact_model(model)), device=device, batch_size=batch_size
            )
        else:
            settings = dict(backend="openai", model=model, base_url=base_url, api_key_env=api_key_env)
        cfg = GraphConfig(entity_types=etypes, relation_types=rtypes, max_new_tokens=max_new_tokens, **settings)
    except (InputError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        message = str(exc) if not isinstance(exc, ValidationError) else _option_errors(exc)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    from tqdm.auto import tqdm

    from t2g.kg.build import QUARANTINE, build_graph

    if bad:
        typer.echo(f"skipping {len(bad)} bad document(s), listed with the reason in {out / QUARANTINE}; "
                   f"the first: {bad[0].where}: {bad[0].reason}", err=True)  # fmt: skip

    bars = []

    def progress(chunks: int):
        bars.append(tqdm(total=chunks, unit=" chunks", file=sys.stderr, dynamic_ncols=True, desc=f"{total} documents"))
        return bars[-1].update

    try:
        built = build_graph(input_, out, cfg, chunk, ResolveConfig(), list(export.formats), progress=progress)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        for bar in bars:
            bar.close()
    s = built.summary
    typer.echo(f"{built.documents} documents, {built.chunks} chunks: {s.get('mentions', 0)} mentions -> {s['nodes']} nodes, "
               f"{s['edges']} edges; dropped {sum((s.get('dropped') or {}).values())} ({s.get('dropped') or {}})"
               + (f"; quarantined {s['quarantined']}" if s.get("quarantined") else ""))  # fmt: skip
    for path in built.files:
        typer.echo(f"  {path}")


def _orchestrated(recipe, config: Path, overrides: list[str], until: str | None) -> dict:
    from flows import reaper

    reaper.reap_orphans()  # what an earlier run killed with SIGKILL left running
    reaper.guard()  # and what this one starts dies with it, however it ends
    from prefect import tags

    from flows.pipeline import pipeline

    try:
        with tags("t2g", f"recipe:{recipe.name}"):  # on the flow runs too: the UI filters runs by recipe
            # The store as resolved here (`{date}` filled in once): the flow runs where the
            # check above looked.
            return pipeline(config=str(config), store=recipe.store, overrides=list(overrides), until=until)
    except Exception as exc:  # Prefect has logged the traceback; end with the reason
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


from flows.stack import stack_app  # noqa: E402  (after the environment defaults above)

app.add_typer(stack_app, name="stack")


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="t2g")


if __name__ == "__main__":
    main()
