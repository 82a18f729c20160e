"""The `t2g` command. Each command is a thin shell over a function importable from Python;
heavy imports happen inside the command so `t2g --help` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="t2g: text to knowledge graph, the DeepSeek-R1 recipe as a Prefect pipeline."
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
        raise typer.Exit(2)
    typer.echo(json.dumps(report) if as_json else format_report(report))


def main(argv: Optional[list[str]] = None) -> None:
    app(args=argv, prog_name="t2g")


if __name__ == "__main__":
    main(sys.argv[1:])
