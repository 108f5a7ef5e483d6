"""The aggregates' configuration: ``aggregates.yaml`` in this package, with the user's file
(``PERF_AGGREGATES_CONFIG``) merged over it (``perf_pipeline.config``): windows, trends, baselines
and anomalies, provider rankings, prompt-version comparisons."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from perf_pipeline.config import MAX_WINDOW_DAYS, Strict, load_config

CONFIG_ENV = "PERF_AGGREGATES_CONFIG"


class ProviderRankingConfig(Strict):
    window_days: int = Field(30, ge=1)
    min_tasks: int = Field(5, ge=1)
    quality_per_cost_doubling: float = Field(0.05, ge=0)
    quality_per_latency_doubling: float = Field(0.02, ge=0)
    cost_floor_usd: float = Field(0.0001, gt=0)
    latency_floor_ms: float = Field(1.0, gt=0)


class PromptComparisonConfig(Strict):
    window_days: int = Field(30, ge=1)
    min_tasks: int = Field(5, ge=2)
    alpha: float = Field(0.05, gt=0, lt=1)


class AggregatesConfig(Strict):
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


def load_aggregates_config(path: str | Path | None = None) -> AggregatesConfig:
    """``aggregates.yaml`` with ``path`` (or ``$PERF_AGGREGATES_CONFIG``) merged over it."""
    return load_config(AggregatesConfig, "perf_pipeline.aggregates", "aggregates.yaml", CONFIG_ENV, path)
