-- Per task type, the top-ranked provider/model on the latest ranking day, with its evidence and
-- the runner-up's utility (null when it has no ranked rival).
DROP VIEW IF EXISTS v_provider_recommendations;
CREATE VIEW v_provider_recommendations AS
SELECT r.task_type, r.as_of_date, r.window_days, r.provider, r.model, r.utility, r.n_tasks, r.avg_quality_score,
       r.avg_cost_per_task, r.p50_response_time_ms, r.success_rate,
       (SELECT MAX(s.utility) FROM provider_rankings AS s
        WHERE s.as_of_date = r.as_of_date AND s.task_type = r.task_type AND s.rank > 1) AS runner_up_utility
FROM provider_rankings AS r
WHERE r.rank = 1 AND r.as_of_date = (SELECT MAX(x.as_of_date) FROM provider_rankings AS x);
