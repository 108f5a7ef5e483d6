"""Alerts: rules over the aggregates, their lifecycle (firing, resolved, silenced), and the notifications they send."""
