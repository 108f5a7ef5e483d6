"""Events: the typed daily tables (tasks, steps, feedback, peer evaluations, messages) cut from staging."""
