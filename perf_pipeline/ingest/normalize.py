"""Type decoded records column by column, as the contract says, recording why a value fails.

Types are checked here, in pandas, because a Great Expectations pandas suite can only judge
values that already have a type; the rules on typed values (required, ranges, enums, order,
uniqueness) are the suite's job (``perf_pipeline.validation.suites``). Work is vectorized per
column: Python-level loops run only over the values that need them (mixed-type columns,
nested objects, lists of steps).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from perf_pipeline.contract import EventSpec, FieldSpec
from perf_pipeline.ingest.readers import SourceLine
from perf_pipeline.validation.reasons import Reason

ROW = "_row"
PARENT = "_parent"
PARTITION_DATE = "partition_date"
EXTRA = "extra"
OFFSET_PATTERN = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


@dataclass
class ReasonLog:
    """Reasons found so far, by row position; a row may collect several."""

    by_row: dict[int, list[Reason]] = field(default_factory=lambda: defaultdict(list))

    def add(self, rows: Sequence[int], code: str, fields: Sequence[str | None] | str | None,
            messages: Sequence[str]) -> None:
        labels = [fields] * len(rows) if fields is None or isinstance(fields, str) else fields
        for row, label, message in zip(rows, labels, messages, strict=True):
            self.by_row[int(row)].append(Reason(code, label, message))

    def has(self, row: int, field_name: str) -> bool:
        return any(r.field == field_name for r in self.by_row.get(row, ()))

    def failed_rows(self) -> set[int]:
        return {row for row, reasons in self.by_row.items() if reasons}


@dataclass
class NormalizedBatch:
    """Records of one event type, typed: a frame aligned with its source lines."""

    spec: EventSpec
    frame: pd.DataFrame
    lines: list[SourceLine]
    reasons: ReasonLog
    steps: pd.DataFrame | None = None


@dataclass(frozen=True)
class TypingOptions:
    tabular: bool = False  # values arrived as text (CSV): numbers are parsed from it
    default_timezone: str | None = None


def normalize(spec: EventSpec, lines: list[SourceLine], options: TypingOptions) -> NormalizedBatch:
    """A typed frame (flat columns, ``extra``, ``partition_date``) for records of one event type."""
    raw = pd.DataFrame.from_records([line.record for line in lines])
    raw.index = pd.RangeIndex(len(raw))
    reasons = ReasonLog()
    columns: dict[str, pd.Series] = {ROW: pd.Series(np.arange(len(raw)))}
    extra: dict[int, dict[str, Any]] = defaultdict(dict)
    steps = None
    for f in spec.fields:
        values = raw[f.name] if f.name in raw.columns else pd.Series([None] * len(raw), dtype=object)
        if f.kind == "object":
            columns.update(_object_columns(values, f, options, reasons, extra))
        elif f.kind == "array":
            steps = _step_frame(values, f, options, reasons)
            columns[f.name] = _canonical_steps(steps, len(raw))
        else:
            columns[f.name] = type_column(values, f, f.name, options, reasons)
            if f.default is not None:
                columns[f.name] = columns[f.name].fillna(f.default)
    known = {f.name for f in spec.fields} | {"event_type"}
    for name in (c for c in raw.columns if c not in known):
        present = raw[name].notna()
        for row, value in raw.loc[present, name].items():
            extra[int(row)][name] = value
    frame = pd.DataFrame(columns)
    frame[EXTRA] = pd.Series([_sorted(extra[i]) if i in extra else None for i in range(len(raw))], dtype=object)
    frame[PARTITION_DATE] = frame[spec.partition_field].dt.floor("D")
    return NormalizedBatch(spec=spec, frame=frame, lines=lines, reasons=reasons, steps=steps)


def _sorted(mapping: dict[str, Any]) -> dict[str, Any]:
    """Keys in order, nested too, so that equal content serializes (and hashes) equally."""
    return {k: _sorted(v) if isinstance(v, dict) else v for k, v in sorted(mapping.items())}


@dataclass
class TypedColumn:
    """A column converted to its field's kind, and which values failed the conversion."""

    values: pd.Series
    bad: pd.Series
    code: str
    explain: Callable[[Any], str]

    def record(self, raw: pd.Series, reasons: ReasonLog, rows: Sequence[int], labels: Sequence[str]) -> None:
        """Add a reason for each failed value; ``rows`` and ``labels`` are aligned with ``raw``."""
        positions = np.flatnonzero(self.bad.to_numpy())
        reasons.add([rows[i] for i in positions], self.code, [labels[i] for i in positions],
                    [f"{labels[i]}: {self.explain(raw.iloc[i])}" for i in positions])


def type_column(values: pd.Series, f: FieldSpec, label: str, options: TypingOptions,
                reasons: ReasonLog) -> pd.Series:
    """``values`` converted to the field's kind; values of the wrong type become null with a reason."""
    typed = convert(values, f, options)
    typed.record(values, reasons, values.index.tolist(), [label] * len(values))
    return typed.values


def convert(values: pd.Series, f: FieldSpec, options: TypingOptions) -> TypedColumn:
    typers = {"string": _string_column, "integer": _number_column, "number": _number_column,
              "timestamp": _timestamp_column}
    return TypedColumn(*typers[f.kind](values, f, options))


def _is_instance(values: pd.Series, kinds: type | tuple[type, ...]) -> pd.Series:
    return values.map(lambda v: isinstance(v, kinds)).astype(bool)


def _string_column(values: pd.Series, f: FieldSpec, options: TypingOptions):
    present = values.notna()
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        text = values
        bad = pd.Series(False, index=values.index)
    else:
        is_text = _is_instance(values, str)
        text = values.where(is_text)
        bad = present & ~is_text
    # PostgreSQL text cannot hold NUL; such a value would fail the whole load later.
    has_nul = text.str.contains("\x00", regex=False, na=False).astype(bool)
    bad = bad | has_nul
    typed = values.where(present & ~bad, None).astype(object)
    return typed, bad, "invalid_type", lambda v: (
        "text contains a NUL character" if isinstance(v, str) else f"expected text, got {_show(v)}")


def _number_column(values: pd.Series, f: FieldSpec, options: TypingOptions):
    present = values.notna()
    kind = "an integer" if f.kind == "integer" else "a number"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        bad = pd.Series(False, index=values.index)
    else:
        is_bool = _is_instance(values, bool)
        is_text = _is_instance(values, str)
        candidates = values.where(~is_bool & (options.tabular | ~is_text))
        numbers = pd.to_numeric(candidates, errors="coerce").astype("float64")
        bad = present & numbers.isna()
    finite = np.isfinite(numbers.fillna(0.0))
    bad = bad | (present & ~finite)
    if f.kind == "integer":
        bad = bad | (present & finite & (numbers.fillna(0.0) % 1 != 0))
    numbers = numbers.where(~bad)
    typed = numbers.round().astype("Int64") if f.kind == "integer" else numbers
    return typed, bad, "invalid_type", lambda v: f"expected {kind}, got {_show(v)}"


def _timestamp_column(values: pd.Series, f: FieldSpec, options: TypingOptions):
    present = values.notna()
    if not pd.api.types.is_string_dtype(values) or values.dtype == object:
        values = values.map(lambda v: v.isoformat() if isinstance(v, dt.datetime) else v)
    is_text = present & _is_instance(values, str) if values.dtype == object else present
    text = values.where(is_text).astype("str")
    has_offset = text.str.contains(OFFSET_PATTERN, regex=True, na=False)
    typed = pd.to_datetime(text.where(has_offset), format="ISO8601", utc=True, errors="coerce")
    naive = is_text & ~has_offset
    without_offset = pd.Series(False, index=values.index)
    if naive.any():
        local = pd.to_datetime(text.where(naive), format="ISO8601", errors="coerce")
        if options.default_timezone:
            localized = local.dt.tz_localize(options.default_timezone, ambiguous="NaT", nonexistent="NaT")
            typed = typed.fillna(localized.dt.tz_convert("UTC"))
        else:
            without_offset = naive & local.notna()
    bad = present & typed.isna() & ~without_offset
    typed = typed.astype("datetime64[us, UTC]")
    if without_offset.any():
        return typed, without_offset, "timestamp_without_offset", lambda v: (
            f"{_show(v)} has no UTC offset (add Z or +HH:MM, or set PERF_DEFAULT_TIMEZONE)")
    return typed, bad, "invalid_timestamp", lambda v: f"expected an RFC 3339 timestamp, got {_show(v)}"


def _object_columns(values: pd.Series, f: FieldSpec, options: TypingOptions, reasons: ReasonLog,
                    extra: dict[int, dict[str, Any]]) -> dict[str, pd.Series]:
    """Flatten an object field into ``<field>_<child>`` columns; unknown keys go to ``extra``."""
    present = values[values.notna()].map(_json_or_original)  # CSV and Parquet carry objects as JSON text
    is_dict = _is_instance(present, dict)
    bad = present[~is_dict]
    reasons.add(bad.index.tolist(), "invalid_type", f.name,
                [f"{f.name}: expected an object, got {_show(v)}" for v in bad])
    objects = present[is_dict]
    known = {child.name for child in f.children}
    for row, mapping in objects.items():
        unknown = {k: v for k, v in mapping.items() if k not in known}
        if unknown:
            extra[int(row)][f.name] = unknown
    columns = {}
    for child in f.children:
        child_values = pd.Series(None, index=values.index, dtype=object)
        child_values.loc[objects.index] = objects.map(lambda m, name=child.name: m.get(name))
        columns[f"{f.name}_{child.name}"] = type_column(child_values, child, f"{f.name}.{child.name}", options, reasons)
    return columns


def _step_frame(values: pd.Series, f: FieldSpec, options: TypingOptions, reasons: ReasonLog) -> pd.DataFrame:
    """One typed row per list item: ``_row`` (its own), ``_parent`` (the task's row) and ``step_index``."""
    present = values[values.notna()].map(_json_or_original)  # CSV and Parquet carry lists as JSON text
    is_list = _is_instance(present, list)
    bad = present[~is_list]
    reasons.add(bad.index.tolist(), "invalid_type", f.name, [f"{f.name}: expected a list, got {_show(v)}" for v in bad])
    items: list[dict[str, Any]] = []
    parents: list[int] = []
    positions: list[int] = []
    for row, entries in present[is_list].items():
        for index, entry in enumerate(entries):
            if isinstance(entry, dict):
                items.append(entry)
                parents.append(int(row))
                positions.append(index)
            else:
                reasons.add([row], "invalid_type", f"{f.name}[{index}]",
                            [f"{f.name}[{index}]: expected an object, got {_show(entry)}"])
    raw = pd.DataFrame.from_records(items) if items else pd.DataFrame()
    raw.index = pd.RangeIndex(len(items))
    steps = pd.DataFrame({ROW: pd.RangeIndex(len(items)), PARENT: pd.Series(parents, dtype="int64"),
                          "step_index": pd.Series(positions, dtype="int64")})
    for child in f.children:
        child_values = raw[child.name] if child.name in raw.columns else pd.Series([None] * len(items), dtype=object)
        typed = convert(child_values, child, options)
        labels = [f"{f.name}[{index}].{child.name}" for index in positions]
        typed.record(child_values, reasons, parents, labels)
        steps[child.name] = typed.values.reset_index(drop=True)
    return steps


def _canonical_steps(steps: pd.DataFrame, n_rows: int) -> pd.Series:
    """Per parent row, its steps as a list of plain dicts (ISO timestamps), or None."""
    result: list[list[dict[str, Any]] | None] = [None] * n_rows
    if steps is None or steps.empty:
        return pd.Series(result, dtype=object)
    records = json.loads(steps.to_json(orient="records", date_format="iso", date_unit="us", double_precision=15))
    for record in records:
        del record[ROW]
        parent = record.pop(PARENT)
        if result[parent] is None:
            result[parent] = []
        result[parent].append(record)
    return pd.Series(result, dtype=object)


def _json_or_original(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def canonical_payloads(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """One canonical JSON text per row: fixed column order, UTC ISO timestamps, 15 significant digits.

    The same event sent as JSON, CSV or Parquet, or with another UTC offset, gives the same text,
    so its hash identifies identical duplicates across files and formats.
    """
    if frame.empty:
        return []
    text = frame[columns].to_json(orient="records", lines=True, date_format="iso", date_unit="us",
                                  double_precision=15, force_ascii=False)
    return text.rstrip("\n").split("\n")


def content_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
