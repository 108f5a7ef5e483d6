"""Ingest: read landing files, validate every event, stage the good ones and quarantine the rest."""
