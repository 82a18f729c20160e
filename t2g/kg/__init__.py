"""The corpus knowledge graph: chunking, grounding, entity resolution, exports."""
