"""Reports: what the daily and weekly reports say (gathered from the warehouse), their charts and renderings."""
