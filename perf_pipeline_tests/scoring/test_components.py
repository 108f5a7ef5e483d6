"""Every score component against values computed by hand, the null cases included."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.scoring import components as c
from perf_pipeline.scoring.strategies import (
    OVERALL_COMPONENTS,
    QUALITY_COMPONENTS,
    BehaviouralCollaborationStrategy,
    LayeredQualityStrategy,
    _nonzero,
    weighted_mean_present,
    weights_used,
)

D = dt.date(2026, 3, 10)
QUALITY_WEIGHTS = {"judge": 0.40, "peer": 0.20, "user": 0.25, "code_review": 0.15}
OVERALL_WEIGHTS = {"quality": 0.70, "efficiency": 0.30, "cost": 0.0}


def test_effort_is_tokens_times_seconds_and_unknown_when_either_is() -> None:
    tasks = pd.DataFrame({"total_tokens": [1000, None, 500], "completion_time_s": [30.0, 10.0, None]})
    assert c.effort(tasks).tolist()[0] == 30_000.0
    assert c.effort(tasks).isna().tolist() == [False, True, True]


def _share(values, groups, days, history, window=30, minimum=5):
    return c.trailing_share_above(pd.Series(values, dtype="float64"), pd.Series(groups), pd.Series(days),
                                  pd.DataFrame(history, columns=["value", "group", "day"]), window, minimum)


def test_efficiency_is_the_share_of_the_baseline_that_needed_more() -> None:
    history = [(v, "bug_fix", D) for v in (10, 20, 20, 40, 50, 60)] + [(1, "research", D)]
    score, size = _share([20, 60, 10], ["bug_fix"] * 3, [D] * 3, history)
    # 20: above it 40, 50, 60 and one tie (the other 20) among 5 others -> (3 + 0.5) / 5
    assert score.tolist() == pytest.approx([0.7, 0.0, 1.0])
    assert size.tolist() == [5, 5, 5]


def test_efficiency_needs_a_big_enough_baseline_and_a_known_value() -> None:
    history = [(v, "bug_fix", D) for v in (10, 20, 30, 40, 50)]
    score, size = _share([10, np.nan], ["bug_fix", "bug_fix"], [D, D], history)
    assert score.isna().all()  # 4 others < 5; unknown effort is unknown efficiency, not a perfect one
    assert size.tolist()[0] == 4 and pd.isna(size.tolist()[1])


def test_efficiency_baseline_is_the_trailing_window_of_the_same_type() -> None:
    edge = D - dt.timedelta(days=30)  # (D - 30, D]: the day 30 days back is out, 29 days back is in
    history = ([(100, "bug_fix", edge)] + [(v, "bug_fix", D - dt.timedelta(days=29)) for v in (1, 2, 3, 4, 5)]
               + [(50, "bug_fix", D), (1000, "research", D), (60, "bug_fix", D + dt.timedelta(days=1))])
    score, size = _share([50], ["bug_fix"], [D], history)
    assert size.tolist() == [5] and score.tolist() == [0.0]



def _share_by_date_comparison(values, groups, days, history, window, minimum):
    """The baseline chosen by comparing each pool row's date with the window's bounds, as
    ``trailing_share_above`` did before it searched day numbers: the reference for the test below."""
    score = pd.Series(np.nan, index=values.index, dtype="float64")
    size = pd.Series(pd.NA, index=values.index, dtype="Int64")
    known = history[history["value"].notna()]
    scored = values.notna()
    for (group, day), rows in values[scored].groupby([groups[scored], days[scored]], sort=False):
        pool = known[known["group"] == group]
        if pool.empty:
            continue
        in_window = (pool["day"] > day - dt.timedelta(days=window)) & (pool["day"] <= day)
        baseline = np.sort(pool.loc[in_window, "value"].to_numpy(dtype="float64"))
        n = len(baseline) - 1
        size[rows.index] = max(n, 0)
        if n < minimum:
            continue
        mine = rows.to_numpy(dtype="float64")
        right, left = np.searchsorted(baseline, mine, side="right"), np.searchsorted(baseline, mine, side="left")
        score[rows.index] = (len(baseline) - right + 0.5 * (right - left - 1)) / n
    return score, size


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_share_above_equals_the_date_comparisons(data: st.DataObject) -> None:
    """Windows found by binary search over day numbers hold the same values as those found by
    comparing dates: scores and baseline sizes equal, exactly, with ties, unknown values, days at
    the window's edges, types without another known value, and days as dates or as timestamps."""
    window = data.draw(st.sampled_from([1, 3, 7, 30]))
    as_timestamps = data.draw(st.booleans())
    day = st.integers(-40, 5).map(lambda k: D + dt.timedelta(days=k)).map(
        lambda d: pd.Timestamp(d) if as_timestamps else d)
    value = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.5, 2.5, 10.0]), st.floats(0, 100))
    history = data.draw(st.lists(st.tuples(value, st.sampled_from(["a", "b", "c"]), day), max_size=60))
    history = pd.DataFrame(history, columns=["value", "group", "day"]).astype({"value": "float64"})
    scored = data.draw(st.lists(st.tuples(value, st.sampled_from(["a", "b", "d"]), day), max_size=20))
    scored = pd.DataFrame(scored, columns=["value", "group", "day"]).astype({"value": "float64"})
    minimum = data.draw(st.integers(1, 4))
    history = pd.concat([history, scored], ignore_index=True)  # the scored rows are in their baseline
    expected = _share_by_date_comparison(scored["value"], scored["group"], scored["day"], history, window, minimum)
    score, size = c.trailing_share_above(scored["value"], scored["group"], scored["day"], history, window, minimum)
    pd.testing.assert_series_equal(score, expected[0])
    pd.testing.assert_series_equal(size, expected[1])


PRICES = pd.DataFrame({
    "provider": ["openai", "openai"], "model": ["gpt-4.1", "gpt-4.1"],
    "effective_from": [dt.date(2026, 1, 1), dt.date(2026, 3, 1)],
    "input_usd_per_mtok": [2.0, 1.0], "output_usd_per_mtok": [8.0, 4.0]})


def test_cost_is_reported_else_priced_on_the_day_else_unknown() -> None:
    tasks = pd.DataFrame({
        "provider": ["openai", "openai", "openai", "openai", "vllm", "openai"],
        "model": ["gpt-4.1"] * 4 + ["llama", "gpt-4.1"],
        "partition_date": [dt.date(2026, 2, 15), dt.date(2026, 3, 1), dt.date(2025, 12, 31), dt.date(2026, 2, 1),
                           dt.date(2026, 2, 1), dt.date(2026, 2, 1)],
        "cost_usd": [None, None, None, 0.05, None, None],
        "input_tokens": [1000, 1000, 1000, 1000, 1000, None], "output_tokens": [500, 500, 500, 500, 500, 500]})
    cost, source = c.task_costs(tasks, PRICES)
    assert cost.tolist()[:2] == pytest.approx([0.006, 0.003])  # (1000*2 + 500*8)/1e6; the March price
    assert cost.tolist()[3] == 0.05
    assert cost.isna().tolist() == [False, False, True, False, True, True]
    assert source.tolist() == ["price_table", "price_table", "unknown", "reported", "unknown", "unknown"]


def test_user_score_maps_all_ratings_and_keeps_the_latest_feedback_type() -> None:
    tasks = pd.DataFrame({"task_id": ["a", "b", "c"], "user_rating": [5, None, None],
                          "feedback_type": [None, "innovation", None]})
    feedback = pd.DataFrame({
        "feedback_id": ["f1", "f2"], "task_id": ["a", "a"], "user_rating": [3, 4],
        "feedback_type": ["correction", "approval"],
        "created_at": pd.to_datetime(["2026-03-03T00:00Z", "2026-03-02T00:00Z"], utc=True)})
    result = c.user_scores(tasks, feedback)
    assert result["user_score"].tolist()[0] == pytest.approx(0.75)  # ratings 5, 3, 4: mean 4 -> 3/4
    assert result["user_score"].isna().tolist() == [False, True, True]
    assert result["user_rating_count"].tolist() == [3, 0, 0]
    assert result["feedback_type"].tolist() == ["correction", "innovation", None]  # f1 is the latest
    assert result["feedback_count"].tolist() == [2, 0, 0]


def test_code_review_score_averages_the_signals_present() -> None:
    tasks = pd.DataFrame({"code_review_tests_passed": [8, None, 0, None],
                          "code_review_tests_failed": [2, None, 0, None],
                          "code_review_coverage": [0.6, None, 0.9, None],
                          "code_review_lint_errors": [1, 0, None, None]})
    score = c.code_review_scores(tasks)
    assert score.tolist()[:3] == pytest.approx([(0.8 + 0.6 + 0.5) / 3, 1.0, 0.9])  # no test ran: no pass rate
    assert np.isnan(score.tolist()[3])


def _reviews(rows):
    return pd.DataFrame(rows, columns=["task_id", "evaluator_agent_id", "evaluated_agent_id",
                                       "accuracy", "relevance", "completeness"])


WINDOW = _reviews([("w1", "lenient", "x", 0.9, 0.9, 0.9), ("w2", "lenient", "x", 0.9, 0.9, 0.9),
                   ("w3", "lenient", "x", 0.9, 0.9, 0.9), ("t", "lenient", "a", 0.9, 0.9, 0.9),
                   ("w4", "harsh", "x", 0.5, None, None), ("t", "harsh", "a", 0.6, 0.8, None),
                   ("t", "a", "a", 1.0, 1.0, 1.0)])  # a self-review: never counts


@pytest.mark.parametrize(("prior", "expected"), [
    (0.0, ((0.9 - 0.1) + (0.7 + 0.2)) / 2),  # mean 0.8; lenient +0.1, harsh -0.2
    (4.0, ((0.9 - 0.1 * 4 / 8) + (0.7 + 0.2 * 2 / 6)) / 2),  # offsets shrunk by n / (n + 4)
])
def test_peer_score_corrects_for_leniency(prior: float, expected: float) -> None:
    tasks = pd.DataFrame({"task_id": ["t", "u"]})
    reviews = WINDOW[WINDOW["task_id"] == "t"]
    result = c.peer_scores(tasks, reviews, WINDOW, prior)
    assert result["peer_score"].tolist()[0] == pytest.approx(expected)
    assert np.isnan(result["peer_score"].tolist()[1])
    assert result["peer_review_count"].tolist() == [2, 0]


def test_reviewer_agreement_is_krippendorff_alpha() -> None:
    reviews = _reviews([("A", "r1", "x", 0.8, None, None), ("A", "r2", "x", 0.6, None, None),
                        ("B", "r1", "y", 0.5, None, None), ("B", "r2", "y", 0.5, None, None),
                        ("C", "r1", "z", 0.9, None, None)])  # one review: not pairable
    # D_o = (0.2^2 * 2 / 1) / 4 = 0.02; D_e = 0.48 / (4 * 3) = 0.04; alpha = 1 - 0.02/0.04
    assert c.reviewer_agreement(reviews) == pytest.approx(
        {"tasks_with_several_reviews": 2, "krippendorff_alpha": 0.5, "mean_abs_difference": 0.1})
    none = c.reviewer_agreement(reviews[reviews["task_id"] == "C"])
    assert none["krippendorff_alpha"] is None and none["tasks_with_several_reviews"] == 0


def test_quality_and_overall_renormalize_over_what_is_present() -> None:
    components = pd.DataFrame({
        "judge_score": [0.8, 0.8, None], "peer_score": [None, None, None], "user_score": [0.6, 0.6, None],
        "code_review_score": [None, None, None], "efficiency_score": [0.5, None, 0.9], "cost_score": [0.1, 0.1, 0.1]})
    result = LayeredQualityStrategy(QUALITY_WEIGHTS, OVERALL_WEIGHTS).combine(components)
    quality = (0.4 * 0.8 + 0.25 * 0.6) / 0.65
    assert result["quality_score"].tolist()[:2] == pytest.approx([quality, quality])
    assert result["overall_score"].tolist()[:2] == pytest.approx([0.7 * quality + 0.3 * 0.5, quality])
    assert np.isnan(result["quality_score"].tolist()[2]) and np.isnan(result["overall_score"].tolist()[2])
    assert result["components_used"].tolist() == [2, 2, 0]
    assert result["weights_used"].tolist()[0] == {
        "quality": {"judge": pytest.approx(0.4 / 0.65), "user": pytest.approx(0.25 / 0.65)},
        "overall": {"quality": 0.7, "efficiency": 0.3}}
    assert result["weights_used"].tolist()[2] == {"quality": {}, "overall": {}}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_weights_used_are_each_rows_own_weights(data: st.DataObject) -> None:
    """The weights made once per pattern equal those made row by row, as combine made them before."""
    rows = data.draw(st.integers(0, 40))
    present = st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=rows, max_size=rows)
    components = pd.DataFrame({name: pd.Series(data.draw(present), dtype="float64")
                               for name in ("judge_score", "peer_score", "user_score", "code_review_score",
                                            "efficiency_score", "cost_score")})
    strategy = LayeredQualityStrategy(QUALITY_WEIGHTS, OVERALL_WEIGHTS)
    result = strategy.combine(components)
    quality_inputs = components[list(QUALITY_COMPONENTS.values())].set_axis(list(QUALITY_COMPONENTS), axis=1)
    quality, quality_share = weighted_mean_present(quality_inputs, QUALITY_WEIGHTS)
    overall_inputs = pd.DataFrame({name: quality if name == "quality" else components[column]
                                   for name, column in OVERALL_COMPONENTS.items()})
    _, overall_share = weighted_mean_present(overall_inputs, OVERALL_WEIGHTS)
    overall_share = overall_share.where(quality.notna(), 0.0)
    row_by_row = [{"quality": _nonzero(q), "overall": _nonzero(o)}
                  for q, o in zip(quality_share.to_dict("records"), overall_share.to_dict("records"), strict=True)]
    made = result["weights_used"].tolist()
    assert made == row_by_row and weights_used(quality_share, overall_share) == row_by_row
    assert [list(w["quality"]) for w in made] == [list(w["quality"]) for w in row_by_row]  # key order too
    assert len({id(w) for w in made}) == len({repr(w) for w in made})  # one dict per pattern


def _at(hour: int, minute: int = 0, day: dt.date = D) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day, dt.time(hour, minute)), tz="UTC")


def test_collaboration_components_and_score() -> None:
    rows = [("m1", "a2", "a1", _at(10), "request", None, None),
            ("m2", "a1", "a2", _at(10, 1), "response", "m1", 5),  # answered in 60 s, rated 5
            ("m3", "a3", "a1", _at(11), "request", None, None),
            ("m4", "a1", "a3", _at(11, 3), "response", "m3", 3),  # answered in 180 s, rated 3
            ("m5", "a2", "a1", _at(12), "request", None, None),  # never answered
            ("m6", "a2", "a1", _at(13), "request", None, None),
            ("m7", "a1", "a2", _at(14, 0, D + dt.timedelta(days=1)), "response", "m6", 4),  # 25 h: too late
            ("m8", "a3", "a1", _at(15), "request", None, None),
            ("m9", "a3", "a2", _at(15, 1), "response", "m8", None)]  # answered, but not by the addressee
    messages = pd.DataFrame(rows, columns=["message_id", "from_agent_id", "to_agent_id", "sent_at", "kind",
                                           "in_reply_to", "helpfulness"])
    peer = pd.DataFrame({"agent_id": ["a1", "a1", "a3"], "partition_date": [D, D, D], "peer_score": [0.6, 0.8, None]})
    strategy = BehaviouralCollaborationStrategy(24, 300, {"answer_rate": 0.3, "latency": 0.2, "helpfulness": 0.3,
                                                          "peer": 0.2})
    result = strategy.score(messages, peer, [D]).set_index("agent_id")
    a1 = result.loc["a1"]
    assert (a1["requests_received"], a1["requests_answered"]) == (5, 2)
    assert a1["answer_rate"] == pytest.approx(0.4)
    assert a1["median_response_latency_s"] == pytest.approx(120.0)
    assert a1["latency_score"] == pytest.approx(0.5 ** (120 / 300))
    assert (a1["helpfulness_ratings"], a1["helpfulness_score"]) == (2, pytest.approx(0.75))
    assert (a1["peer_reviewed_tasks"], a1["peer_score"]) == (2, pytest.approx(0.7))
    assert a1["collaboration_score"] == pytest.approx(0.3 * 0.4 + 0.2 * 0.5 ** 0.4 + 0.3 * 0.75 + 0.2 * 0.7)
    assert a1["components_used"] == 4
    assert set(result.index) == {"a1"}  # a2 and a3 received no request, sent nothing rated, had no reviews


def test_collaboration_without_any_signal_is_empty() -> None:
    strategy = BehaviouralCollaborationStrategy(24, 300, {"answer_rate": 1.0})
    empty = pd.DataFrame(columns=["message_id", "from_agent_id", "to_agent_id", "sent_at", "kind", "in_reply_to",
                                  "helpfulness"])
    result = strategy.score(empty, pd.DataFrame(columns=["agent_id", "partition_date", "peer_score"]), [D])
    assert result.empty


def test_the_sampling_floor_counts_only_tasks_with_something_to_judge() -> None:
    from perf_pipeline.scoring.config import load_scoring_config
    from perf_pipeline.scoring.plan import plan_judging, stable_unit

    config = load_scoring_config().judge
    config = config.model_copy(update={"sampling": config.sampling.model_copy(update={"rate": 0.0,
                                                                                     "min_per_agent_day": 1})})
    ids = pd.Series(["a", "b", "c"])
    lowest = ids[stable_unit(ids).idxmin()]
    tasks = pd.DataFrame({"task_id": ids, "agent_id": "x", "partition_date": D, "has_content": ids != lowest})
    plan = plan_judging(tasks, pd.Series(False, index=tasks.index), config, has_key=True, limit=None)
    statuses = dict(zip(ids, plan["judge_status"], strict=True))
    assert statuses[lowest] == "skipped_no_content"
    assert sorted(statuses.values()) == ["pending", "skipped_no_content", "skipped_sampling"]
