"""``python -m perf_pipeline`` is the ``perf-pipeline`` command."""

from perf_pipeline.cli import main

raise SystemExit(main())
