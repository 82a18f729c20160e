"""Orchestration: one thin Prefect task per stage (DESIGN.md, "Layers")."""
