"""Aggregates: daily rollups, rolling windows, trends, baselines and anomalies, rankings."""
