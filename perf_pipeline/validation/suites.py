"""Great Expectations 1.x suites built from the contract, and the reasons they give per row.

Each contract rule becomes one row-level (map) expectation, run with ``result_format`` COMPLETE
and ``_row`` as the index column, so exactly the failing rows come back. Cross-field rules
(timestamp order, self-review, at least one score) are listed here by event type. GX is called
directly: dagster-ge only supports GX < 1.0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.validator.v1_validator import Validator

from perf_pipeline.contract import EventSpec, FieldSpec
from perf_pipeline.ingest.normalize import ROW, ReasonLog

logging.getLogger("great_expectations").setLevel(logging.WARNING)

SCORE_COUNT = "_score_count"
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}


@dataclass(frozen=True)
class Rule:
    """An expectation, the reason code its failures get, and how to word one failure."""

    expectation: gxe.Expectation
    code: str
    field: str | None
    describe: Callable[[dict[str, Any]], str]


def field_rules(fields: Sequence[tuple[str, FieldSpec, str]]) -> list[Rule]:
    """Rules from the contract for (column, field, label) triples: required, length, range, enum."""
    rules: list[Rule] = []
    for column, f, label in fields:
        if f.required:
            rules.append(Rule(gxe.ExpectColumnValuesToNotBeNull(column=column), "missing_required", label,
                              lambda _v: "required but missing"))
        if f.kind == "string" and f.min_length:
            rules.append(Rule(gxe.ExpectColumnValueLengthsToBeBetween(column=column, min_value=f.min_length),
                              "empty_value", label, lambda _v: "must not be empty"))
        if f.minimum is not None or f.maximum is not None:
            bounds = f"{_num(f.minimum)}..{_num(f.maximum)}" if f.maximum is not None else f">= {_num(f.minimum)}"
            rules.append(Rule(
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=f.minimum, max_value=f.maximum),
                "out_of_range", label,
                lambda v, column=column, bounds=bounds: f"{_num(v[column])} is outside {bounds}"))
        if f.enum:
            allowed = ", ".join(f.enum)
            rules.append(Rule(
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(f.enum)), "invalid_enum", label,
                lambda v, column=column, allowed=allowed: f"{v[column]!r} is not one of {allowed}"))
    return rules


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _order_rule(later: str, earlier: str) -> Rule:
    return Rule(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=later, column_B=earlier, or_equal=True,
                                                    ignore_row_if="either_value_is_missing"),
        "timestamp_order", later, lambda v: f"{v[later]} is before {earlier} {v[earlier]}")


def cross_field_rules(spec: EventSpec) -> list[Rule]:
    """Rules that relate several fields of one event."""
    if spec.event_type == "task":
        return [_order_rule("completed_at", "assigned_at"), _order_rule("completed_at", "started_at")]
    if spec.event_type == "peer_evaluation":
        return [
            Rule(gxe.ExpectSelectColumnValuesToBeUniqueWithinRecord(
                column_list=["evaluator_agent_id", "evaluated_agent_id"]), "self_review", "evaluated_agent_id",
                lambda v: f"agent {v['evaluator_agent_id']} evaluated its own task"),
            Rule(gxe.ExpectColumnValuesToBeBetween(column=SCORE_COUNT, min_value=1), "no_scores", None,
                 lambda _v: "needs at least one of accuracy, relevance, completeness"),
        ]
    return []


def add_derived_columns(spec: EventSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns that cross-field rules read (kept out of the stored event)."""
    if spec.event_type == "peer_evaluation":
        frame = frame.assign(**{SCORE_COUNT: frame[["accuracy", "relevance", "completeness"]].notna().sum(axis=1)})
    return frame


def uniqueness_rule(spec: EventSpec) -> Rule:
    return Rule(gxe.ExpectColumnValuesToBeUnique(column=spec.id_field), "conflicting_duplicate", spec.id_field,
                lambda v: f"{v[spec.id_field]!r} appears again with different content")


@cache
def _context() -> Any:
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return context


@cache
def _batch_definition(name: str) -> Any:
    source = _context().data_sources.add_or_update_pandas(f"perf_{name}")
    return source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)


_SUITES: dict[str, tuple[gx.ExpectationSuite, int]] = {}


def _suite(name: str, rules: Sequence[Rule]) -> gx.ExpectationSuite:
    """The suite for ``name``, built once: each expectation's meta points back at its rule."""
    if name not in _SUITES:
        suite = gx.ExpectationSuite(name=name)
        for index, rule in enumerate(rules):
            rule.expectation.meta = {"rule": index}
            suite.add_expectation(rule.expectation)
        _SUITES[name] = (suite, len(rules))
    suite, size = _SUITES[name]
    if size != len(rules):
        raise ValueError(f"suite {name} was built from {size} rules, called with {len(rules)}")
    return suite


def run_rules(name: str, frame: pd.DataFrame, rules: Sequence[Rule], reasons: ReasonLog,
              parents: Sequence[int] | None = None) -> None:
    """Validate ``frame`` against ``rules``; add a reason per failing row to ``reasons``.

    ``parents`` maps the frame's ``_row`` values to the rows reasons are filed under (for
    steps, the parent task); by default they are the same. A missing value already explained by a
    type error is not reported again as missing. Failures are described from ``frame``'s own
    values (GX sees them in other dtypes, ``_vectorizable``).

    The rules are validated in parts, one per set of columns they read (a field's rules, a
    cross-field rule), each on a frame of only ``_row`` and those columns: GX filters the whole
    frame by each expectation's results, several times per expectation, so a frame of all the
    rules' columns cost a copy of every column per expectation. GX's cost per expectation is the
    same either way. Each row's reasons come in the rules' order.
    """
    if frame.empty or not rules:
        return
    parts: dict[tuple[str, ...], list[int]] = {}
    for index, rule in enumerate(rules):
        parts.setdefault(tuple(_columns(rule.expectation)), []).append(index)
    outcomes = []
    for number, (columns, indexes) in enumerate(parts.items()):
        part = [rules[index] for index in indexes]
        # Only the columns the rules read: GX fingerprints the frame, and pickles it whole if a
        # column holds lists or dicts (steps, extra).
        needed = _vectorizable(frame[[ROW, *dict.fromkeys(columns)]], part)
        # The validator that ``Batch.validate`` builds, made directly: the batch it would be called on
        # is loaded (and fingerprinted, hashing every value) again by that validator.
        validator = Validator(batch_definition=_batch_definition(name),
                              batch_parameters={"dataframe": needed}, result_format=RESULT_FORMAT)
        result = validator.validate_expectation_suite(_suite(f"{name}.{number}", part))
        outcomes += [(indexes[outcome.expectation_config.meta["rule"]], outcome) for outcome in result.results]
    for index, outcome in sorted(outcomes, key=lambda pair: pair[0]):
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {outcome.expectation_config.type} on {name} failed to run: "
                               f"{outcome.exception_info.get('exception_message')}")
        if outcome.success:
            continue
        rule = rules[index]
        # Labels and messages read the whole frame (step rules name their step from
        # ``step_index``, which no rule reads).
        for unexpected in outcome.result.get("unexpected_index_list") or []:
            row = int(unexpected[ROW])
            target = parents[row] if parents is not None else row
            label = _label(rule, frame, row)
            if rule.code == "missing_required" and reasons.has(target, label):
                continue
            text = rule.describe(_RowValues(frame, row))
            reasons.add([target], rule.code, label, [f"{label}: {text}" if label else text])


class _RowValues:
    """A row's values by column, read from the frame when asked (what ``Rule.describe`` gets)."""

    def __init__(self, frame: pd.DataFrame, row: int) -> None:
        self.frame, self.row = frame, row

    def __getitem__(self, column: str) -> Any:
        return self.frame.at[self.row, column]


def _vectorizable(frame: pd.DataFrame, rules: Sequence[Rule]) -> pd.DataFrame:
    """The same values in dtypes that pandas (and so GX) checks with vectorized code.

    Text (object columns of str and None) becomes the ``str`` dtype, whose nulls, lengths and
    set membership are computed on Arrow buffers; integers (Int64) become float64, which
    ``ExpectColumnValuesToBeBetween`` compares in one step rather than value by value. Integers
    here come from float64 (``normalize``), so they convert back exactly. Text that a
    multi-column rule reads stays as objects: GX checks those row by row, and a row of Python
    objects is cheaper to build than one of Arrow scalars.
    """
    row_wise = {c for rule in rules for c in getattr(rule.expectation, "column_list", None) or ()}
    converted = {name: column.astype("str") if column.dtype == object else column.astype("float64")
                 for name, column in frame.items()
                 if (column.dtype == object and name not in row_wise) or isinstance(column.dtype, pd.Int64Dtype)}
    return frame.assign(**converted)


def rule_columns(rules: Sequence[Rule]) -> list[str]:
    """The columns the rules' expectations read, in order."""
    return list(dict.fromkeys(c for rule in rules for c in _columns(rule.expectation)))


def _columns(expectation: gxe.Expectation) -> list[str]:
    names = [getattr(expectation, attr, None) for attr in ("column", "column_A", "column_B")]
    return [n for n in names if n] + list(getattr(expectation, "column_list", None) or [])


def _label(rule: Rule, frame: pd.DataFrame, row: int) -> str | None:
    """Labels of step rules name the step: ``steps.tokens`` becomes ``steps[2].tokens``."""
    if rule.field and rule.field.startswith("steps.") and "step_index" in frame.columns:
        return rule.field.replace("steps.", f"steps[{int(frame.at[row, 'step_index'])}].", 1)
    return rule.field
