-- Default objective templates: task type <- patterns in the objective text (Python regex, case-insensitive).
-- Used only for tasks sent without task_type; the lowest priority that matches wins.
-- Re-seeding replaces rows with source = 'default' and keeps your own rows (source = 'user'):
-- add a row with a lower priority to override a default.
DELETE FROM objective_templates WHERE source = 'default';
INSERT INTO objective_templates (template_id, task_type, pattern, priority, source, description) VALUES
('bug_fix', 'bug_fix', '\b(fix|bug|regression|crash|hotfix|debug)\w*', 10, 'default', 'Repairing broken behaviour'),
('testing', 'testing', '\b(unit tests?|test suite|write tests?|tests? for|test coverage|integration tests?)\b', 20, 'default', 'Writing or extending tests'),
('code_review', 'code_review', '\b(review|pull request|PR #?\d+|code review)\b', 30, 'default', 'Reviewing changes'),
('documentation', 'documentation', '\b(document\w*|docs?|readme|docstrings?|changelog)\b', 40, 'default', 'Writing documentation'),
('data_analysis', 'data_analysis', '\b(analy[sz]\w*|dataset|dashboard|metrics?|sql query|statistic\w*)\b', 50, 'default', 'Analysing data'),
('summarization', 'summarization', '\b(summari[sz]\w*|tl;?dr|digest|recap|condense)\b', 60, 'default', 'Summarising text'),
('research', 'research', '\b(research\w*|investigat\w*|compare|survey|literature|find out)\b', 70, 'default', 'Open-ended investigation'),
('code_generation', 'code_generation', '\b(implement\w*|build|create|add (a|an|the) \w+|write (a|an) (function|class|script|module|endpoint)|refactor\w*|generate code)\b', 80, 'default', 'Writing new code');
