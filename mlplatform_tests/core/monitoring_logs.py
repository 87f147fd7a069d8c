"""Constructed prediction logs for the monitoring windows and alerts."""

from datetime import UTC, datetime, timedelta

import polars as pl

from mlplatform.serving.prediction_log import log_schema

AS_OF = datetime(2025, 10, 15, 12, 0, tzinfo=UTC)
KEY = "customer_id"


def log_rows(n: int, *, at: datetime = AS_OF - timedelta(minutes=30), status: str = "ok", latency_ms: float = 10.0,
             probability: float = 0.3, prediction: int = 0, arm: str = "champion", label: int | None = None,
             version: str | None = "1", start_id: int = 0, request_prefix: str = "r") -> list[dict]:
    """``n`` log rows, one request each, all at ``at``."""
    ok = status == "ok"
    return [{"request_time": at, "request_id": f"{request_prefix}{start_id + i}", KEY: start_id + i, "features": "{}",
             "prediction": float(prediction) if ok else None, "probability": probability if ok else None,
             "model_name": "demo_model", "model_version": version, "arm": arm, "fallback": version is None,
             "status": status, "latency_ms": latency_ms, "churned": label} for i in range(n)]


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={**log_schema(KEY, pl.Int64()), "churned": pl.Int64()})
