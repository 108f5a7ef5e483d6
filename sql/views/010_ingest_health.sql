-- Ingest health per landing file: the conservation identity and the quarantine share.
DROP VIEW IF EXISTS v_ingest_health;
CREATE VIEW v_ingest_health AS
SELECT
    f.file_id,
    f.path,
    f.status,
    f.error,
    f.lines_read,
    f.events_loaded,
    f.quarantined,
    f.duplicates_skipped,
    f.lines_read - f.events_loaded - f.quarantined - f.duplicates_skipped AS unaccounted_lines,
    CASE WHEN f.lines_read > 0 THEN 1.0 * f.quarantined / f.lines_read END AS quarantine_rate,
    f.min_partition_date,
    f.max_partition_date,
    f.ingested_at
FROM ingested_files AS f;
