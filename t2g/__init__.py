"""t2g: the DeepSeek-R1 recipe for text-to-graph extraction. This package is the domain
layer: plain Python that knows nothing of Prefect (see DESIGN.md, "Layers")."""

__version__ = "0.1.0"
