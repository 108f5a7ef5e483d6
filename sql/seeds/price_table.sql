-- Default model prices (USD per million tokens), each effective from a date until the next row of
-- the same provider and model. Used to compute cost_usd for tasks that did not report it, and the
-- cost of the LLM judge. Re-seeding replaces rows with source = 'default' and keeps your own
-- (source = 'user'): add a user row with a later effective_from to record a price change.
-- Self-hosted models (vllm) have no row on purpose: their cost stays unknown, and is counted.
DELETE FROM price_table WHERE source = 'default';
INSERT INTO price_table (provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok, source, note) VALUES
('openai', 'gpt-4.1', '2023-01-01', 2.00, 8.00, 'default', 'list price'),
('openai', 'gpt-4.1-mini', '2023-01-01', 0.40, 1.60, 'default', 'list price'),
('anthropic', 'claude-sonnet-4', '2023-01-01', 3.00, 15.00, 'default', 'list price'),
('anthropic', 'claude-haiku', '2023-01-01', 0.80, 4.00, 'default', 'list price'),
('google', 'gemini-2.5-pro', '2023-01-01', 1.25, 10.00, 'default', 'list price'),
('google', 'gemini-2.5-flash', '2023-01-01', 0.30, 2.50, 'default', 'list price');
