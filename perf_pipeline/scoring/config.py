"""The scoring configuration: ``scoring.yaml`` in this package, with the user's file
(``PERF_SCORING_CONFIG``) merged over it. Validated by pydantic, so a wrong key or value is an
error that names the file and the key path."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_ENV = "PERF_SCORING_CONFIG"
MAX_WINDOW_DAYS = 90  # the daily assets' partition mappings reach this far back
ANSWER_LOOKAHEAD_DAYS = 2  # collaboration_scores of a day depend on the messages of the days after it
Fraction = Field(ge=0.0, le=1.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _weights(*allowed: str) -> Any:
    """A mapping of component -> weight over ``allowed`` names: weights >= 0, at least one > 0."""

    def valid(weights: dict[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(allowed)
        if unknown:
            raise ValueError(f"unknown weight(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must be >= 0")
        if not any(w > 0 for w in weights.values()):
            raise ValueError("at least one weight must be > 0")
        return weights

    return Annotated[dict[str, float], AfterValidator(valid)]


class Strategies(_Strict):
    quality: Literal["layered"] = "layered"
    collaboration: Literal["behavioural"] = "behavioural"
    judge: Literal["openai"] = "openai"


class Baseline(_Strict):
    baseline_days: int = Field(30, ge=1, le=MAX_WINDOW_DAYS)
    min_baseline_tasks: int = Field(5, ge=1)


class QualityConfig(_Strict):
    weights: _weights("judge", "peer", "user", "code_review")


class OverallConfig(_Strict):
    weights: _weights("quality", "efficiency", "cost")


class PeerReviewConfig(_Strict):
    leniency_days: int = Field(90, ge=1, le=MAX_WINDOW_DAYS)
    prior_reviews: float = Field(5, ge=0)


class CollaborationConfig(_Strict):
    answer_window_hours: float = Field(24, gt=0, le=24 * ANSWER_LOOKAHEAD_DAYS)
    latency_half_life_s: float = Field(300, gt=0)
    weights: _weights("answer_rate", "latency", "helpfulness", "peer")


class Budget(_Strict):
    max_tasks: int | None = Field(None, ge=0)
    max_usd: float | None = Field(None, ge=0)


class Sampling(_Strict):
    rate: float = Fraction
    min_per_agent_day: int = Field(3, ge=0)


class JudgeConfig(_Strict):
    rubric_version: str = Field(min_length=1)
    concurrency: int = Field(8, ge=1, le=256)
    requests_per_minute: float | None = Field(None, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    answer_retries: int = Field(1, ge=0, le=5)
    timeout_s: float = Field(60, gt=0)
    max_tokens: int = Field(300, ge=16)
    max_content_chars: int = Field(6000, ge=100)
    budget: Budget = Budget()
    sampling: Sampling = Sampling(rate=1.0)
    input_usd_per_mtok: float | None = Field(None, ge=0)
    output_usd_per_mtok: float | None = Field(None, ge=0)


class Persona(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str | None = None
    agent_id: str | None = None
    instructions: str = Field(min_length=1)


class PanelConfig(_Strict):
    sample_rate: float = Fraction
    personas: list[Persona] = []

    @model_validator(mode="after")
    def _unique_names(self) -> PanelConfig:
        names = [p.name for p in self.personas]
        if len(names) != len(set(names)):
            raise ValueError(f"persona names must be unique: {names}")
        return self


class ProviderRankingConfig(_Strict):
    window_days: int = Field(30, ge=1)
    min_tasks: int = Field(5, ge=1)
    quality_per_cost_doubling: float = Field(0.05, ge=0)
    quality_per_latency_doubling: float = Field(0.02, ge=0)
    cost_floor_usd: float = Field(0.0001, gt=0)
    latency_floor_ms: float = Field(1.0, gt=0)


class PromptComparisonConfig(_Strict):
    window_days: int = Field(30, ge=1)
    min_tasks: int = Field(5, ge=2)
    alpha: float = Field(0.05, gt=0, lt=1)


class AggregatesConfig(_Strict):
    windows: list[int] = Field(min_length=1)
    min_points: int = Field(5, ge=2)
    trend_metrics: list[str]
    trend_min_relative_change: float = Field(0.05, ge=0)
    baseline_days: int = Field(30, ge=2)
    min_baseline_days: int = Field(7, ge=2)
    anomaly_threshold: float = Field(3.5, gt=0)
    anomaly_metrics: list[str]
    provider_ranking: ProviderRankingConfig = ProviderRankingConfig()
    prompt_comparison: PromptComparisonConfig = PromptComparisonConfig()

    @model_validator(mode="after")
    def _check(self) -> AggregatesConfig:
        if any(w < 1 for w in self.windows) or len(set(self.windows)) != len(self.windows):
            raise ValueError(f"windows must be distinct positive day counts, got {self.windows}")
        longest = max(*self.windows, self.baseline_days, self.provider_ranking.window_days,
                      self.prompt_comparison.window_days)
        if longest > MAX_WINDOW_DAYS:
            raise ValueError(f"windows and baselines longer than {MAX_WINDOW_DAYS} days are not supported")
        return self


class ScoringConfig(_Strict):
    strategies: Strategies = Strategies()
    efficiency: Baseline = Baseline()
    cost: Baseline = Baseline()
    quality: QualityConfig
    overall: OverallConfig
    peer_review: PeerReviewConfig = PeerReviewConfig()
    collaboration: CollaborationConfig
    judge: JudgeConfig
    panel: PanelConfig
    aggregates: AggregatesConfig


class ScoringConfigError(ValueError):
    """The scoring configuration file is unreadable or invalid; the message names the file and key."""


def default_config_text() -> str:
    return resources.files("perf_pipeline.scoring").joinpath("scoring.yaml").read_text(encoding="utf-8")


def load_scoring_config(path: str | Path | None = None) -> ScoringConfig:
    """Defaults, with ``path`` (or ``$PERF_SCORING_CONFIG``) merged over them."""
    merged = yaml.safe_load(default_config_text())
    source = path or os.environ.get(CONFIG_ENV) or None
    if source:
        try:
            user = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ScoringConfigError(f"{source}: cannot read the scoring configuration: {exc}") from exc
        if not isinstance(user, dict):
            raise ScoringConfigError(f"{source}: expected a mapping of sections at the top level")
        merged = _merge(merged, user)
    try:
        return ScoringConfig.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ScoringConfigError(f"{source or 'scoring.yaml (defaults)'}: {problems}") from exc


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, mappings merged key by key (lists and scalars replaced)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
