"""The warehouse: table definitions, engine creation and idempotent partition writes."""
