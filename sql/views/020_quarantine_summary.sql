-- Quarantined rows per file and reason codes, newest first: where to look when a producer breaks.
DROP VIEW IF EXISTS v_quarantine_summary;
CREATE VIEW v_quarantine_summary AS
SELECT
    q.source_file,
    q.event_type,
    q.reason_codes,
    COUNT(*) AS row_count,
    MIN(q.line_number) AS first_line,
    MAX(q.quarantined_at) AS last_quarantined_at
FROM quarantined_events AS q
GROUP BY q.source_file, q.event_type, q.reason_codes;
