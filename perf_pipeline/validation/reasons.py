"""Why a row is quarantined: every reason code the pipeline can give, with its meaning.

A quarantined row carries every reason found, each as ``{code, field, message}``; the message
names the field and the offending value so that the person who emitted the log can fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REASON_CODES: dict[str, str] = {
    "not_utf8": "the line is not valid UTF-8",
    "invalid_json": "the line is not valid JSON",
    "truncated_line": "the file's last line ends without a newline and is not valid JSON (a cut-off write)",
    "not_an_object": "the line is valid JSON but not an object",
    "malformed_csv_row": "the CSV row has a different number of cells than the header",
    "missing_event_type": "the event has no event_type",
    "unknown_event_type": "event_type is not task, feedback, peer_evaluation or message",
    "unsupported_in_format": "CSV and Parquet files carry task events only",
    "missing_required": "a required field is missing or null",
    "empty_value": "a field that must not be empty is an empty string",
    "invalid_type": "a field's value has the wrong type (e.g. text where an integer belongs)",
    "out_of_range": "a number is outside its allowed range",
    "invalid_enum": "a value is not one of the allowed values",
    "invalid_timestamp": "a timestamp is not RFC 3339",
    "timestamp_without_offset": "a timestamp has no UTC offset and no default time zone is configured",
    "timestamp_order": "completed_at is before assigned_at or started_at",
    "self_review": "a peer evaluation where the evaluator is the evaluated agent",
    "no_scores": "a peer evaluation without any of accuracy, relevance, completeness",
    "outside_partitions": "the event's date is before the first partition or in the future",
    "conflicting_duplicate": "another event has the same id but different content; every copy is quarantined",
}


@dataclass(frozen=True)
class Reason:
    """One reason a row failed: a code from ``REASON_CODES``, the field, a readable message."""

    code: str
    field: str | None
    message: str

    def __post_init__(self) -> None:
        if self.code not in REASON_CODES:
            raise ValueError(f"unknown quarantine reason code {self.code!r}")

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)
