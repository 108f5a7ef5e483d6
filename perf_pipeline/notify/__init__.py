"""Notify: delivering messages to Slack and webhooks, and telling the outbox what a failure means."""
