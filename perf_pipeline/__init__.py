"""perf_pipeline: measure how well AI agents do their work, from their task logs.

Pure logic lives in plain modules (``contract``, ``ingest``, ``validation``, ``events``);
the Dagster layer (``*/assets.py``, ``*/checks.py``, ``definitions.py``) is a thin shell over it.
"""

__version__ = "0.1.0"
