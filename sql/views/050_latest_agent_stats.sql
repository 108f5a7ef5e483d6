-- Each agent's latest 7/30/90-day window (the newest as-of day the agent has), with its rank on
-- that day's leaderboard. insufficient_data rows have null metrics and no rank. (Each agent's latest
-- day found once, then its rows looked up by the day-first key.)
DROP VIEW IF EXISTS v_latest_agent_stats;
CREATE VIEW v_latest_agent_stats AS
SELECT w.entity_id AS agent_id, w.as_of_date, w.window_days, w.status, l.rank, l.department, w.n_tasks,
       w.success_rate, w.avg_quality_score, w.avg_overall_score, w.avg_cost_per_task, w.total_cost_usd,
       w.avg_completion_time_s, w.p50_response_time_ms, w.p95_response_time_ms, w.avg_user_rating,
       w.sla_compliance_rate, w.collaboration_score, w.correction_rate, w.approval_rate, w.innovation_count
FROM (SELECT x.entity_id, MAX(x.as_of_date) AS as_of_date
      FROM window_stats AS x WHERE x.entity_type = 'agent' GROUP BY x.entity_id) AS latest
JOIN window_stats AS w
  ON w.as_of_date = latest.as_of_date AND w.entity_type = 'agent' AND w.entity_id = latest.entity_id
LEFT JOIN leaderboard AS l
  ON l.as_of_date = w.as_of_date AND l.window_days = w.window_days AND l.agent_id = w.entity_id;
