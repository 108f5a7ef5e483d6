"""Type decoded records column by column, as the contract says, recording why a value fails.

Types are checked here, in pandas, because a Great Expectations pandas suite can only check
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
from collections.abc import Callable, Iterator, Sequence
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
PAYLOAD_SLICE_ROWS = 5_000
# Records looked at before choosing the text fields whose equal values share one object, and the
# most distinct values per record sampled that such a field may have.
SHARE_SAMPLE = 1_000
SHARE_DISTINCT = 0.25
# Integers are typed through float64 into Int64, which holds -2**63 .. 2**63 - 1.
INT64_LIMIT = 2.0**63


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


@dataclass
class Records:
    """Records of one event type, kept as their field values (schema order) rather than dicts.

    A parsed JSON object costs several times its text in memory, and reading it back field by
    field costs a cache miss per value; so each record is read once, right after parsing, and
    dropped. Keys outside the contract are kept apart, for ``extra``. Text fields with few
    distinct values (agents, models, statuses: chosen on the first ``SHARE_SAMPLE`` records)
    keep one object per distinct value, which saves about a third of the values' memory.
    """

    names: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    unknown: dict[int, dict[str, Any]] = field(default_factory=dict)
    shared: list[tuple[int, dict[str, str]]] | None = None  # (field position, its values), once chosen

    def add(self, record: dict[str, Any]) -> None:
        row = tuple(map(record.get, self.names))
        # More keys than non-null known values (plus event_type): some key may be unknown.
        if len(record) - 1 > len(row) - row.count(None):
            unknown = {k: v for k, v in record.items() if k not in self.names and k != "event_type"}
            if unknown:
                self.unknown[len(self.rows)] = unknown
        if self.shared:
            row = self._share(row)
        self.rows.append(row)
        if self.shared is None and len(self.rows) == SHARE_SAMPLE:
            self._choose_shared()

    def take_columns(self) -> Iterator[list[Any]]:
        """Per field, its value in each record (None where missing); the records are emptied.

        Each column is let go once the caller moves to the next, so values that typing turns into
        arrays (numbers, timestamps, nested objects) are freed as it goes.
        """
        columns = [list(values) for values in zip(*self.rows, strict=True)] if self.rows else [[] for _ in self.names]
        self.rows = []
        while columns:
            yield columns.pop(0)

    def _choose_shared(self) -> None:
        """Share the fields whose sampled values are text with few distinct values."""
        self.shared = []
        for position, values in enumerate(zip(*self.rows, strict=True)):
            texts = [v for v in values if v is not None]
            if texts and all(type(v) is str for v in texts) and len(set(texts)) <= SHARE_DISTINCT * len(texts):
                self.shared.append((position, {}))
        if self.shared:
            self.rows = [self._share(row) for row in self.rows]

    def _share(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for position, seen in self.shared or ():
            value = values[position]
            if type(value) is str:
                values[position] = seen.setdefault(value, value)
        return tuple(values)


def normalize(spec: EventSpec, lines: list[SourceLine], records: Records, options: TypingOptions) -> NormalizedBatch:
    """A typed frame (flat columns, ``extra``, ``partition_date``) for records of one event type.

    A column whose values all already have the field's JSON type is taken as is (``_as_typed``);
    any other goes through the general typing, on the column as ``DataFrame.from_records`` infers
    it (``_inferred``), which explains each failure.
    """
    n_rows = len(records.rows)
    reasons = ReasonLog()
    columns: dict[str, pd.Series] = {ROW: pd.Series(np.arange(n_rows))}
    extra: dict[int, dict[str, Any]] = defaultdict(dict)
    steps = None
    for f, values in zip(spec.fields, records.take_columns(), strict=True):
        if f.kind == "object":
            columns.update(_object_columns(values, f, options, reasons, extra))
        elif f.kind == "array":
            steps = _step_frame(values, f, options, reasons)
            columns[f.name] = _canonical_steps(steps, n_rows)
        else:
            columns[f.name] = _typed_column(values, lambda values=values: _inferred(values), f, f.name, options,
                                            reasons)
            if f.default is not None:
                columns[f.name] = columns[f.name].fillna(f.default)
    for name in dict.fromkeys(k for unknown in records.unknown.values() for k in unknown):
        values = [None] * n_rows
        for row, unknown in records.unknown.items():
            values[row] = unknown.get(name)
        inferred = _inferred(values)
        for row, value in inferred[inferred.notna()].items():
            extra[int(row)][name] = value
    frame = pd.DataFrame(columns)
    frame[EXTRA] = pd.Series([_sorted(extra[i]) if i in extra else None for i in range(n_rows)], dtype=object)
    frame[PARTITION_DATE] = frame[spec.partition_field].dt.floor("D")
    return NormalizedBatch(spec=spec, frame=frame, lines=lines, reasons=reasons, steps=steps)


def _inferred(values: list[Any]) -> pd.Series:
    """The column as ``DataFrame.from_records`` infers it from records holding ``values``.

    Missing keys and nulls are alike to the inference and to typing (both are absent values), so
    the column is inferred from the values alone; text columns skip the inference (they become
    the ``str`` dtype) and an all-null column is the object column of None that an absent field gets.
    """
    kinds = _kinds(values)
    if kinds == {str}:
        return pd.Series(values, dtype="str")
    if not kinds:
        return pd.Series(values, dtype=object)
    return pd.DataFrame.from_records([(v,) for v in values], columns=["value"])["value"]


def _kinds(values: list[Any]) -> set[type]:
    """The types of the non-null values."""
    return set(map(type, values)) - {type(None)}


def _typed_column(values: list[Any], general: Callable[[], pd.Series], f: FieldSpec, label: str,
                  options: TypingOptions, reasons: ReasonLog) -> pd.Series:
    """``values`` typed: as they are when they already fit, else ``general()`` converted by ``type_column``."""
    typed = None if options.tabular else _as_typed(values, f)
    return typed if typed is not None else type_column(general(), f, label, options, reasons)


def _as_typed(values: list[Any], f: FieldSpec) -> pd.Series | None:
    """The typed column when every value is null or already of the field's type, else None.

    This is what ``convert`` gives for such values (text kept, numbers as float64 or rounded to
    Int64) without its per-value checks. None for values that need converting (timestamps, for
    one) or that would fail (text with a NUL character, numbers not finite, fractional or too large
    integers): the general path types and explains those.
    """
    kinds = _kinds(values)
    if f.kind == "string" and kinds <= {str}:
        return None if "\x00" in "".join(filter(None, values)) else pd.Series(values, dtype=object)
    if f.kind in ("integer", "number") and kinds <= {int, float}:
        try:
            numbers = np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64, count=len(values))
        except OverflowError:  # an integer beyond float64's range
            return None
        present = numbers[~np.isnan(numbers)]
        if not (np.all(np.abs(present) < INT64_LIMIT) and (f.kind == "number" or np.all(present % 1 == 0))):
            return None
        typed = pd.Series(numbers)
        return typed.round().astype("Int64") if f.kind == "integer" else typed
    return None


def _sorted(mapping: dict[str, Any]) -> dict[str, Any]:
    """Keys in order, nested too, so that equal content serializes (and hashes) equally."""
    return {k: _sorted(v) if isinstance(v, dict) else v for k, v in sorted(mapping.items())}


@dataclass
class Failure:
    """Values of a column that failed its conversion for one reason: which, the code, and how to word one."""

    bad: pd.Series
    code: str
    explain: Callable[[Any], str]


@dataclass
class TypedColumn:
    """A column converted to its field's kind, and which values failed the conversion (and why)."""

    values: pd.Series
    failures: list[Failure]

    def record(self, raw: pd.Series, reasons: ReasonLog, rows: Sequence[int], labels: Sequence[str]) -> None:
        """Add a reason for each failed value; ``rows`` and ``labels`` are aligned with ``raw``."""
        for failure in self.failures:
            positions = np.flatnonzero(failure.bad.to_numpy())
            reasons.add([rows[i] for i in positions], failure.code, [labels[i] for i in positions],
                        [f"{labels[i]}: {failure.explain(raw.iloc[i])}" for i in positions])


def type_column(values: pd.Series, f: FieldSpec, label: str, options: TypingOptions,
                reasons: ReasonLog) -> pd.Series:
    """``values`` converted to the field's kind; values of the wrong type become null with a reason."""
    typed = convert(values, f, options)
    typed.record(values, reasons, values.index.tolist(), [label] * len(values))
    return typed.values


def convert(values: pd.Series, f: FieldSpec, options: TypingOptions) -> TypedColumn:
    typers = {"string": _string_column, "integer": _number_column, "number": _number_column,
              "timestamp": _timestamp_column}
    typed, *failures = typers[f.kind](values, f, options)
    return TypedColumn(typed, failures)


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
    return typed, Failure(bad, "invalid_type", lambda v: (
        "text contains a NUL character" if isinstance(v, str) else f"expected text, got {_show(v)}"))


def _number_column(values: pd.Series, f: FieldSpec, options: TypingOptions):
    """Numbers as float64, integers as Int64 (through float64).

    A number that these cannot hold (an integer outside -2**63 .. 2**63 - 1, ``1e300`` too, or an
    integer literal beyond float64) has the right type but is out of range; the other failures are
    of type. The bound is checked on the float64 value, so an integer just below 2**63 that rounds
    up to it counts as out of range too.
    """
    present = values.notna()
    kind = "an integer" if f.kind == "integer" else "a number"
    oversized = pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        bad = pd.Series(False, index=values.index)
    else:
        is_bool = _is_instance(values, bool)
        is_text = _is_instance(values, str)
        if values.dtype == object:  # only mixed values hold ints that float64 cannot
            oversized = values.map(_beyond_float64).astype(bool)
        candidates = values.where(~is_bool & ~oversized & (options.tabular | ~is_text))
        numbers = pd.to_numeric(candidates, errors="coerce").astype("float64")
        bad = present & numbers.isna() & ~oversized
    finite = np.isfinite(numbers.fillna(0.0))
    bad = bad | (present & ~finite)
    too_large = oversized
    if f.kind == "integer":
        bad = bad | (present & finite & (numbers.fillna(0.0) % 1 != 0))
        too_large = too_large | (present & ~bad & ((numbers >= INT64_LIMIT) | (numbers < -INT64_LIMIT)))
    numbers = numbers.where(~bad & ~too_large)
    typed = numbers.round().astype("Int64") if f.kind == "integer" else numbers
    limits = "the 64-bit integer range" if f.kind == "integer" else "the 64-bit float range"
    return (typed, Failure(bad, "invalid_type", lambda v: f"expected {kind}, got {_show(v)}"),
            Failure(too_large, "out_of_range", lambda v: f"{_show(v)} is outside {limits}"))


def _beyond_float64(value: Any) -> bool:
    """An integer literal too large for float64 (JSON parses ``1`` followed by 400 zeros as such an int)."""
    if type(value) is not int:
        return False
    try:
        float(value)
    except OverflowError:
        return True
    return False


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
    return (typed, Failure(bad, "invalid_timestamp", lambda v: f"expected an RFC 3339 timestamp, got {_show(v)}"),
            Failure(without_offset, "timestamp_without_offset", lambda v: (
                f"{_show(v)} has no UTC offset (add Z or +HH:MM, or set PERF_DEFAULT_TIMEZONE)")))


def _object_columns(values: list[Any], f: FieldSpec, options: TypingOptions, reasons: ReasonLog,
                    extra: dict[int, dict[str, Any]]) -> dict[str, pd.Series]:
    """Flatten an object field into ``<field>_<child>`` columns; unknown keys go to ``extra``."""
    if options.tabular or not _kinds(values) <= {dict}:
        return _object_columns_general(_inferred(values), f, options, reasons, extra)
    known = {child.name for child in f.children}
    for row, mapping in enumerate(values):
        unknown = {k: v for k, v in mapping.items() if k not in known} if mapping else None
        if unknown:
            extra[row][f.name] = unknown
    columns = {}
    for child in f.children:
        child_values = [None if mapping is None else mapping.get(child.name) for mapping in values]

        def general(child: FieldSpec = child) -> pd.Series:
            column = _inferred(values)
            return _child_values(column[column.notna()], column.index, child.name)

        columns[f"{f.name}_{child.name}"] = _typed_column(child_values, general, child, f"{f.name}.{child.name}",
                                                          options, reasons)
    return columns


def _object_columns_general(values: pd.Series, f: FieldSpec, options: TypingOptions, reasons: ReasonLog,
                            extra: dict[int, dict[str, Any]]) -> dict[str, pd.Series]:
    """``_object_columns`` for values that are not all objects (JSON text, from any format, or wrong types)."""
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
    return {f"{f.name}_{child.name}": type_column(_child_values(objects, values.index, child.name), child,
                                                 f"{f.name}.{child.name}", options, reasons)
            for child in f.children}


def _child_values(objects: pd.Series, index: pd.Index, name: str) -> pd.Series:
    """The values of key ``name`` of the dicts in ``objects``, None elsewhere in ``index``."""
    child_values = pd.Series(None, index=index, dtype=object)
    child_values.loc[objects.index] = objects.map(lambda m: m.get(name))
    return child_values


def _step_frame(values: list[Any], f: FieldSpec, options: TypingOptions, reasons: ReasonLog) -> pd.DataFrame:
    """One typed row per list item: ``_row`` (its own), ``_parent`` (the task's row) and ``step_index``."""
    if options.tabular or not _kinds(values) <= {list}:
        return _step_frame_general(_inferred(values), f, options, reasons)
    return _steps([(row, entries) for row, entries in enumerate(values) if entries is not None], f, options, reasons)


def _step_frame_general(values: pd.Series, f: FieldSpec, options: TypingOptions, reasons: ReasonLog) -> pd.DataFrame:
    """``_step_frame`` for values that are not all lists (JSON text, from any format, or wrong types)."""
    present = values[values.notna()].map(_json_or_original)  # CSV and Parquet carry lists as JSON text
    is_list = _is_instance(present, list)
    bad = present[~is_list]
    reasons.add(bad.index.tolist(), "invalid_type", f.name, [f"{f.name}: expected a list, got {_show(v)}" for v in bad])
    return _steps(list(present[is_list].items()), f, options, reasons)


def _steps(lists: list[tuple[int, list[Any]]], f: FieldSpec, options: TypingOptions,
           reasons: ReasonLog) -> pd.DataFrame:
    """The step frame of (row, list) pairs; items that are not objects get a reason."""
    items: list[dict[str, Any]] = []
    parents: list[int] = []
    positions: list[int] = []
    for row, entries in lists:
        for index, entry in enumerate(entries):
            if isinstance(entry, dict):
                items.append(entry)
                parents.append(int(row))
                positions.append(index)
            else:
                reasons.add([row], "invalid_type", f"{f.name}[{index}]",
                            [f"{f.name}[{index}]: expected an object, got {_show(entry)}"])
    steps = pd.DataFrame({ROW: pd.RangeIndex(len(items)), PARENT: pd.Series(parents, dtype="int64"),
                          "step_index": pd.Series(positions, dtype="int64")})
    for child in f.children:
        child_values = [item.get(child.name) for item in items]
        typed = None if options.tabular else _as_typed(child_values, child)
        if typed is None:
            raw = _inferred(child_values)
            converted = convert(raw, child, options)
            labels = [f"{f.name}[{index}].{child.name}" for index in positions]
            converted.record(raw, reasons, parents, labels)
            typed = converted.values.reset_index(drop=True)
        steps[child.name] = typed
    return steps


def _canonical_steps(steps: pd.DataFrame, n_rows: int) -> pd.Series:
    """Per parent row, its steps as a list of plain dicts (ISO timestamps), or None.

    Each dict holds what a JSON round trip of the step row gives: Python ints, floats and text,
    None for nulls, timestamps as ``_iso_text`` writes them.
    """
    result: list[list[dict[str, Any]] | None] = [None] * n_rows
    if steps is None or steps.empty:
        return pd.Series(result, dtype=object)
    names = [c for c in steps.columns if c not in (ROW, PARENT)]
    values = zip(*(_plain_values(steps[name]) for name in names), strict=True)
    for parent, row in zip(steps[PARENT].tolist(), values, strict=True):
        if result[parent] is None:
            result[parent] = []
        result[parent].append(dict(zip(names, row, strict=True)))
    return pd.Series(result, dtype=object)


def _plain_values(column: pd.Series) -> list[Any]:
    """The column's values as JSON-ready Python objects: None for nulls, ISO text for timestamps."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return _iso_text(column).tolist()
    return column.astype(object).where(column.notna(), None).tolist()


def _iso_text(column: pd.Series) -> pd.Series:
    """UTC timestamps as ``to_json(date_format="iso", date_unit="us")`` writes them, None for NaT."""
    stamps = column.to_numpy(dtype="datetime64[us]")
    text = np.char.add(np.datetime_as_string(stamps, unit="us"), "Z").astype(object)
    text[np.isnat(stamps)] = None
    return pd.Series(text, index=column.index, dtype=object)


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


def payload_slices(frame: pd.DataFrame, columns: list[str]) -> Iterator[list[str]]:
    """One canonical JSON text per row, a slice of rows at a time (bounding the text in memory).

    Fixed column order, UTC ISO timestamps, 15 significant digits: the same event sent as JSON,
    CSV or Parquet, or with another UTC offset, gives the same text, so its hash identifies
    identical duplicates across files and formats.
    """
    stamps = [c for c in columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    for start in range(0, len(frame), PAYLOAD_SLICE_ROWS):
        data = frame.iloc[start : start + PAYLOAD_SLICE_ROWS][columns]
        yield _records_text(data.assign(**{c: _iso_text(data[c]) for c in stamps}))


def _records_text(data: pd.DataFrame) -> list[str]:
    """Each row's JSON object, as ``to_json(orient="records", lines=True)`` writes it.

    The records array is split where one object ends and the next begins with the first column's
    key. Text inside a value can hold that sequence only within a nested object; such a row splits
    into more pieces than there are rows, and then the line-delimited form is used instead.
    """
    options = {"date_format": "iso", "date_unit": "us", "double_precision": 15, "force_ascii": False}
    key = "{" + json.dumps(data.columns[0]) + ":"
    text = data.to_json(orient="records", **options)
    if text.startswith("[" + key) and text.endswith("}]"):
        pieces = text[len(key) + 1 : -2].split("}," + key)
        if len(pieces) == len(data):
            return [key + piece + "}" for piece in pieces]
    return data.to_json(orient="records", lines=True, **options).rstrip("\n").split("\n")


def content_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
