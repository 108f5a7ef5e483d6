"""Classifying tasks sent without a type: trying each template on the unclassified objectives only
gives what trying it on every objective gave."""

from __future__ import annotations

import re
import warnings

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.events.classify import UNCATEGORIZED, Template, classify

TEMPLATES = [
    Template("bug_fix", "bug_fix", r"\b(fix|bug|regression|crash|hotfix|debug)\w*", 10),
    Template("testing", "testing", r"\b(unit tests?|test suite|write tests?|tests? for)\b", 20),
    Template("review", "code_review", r"\b(review|pull request|PR #?\d+|code review)\b", 30),
    Template("grouped", "research", r"(investigat|compare)(\w*)", 40),
]
WORDS = ["Fix", "the", "crash", "write", "tests", "for", "login", "review", "PR #12", "compare", "Investigating",
         "plain", "summary", "DEBUGGING", "tests?"]


def classify_every_objective(task_type: pd.Series, objective: pd.Series,
                             templates: list[Template]) -> tuple[pd.Series, pd.Series]:
    """``classify`` as it was: each template tried on every objective, kept where still pending."""
    result = task_type.astype(object).copy()
    source = pd.Series("reported", index=task_type.index, dtype=object)
    pending = result.isna()
    source[pending] = "default"
    text = objective.astype(object).where(objective.notna(), "").astype(str)
    for template in templates:
        if not pending.any():
            break
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
            matches = pending & text.str.contains(template.pattern, flags=re.IGNORECASE, regex=True)
        result[matches] = template.task_type
        source[matches] = "template"
        pending &= ~matches
    result[pending] = UNCATEGORIZED
    return result, source


tasks = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["bug_fix", "feature", "research"])),
                           st.one_of(st.none(), st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join))),
                 max_size=40)


@settings(max_examples=200, deadline=None)
@given(tasks=tasks, offset=st.integers(0, 5))
def test_trying_templates_on_unclassified_objectives_only_changes_nothing(tasks, offset: int) -> None:
    index = pd.RangeIndex(offset, offset + len(tasks))
    task_type = pd.Series([t for t, _ in tasks], index=index, dtype=object)
    objective = pd.Series([o for _, o in tasks], index=index, dtype=object)
    new, old = classify(task_type, objective, TEMPLATES), classify_every_objective(task_type, objective, TEMPLATES)
    pd.testing.assert_series_equal(new[0], old[0])
    pd.testing.assert_series_equal(new[1], old[1])
