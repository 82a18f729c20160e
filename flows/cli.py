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
    orchestrate: bool = typer.Option(False, "--orchestrate", help="run through Prefect even when every stage is finished"),
) -> None:
    """Run the pipeline on a recipe (Prefect's local API unless PREFECT_API_URL is set).

    When the store already holds every stage's artifact (keys come from the recipe alone),
    the run says so and ends without starting Prefect: there is nothing to orchestrate."""
    from t2g.config import RecipeError
    from t2g.kg.config import load_recipe
    from t2g.dag import DagError, cached, plan

    try:  # fail on a bad recipe or graph before Prefect starts anything
        recipe = load_recipe(config, overrides=overrides, store=store)
        nodes = plan(recipe, until)
    except (RecipeError, DagError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    from flows.report import closing_report, llm_lines, stage_lines
    from tasks.storage import open_store

    started = time.time()
    try:
        found = None if orchestrate else cached(recipe, nodes, open_store(recipe.store))
    except Exception:  # an unreachable store: let the orchestrated run retry and report it
        found = None
    if found is not None:
        refs = {stage: {**ref.to_dict(), "hit": True} for stage, ref in found.items()}
        typer.echo(f"\nrecipe {recipe.name}: {len(refs)} stages in {time.time() - started:.1f} s ({len(refs)} cache hits: "
                   "every stage finished in the store, nothing to run, Prefect not started)")
    else:
        refs = _orchestrated(recipe, config, overrides, until)
        hits = sum(bool(r.get("hit")) for r in refs.values())
        typer.echo(f"\nrecipe {recipe.name}: {len(refs)} stages in {time.time() - started:.1f} s ({hits} cache hits)")
    typer.echo("\n".join(stage_lines(refs) + llm_lines(open_store(recipe.store), refs)))
    if report := closing_report(recipe, refs):  # the F1 table, when the run evaluated
        typer.echo(report)


def _orchestrated(recipe, config: Path, overrides: list[str], until: Optional[str]) -> dict:
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
        raise typer.Exit(1)


from flows.stack import stack_app  # noqa: E402  (after the environment defaults above)

app.add_typer(stack_app, name="stack")


def main(argv: Optional[list[str]] = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="t2g")


if __name__ == "__main__":
    main()
