"""Prometheus metrics of the operator (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("rft_reconciles_total", "Reconcile passes", ["result"])
RECONCILE_ERRORS = Counter("rft_reconcile_errors_total", "Reconcile passes that raised")
RECONCILE_SECONDS = Histogram(
    "rft_reconcile_seconds",
    "Time of one reconcile pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STAGE_TRANSITIONS = Counter("rft_stage_transitions_total", "Stage changes", ["stage"])
RUNS_BY_STAGE = Gauge("rft_runs", "RFTRuns by current stage", ["namespace", "run", "stage"])
