-- What evaluation itself costs: the LLM judge's calls per run and judge model.
DROP VIEW IF EXISTS v_judge_cost;
CREATE VIEW v_judge_cost AS
SELECT
    c.run_id,
    c.judge_model,
    c.rubric_version,
    COUNT(*) AS calls,
    SUM(CASE WHEN c.outcome = 'ok' THEN 1 ELSE 0 END) AS answered,
    SUM(CASE WHEN c.outcome <> 'ok' THEN 1 ELSE 0 END) AS failed_calls,
    SUM(c.input_tokens) AS input_tokens,
    SUM(c.output_tokens) AS output_tokens,
    SUM(c.cost_usd) AS cost_usd,
    SUM(CASE WHEN c.cost_usd IS NULL THEN 1 ELSE 0 END) AS calls_without_price,
    MIN(c.called_at) AS first_call_at,
    MAX(c.called_at) AS last_call_at
FROM llm_judge_calls AS c
GROUP BY c.run_id, c.judge_model, c.rubric_version;
