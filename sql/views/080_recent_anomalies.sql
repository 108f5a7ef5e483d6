-- Anomalies of the 7 latest days checked against a baseline.
DROP VIEW IF EXISTS v_recent_anomalies;
CREATE VIEW v_recent_anomalies AS
SELECT a.date, a.entity_id AS provider_task_type, a.metric, a.observed, a.baseline_median, a.baseline_mad,
       a.baseline_days, a.robust_z, a.direction
FROM anomalies AS a
WHERE a.date IN (SELECT DISTINCT b.date FROM baselines AS b ORDER BY b.date DESC LIMIT 7);
