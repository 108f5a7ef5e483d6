"""Scoring: per-task components (efficiency, cost, judged quality, peer review, user feedback, code
review), their composite, and per-agent collaboration scores. Pure logic; the Dagster layer is in
``assets.py``."""
