"""The shipped JSON Schema is a valid contract: emitters' well-formed events pass it, broken ones do not,
and the field specs the pipeline derives from it match it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from perf_pipeline.contract import event_specs, load_schema
from perf_pipeline.synthetic.generator import generate_logs
from perf_pipeline_tests.events_factory import DROP, feedback, message, peer_evaluation, task


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("event", [task(), feedback(), peer_evaluation(), message()],
                         ids=["task", "feedback", "peer_evaluation", "message"])
def test_well_formed_events_pass_the_schema(event: dict) -> None:
    validator().validate(event)


@pytest.mark.parametrize("event", [task(user_rating=7), task(status="done"), task(agent_id=DROP),
                                   message(kind="gossip"), peer_evaluation(accuracy=1.5)])
def test_broken_events_fail_the_schema(event: dict) -> None:
    assert list(validator().iter_errors(event))


def test_generated_well_formed_events_pass_the_schema(tmp_path: Path) -> None:
    import datetime as dt

    summary = generate_logs(tmp_path, start=dt.date(2026, 3, 1), days=2, agents=4, tasks_per_day=40,
                            malformed_rate=0.0)
    check = validator()
    lines = [json.loads(line) for path in summary.files for line in path.read_text().splitlines()]
    assert len(lines) == sum(summary.events.values())
    for event in lines:
        check.validate({k: v for k, v in event.items() if k != "trace_id"})


def test_specs_follow_the_schema() -> None:
    schema = load_schema()["$defs"]
    for event_type, spec in event_specs().items():
        properties = set(schema[event_type]["properties"]) - {"event_type"}
        assert {f.name for f in spec.fields} == properties
        assert {f.name for f in spec.fields if f.required} == set(schema[event_type]["required"]) - {"event_type"}
        assert spec.by_name[spec.partition_field].kind == "timestamp"
        assert spec.by_name[spec.id_field].required
