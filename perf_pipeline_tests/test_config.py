"""The user's configuration files: merged over the defaults, and every mistake named with its file,
line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from perf_pipeline.aggregates.config import load_aggregates_config
from perf_pipeline.config import MAX_WINDOW_DAYS, ConfigError
from perf_pipeline.scoring.config import load_scoring_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_user_file_changes_only_its_keys(tmp_path: Path) -> None:
    config = load_aggregates_config(write(tmp_path, "windows: [3, 14]\nprovider_ranking:\n  min_tasks: 9\n"))
    defaults = load_aggregates_config()
    assert config.windows == [3, 14] and config.provider_ranking.min_tasks == 9
    assert config.provider_ranking.window_days == defaults.provider_ranking.window_days == 30
    assert config.anomaly_threshold == defaults.anomaly_threshold


def test_the_environment_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERF_AGGREGATES_CONFIG", str(write(tmp_path, "min_points: 8\n")))
    assert load_aggregates_config().min_points == 8


def test_an_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "windows: [7, 30]\nprovider_ranking:\n  window_days: 30\n  min_tasks: 0\n")
    with pytest.raises(ConfigError) as error:
        load_aggregates_config(path)
    assert str(error.value).startswith(f"{path}: line 4, provider_ranking.min_tasks: ")
    with pytest.raises(ConfigError, match=r"line 3, provider_ranking\.colour: Extra inputs"):
        load_aggregates_config(write(tmp_path, "windows: [7]\nprovider_ranking:\n  colour: red\n"))


def test_windows_cannot_reach_past_the_partition_mappings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"longer than {MAX_WINDOW_DAYS} days"):
        load_aggregates_config(write(tmp_path, f"windows: [7, {MAX_WINDOW_DAYS + 1}]\n"))
    with pytest.raises(ConfigError, match=r"line 2, peer_review\.leniency_days"):
        load_scoring_config(write(tmp_path, f"peer_review:\n  leniency_days: {MAX_WINDOW_DAYS + 1}\n"))


def test_a_scoring_file_with_the_old_aggregates_section_says_where_it_went(tmp_path: Path) -> None:
    path = write(tmp_path, "overall:\n  weights: {quality: 1.0}\naggregates:\n  windows: [7]\n")
    with pytest.raises(ConfigError) as error:
        load_scoring_config(path)
    assert str(error.value).startswith(f"{path}: line 3, aggregates: this section moved to ")
    assert "PERF_AGGREGATES_CONFIG" in str(error.value)


@pytest.mark.parametrize("text, expected", [
    ("windows: [7\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_a_file_that_is_not_a_mapping_is_named(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as error:
        load_aggregates_config(path)
    assert str(path) in str(error.value)


def test_a_missing_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERF_AGGREGATES_CONFIG", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(ConfigError, match=r"nowhere.yaml \(from PERF_AGGREGATES_CONFIG\): cannot read"):
        load_aggregates_config()


def test_an_alert_rule_is_named_in_its_errors(tmp_path: Path) -> None:
    from perf_pipeline.aggregates.config import load_aggregates_config as aggregates
    from perf_pipeline.alerts.config import load_alerts_config, unfed_rules

    path = write(tmp_path, "rules:\n  - name: slow\n    severity: warning\n    entity_types: [agent]\n"
                           "    window_days: 7\n    condition: {kind: threshold, metric: p95_response_time_ms}\n")
    with pytest.raises(ConfigError, match=r"line 6, rules\[slow\]\.condition\.threshold: Value error, give exactly"):
        load_alerts_config(path)
    path = write(tmp_path, "rules:\n  - name: odd\n    severity: warning\n    entity_types: [provider_task_type]\n"
                           "    condition: {kind: anomaly, metrics: [vibes]}\n  - name: weekly\n    severity: warning\n"
                           "    entity_types: [agent]\n    window_days: 14\n"
                           "    condition: {kind: trend, metric: success_rate}\n")
    unfed = unfed_rules(load_alerts_config(path), aggregates())
    assert unfed["odd"].startswith("rules[odd].condition.metrics: ['vibes'] are not anomaly metrics")
    assert unfed["weekly"].startswith("rules[weekly].window_days: 14 is not one of the aggregates' windows [7, 30")
