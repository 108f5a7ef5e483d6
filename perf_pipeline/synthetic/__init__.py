"""Synthetic agent task logs for demos and ingest benchmarks."""
