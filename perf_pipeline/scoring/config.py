"""The scoring configuration: ``scoring.yaml`` in this package, with the user's file
(``PERF_SCORING_CONFIG``) merged over it (``perf_pipeline.config``): weights, baselines, the judge,
the reviewer panel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from perf_pipeline.config import ANSWER_LOOKAHEAD_DAYS, MAX_WINDOW_DAYS, Strict, load_config

CONFIG_ENV = "PERF_SCORING_CONFIG"
Fraction = Field(ge=0.0, le=1.0)


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


class Strategies(Strict):
    quality: Literal["layered"] = "layered"
    collaboration: Literal["behavioural"] = "behavioural"
    judge: Literal["openai"] = "openai"


class Baseline(Strict):
    baseline_days: int = Field(30, ge=1, le=MAX_WINDOW_DAYS)
    min_baseline_tasks: int = Field(5, ge=1)


class QualityConfig(Strict):
    weights: _weights("judge", "peer", "user", "code_review")


class OverallConfig(Strict):
    weights: _weights("quality", "efficiency", "cost")


class PeerReviewConfig(Strict):
    leniency_days: int = Field(90, ge=1, le=MAX_WINDOW_DAYS)
    prior_reviews: float = Field(5, ge=0)


class CollaborationConfig(Strict):
    answer_window_hours: float = Field(24, gt=0, le=24 * ANSWER_LOOKAHEAD_DAYS)
    latency_half_life_s: float = Field(300, gt=0)
    weights: _weights("answer_rate", "latency", "helpfulness", "peer")


class Budget(Strict):
    max_tasks: int | None = Field(None, ge=0)
    max_usd: float | None = Field(None, ge=0)


class Sampling(Strict):
    rate: float = Fraction
    min_per_agent_day: int = Field(3, ge=0)


class JudgeConfig(Strict):
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


class Persona(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str | None = None
    agent_id: str | None = None
    instructions: str = Field(min_length=1)


class PanelConfig(Strict):
    sample_rate: float = Fraction
    personas: list[Persona] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> PanelConfig:
        names = [p.name for p in self.personas]
        if len(names) != len(set(names)):
            raise ValueError(f"persona names must be unique: {names}")
        return self


class ScoringConfig(Strict):
    strategies: Strategies = Strategies()
    efficiency: Baseline = Baseline()
    cost: Baseline = Baseline()
    quality: QualityConfig
    overall: OverallConfig
    peer_review: PeerReviewConfig = PeerReviewConfig()
    collaboration: CollaborationConfig
    judge: JudgeConfig
    panel: PanelConfig


def load_scoring_config(path: str | Path | None = None) -> ScoringConfig:
    """``scoring.yaml`` with ``path`` (or ``$PERF_SCORING_CONFIG``) merged over it."""
    return load_config(ScoringConfig, "perf_pipeline.scoring", "scoring.yaml", CONFIG_ENV, path,
                       moved={"aggregates": "its own file: set PERF_AGGREGATES_CONFIG (README, Configuration)"})
