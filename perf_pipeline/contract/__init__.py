"""The input contract: field specs derived from ``task_log.schema.json``.

The JSON Schema is the one place where the shape of an event is written down. Emitters can
validate against it directly; the pipeline reads it here into ``EventSpec`` objects, from which
the parser types each field and the Great Expectations suites take their rules. A new field or
a changed range is therefore one edit to the schema file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

FieldKind = Literal["string", "integer", "number", "timestamp", "object", "array"]
SCHEMA_FILE = "task_log.schema.json"


@dataclass(frozen=True)
class FieldSpec:
    """One field of an event: its kind and the rules the validation suite enforces on it."""

    name: str
    kind: FieldKind
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    default: Any = None
    children: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True)
class EventSpec:
    """One event type: its id and partition fields and its fields in schema order."""

    event_type: str
    id_field: str
    partition_field: str
    fields: tuple[FieldSpec, ...]
    description: str = ""
    by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def names(self) -> list[str]:
        """The field names, in schema order."""
        return [f.name for f in self.fields]



@cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema document shipped in the package."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def event_specs() -> dict[str, EventSpec]:
    """Every event type of the contract, keyed by ``event_type``."""
    schema = load_schema()
    defs = schema["$defs"]
    specs: dict[str, EventSpec] = {}
    for ref in schema["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        node = defs[name]
        required = set(node.get("required", []))
        fields = tuple(
            _field_spec(prop, body, name_required=prop in required, defs=defs)
            for prop, body in node["properties"].items()
            if prop != "event_type"
        )
        specs[name] = EventSpec(
            event_type=name,
            id_field=node["x-id-field"],
            partition_field=node["x-partition-field"],
            fields=fields,
            description=node.get("description", ""),
        )
    return specs


def _resolve(body: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and unwrap ``anyOf: [X, null]`` into X."""
    if "$ref" in body:
        merged = dict(defs[body["$ref"].rsplit("/", 1)[1]])
        merged.update({k: v for k, v in body.items() if k != "$ref"})
        return _resolve(merged, defs)
    if "anyOf" in body:
        options = [o for o in body["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported anyOf in contract: {body}")
        merged = dict(_resolve(options[0], defs))
        merged.update({k: v for k, v in body.items() if k != "anyOf"})
        return merged
    return body


def _kind(body: dict[str, Any]) -> FieldKind:
    declared = body.get("type")
    types = [declared] if isinstance(declared, str) else [t for t in (declared or []) if t != "null"]
    if body.get("format") == "date-time":
        return "timestamp"
    if len(types) != 1:
        raise ValueError(f"contract field needs exactly one non-null type: {body}")
    return types[0]


def _field_spec(name: str, body: dict[str, Any], *, name_required: bool, defs: dict[str, Any]) -> FieldSpec:
    body = _resolve(body, defs)
    kind = _kind(body)
    enum = body.get("enum")
    children: tuple[FieldSpec, ...] = ()
    if kind == "object":
        child_required = set(body.get("required", []))
        children = tuple(
            _field_spec(child, child_body, name_required=child in child_required, defs=defs)
            for child, child_body in body.get("properties", {}).items()
        )
    elif kind == "array":
        item = _resolve(body.get("items", {}), defs)
        item_required = set(item.get("required", []))
        children = tuple(
            _field_spec(child, child_body, name_required=child in item_required, defs=defs)
            for child, child_body in item.get("properties", {}).items()
        )
    return FieldSpec(
        name=name,
        kind=kind,
        required=name_required,
        minimum=body.get("minimum"),
        maximum=body.get("maximum"),
        enum=tuple(v for v in enum if v is not None) if enum else None,
        min_length=body.get("minLength"),
        default=body.get("default"),
        children=children,
    )
