-- Feedback, peer evaluations and messages that name a task the warehouse does not hold (yet):
-- kept in their tables, listed here. They are scored once their task arrives.
DROP VIEW IF EXISTS v_orphan_events;
CREATE VIEW v_orphan_events AS
SELECT 'feedback' AS event_type, f.feedback_id AS event_id, f.task_id, f.partition_date, f.source_file
FROM feedback_events AS f
WHERE NOT EXISTS (SELECT 1 FROM task_events AS t WHERE t.task_id = f.task_id)
UNION ALL
SELECT 'peer_evaluation', p.evaluation_id, p.task_id, p.partition_date, p.source_file
FROM peer_evaluations AS p
WHERE NOT EXISTS (SELECT 1 FROM task_events AS t WHERE t.task_id = p.task_id)
UNION ALL
SELECT 'message', m.message_id, m.task_id, m.partition_date, m.source_file
FROM collaboration_messages AS m
WHERE m.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM task_events AS t WHERE t.task_id = m.task_id);
