"""The `t2g` console command: the domain commands of t2g.cli plus those that run flows
(they live here because t2g/ never imports Prefect)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

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
    store: Optional[str] = typer.Option(None, "--store", help="artifact store URI (file://DIR or s3://bucket/prefix)"),
    until: Optional[str] = typer.Option(None, "--until", help="stop after this stage"),
    overrides: list[str] = typer.Option([], "--set", help="override a recipe field: section.key=value (YAML value)"),
) -> None:
    """Run the pipeline on a recipe (Prefect's local API unless PREFECT_API_URL is set)."""
    from t2g.config import RecipeError, load_recipe

    try:  # fail on a bad recipe before Prefect starts anything
        recipe = load_recipe(config, overrides=overrides, store=store)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    from flows.data import check_until
    from flows.pipeline import pipeline

    try:
        check_until(until)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    started = time.time()
    try:
        from prefect import tags

        with tags("t2g", f"recipe:{recipe.name}"):  # on the flow runs too: the UI filters runs by recipe
            refs = pipeline(config=str(config), store=store, overrides=list(overrides), until=until)
    except Exception as exc:  # Prefect has logged the traceback; end with the reason
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1)
    hits = sum(bool(r.get("hit")) for r in refs.values())
    typer.echo(f"\nrecipe {recipe.name}: {len(refs)} stages in {time.time() - started:.1f} s ({hits} cache hits)")
    for stage, ref in refs.items():
        typer.echo(f"  {stage:<8} {ref['rows']:>7} rows  {'hit ' if ref.get('hit') else 'ran '} {ref['uri']}")
    from flows.train import closing_report  # the F1 table, when the run evaluated

    if report := closing_report(recipe, refs):
        typer.echo(report)


from flows.stack import stack_app  # noqa: E402  (after the environment defaults above)

app.add_typer(stack_app, name="stack")


def main(argv: Optional[list[str]] = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="t2g")


if __name__ == "__main__":
    main()
