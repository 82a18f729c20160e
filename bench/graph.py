"""`python -m bench graph`: the corpus graph at scale (bench/graph_scale.py)."""

from bench.graph_scale import run

__all__ = ["run"]
