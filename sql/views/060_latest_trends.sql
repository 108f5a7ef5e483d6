-- The trends of the latest as-of day, per entity, window and metric: which way, by how much per
-- day, and how sure (the slope's 95 % interval, the Mann-Kendall p-value).
DROP VIEW IF EXISTS v_latest_trends;
CREATE VIEW v_latest_trends AS
SELECT t.entity_type, t.entity_id, t.as_of_date, t.window_days, t.metric, t.direction, t.n_points,
       t.slope_per_day, t.slope_low, t.slope_high, t.relative_change, t.mann_kendall_p
FROM trends AS t
WHERE t.as_of_date = (SELECT MAX(x.as_of_date) FROM trends AS x);
