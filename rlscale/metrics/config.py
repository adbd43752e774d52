"""Settings of the metrics pipeline between pods and a controller."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricsPipelineConfig(BaseModel):
    """Scrape intervals, ingestion/adapter delay and staleness, in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_scrape_interval_s: float = Field(
        15.0, ge=5.0, description="PodMonitoring interval for JetStream's /metrics (GKE default 15 s, minimum 5 s)."
    )
    tpu_scrape_interval_s: float = Field(
        60.0, ge=15.0, description="TPU device-plugin metrics interval (default 60 s, minimum 15 s)."
    )
    adapter_delay_s: float = Field(
        30.0, ge=0, description="Ingestion into Prometheus plus the custom-metrics adapter's lag, s."
    )
    lookback_s: float = Field(300.0, gt=0, description="Prometheus lookback: older samples are stale (missing), s.")
    discovery_interval_s: float = Field(5.0, gt=0, description="How often new pods are picked up as targets, s.")
