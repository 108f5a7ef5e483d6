"""Classify tasks sent without ``task_type`` from their objective text, with the objective templates."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.warehouse.db import run_seed
from perf_pipeline.warehouse.schema import objective_templates

UNCATEGORIZED = "uncategorized"


@dataclass(frozen=True)
class Template:
    template_id: str
    task_type: str
    pattern: str
    priority: int


def seed_templates(conn: Connection) -> int:
    """(Re)load the default templates from ``sql/seeds``; user rows are kept. Returns the default count."""
    run_seed(conn, "objective_templates.sql")
    return conn.execute(sa.select(sa.func.count()).select_from(objective_templates)
                        .where(objective_templates.c.source == "default")).scalar_one()


def load_templates(conn: Connection) -> list[Template]:
    """All templates in priority order; an invalid pattern is an error naming the template."""
    rows = conn.execute(sa.select(objective_templates).order_by(objective_templates.c.priority,
                                                                objective_templates.c.template_id)).all()
    templates = [Template(r.template_id, r.task_type, r.pattern, r.priority) for r in rows]
    for template in templates:
        try:
            re.compile(template.pattern)
        except re.error as exc:
            raise ValueError(f"objective_templates row {template.template_id!r}: pattern {template.pattern!r} "
                             f"is not a valid regular expression: {exc}") from exc
    return templates


def classify(task_type: pd.Series, objective: pd.Series, templates: list[Template]) -> tuple[pd.Series, pd.Series]:
    """(task_type, source): reported types are kept; others take the first matching template, else
    ``uncategorized``. Source is ``reported``, ``template`` or ``default``. Each template is tried on
    the objectives still unclassified only (most tasks report their type)."""
    result = task_type.astype(object).copy()
    source = pd.Series("reported", index=task_type.index, dtype=object)
    pending = result.isna()
    source[pending] = "default"
    text = objective.astype(object).where(objective.notna(), "").astype(str)
    for template in templates:
        if not pending.any():
            break
        with warnings.catch_warnings():  # templates may use groups; only whether they match matters
            warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
            unclassified = pending.to_numpy()
            found = np.zeros(len(text), dtype=bool)
            found[unclassified] = text[unclassified].str.contains(template.pattern, flags=re.IGNORECASE,
                                                                  regex=True).to_numpy(dtype=bool)
            matches = pd.Series(found, index=text.index)
        result[matches] = template.task_type
        source[matches] = "template"
        pending &= ~matches
    result[pending] = UNCATEGORIZED
    return result, source
