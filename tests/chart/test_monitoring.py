"""The chart's optional monitoring objects: the Grafana dashboard ConfigMap (every series it
plots is one the operator or the job pods export) and the PodMonitor of the job pods."""

from __future__ import annotations

import json
import re

from prometheus_client import Counter, Gauge, Histogram

from rft_operator import metrics
from rft_operator.api import RFTRunSpec
from rft_operator.jobconfigs import score_config
from rft_operator.layout import cluster_layout
from rft_operator.manifests import MANAGER, RunRef, build_score_job
from rft_runtime.config import live

from .helm import CHART, RELEASE_NAMESPACE, by_kind, one, template
from .test_chart import validate_all

SERIES = re.compile(r"\b(rft_[a-z_]+)\b")


def exported() -> set[str]:
    """Names the operator's registry and the job pods' gauges answer to."""
    names = {
        name
        for value in vars(metrics).values()
        if isinstance(value, Counter | Gauge | Histogram)
        for name in (value._name, value._name + "_total")
    }
    return names | {
        live.PROGRESS_DONE,
        live.PROGRESS_TOTAL,
        live.TOKENS_PER_SECOND,
        live.TRAIN_LOSS,
    }


def test_the_dashboard_configmap_plots_only_exported_series() -> None:
    assert not by_kind(template(), "ConfigMap")  # off by default
    objects = template({"grafanaDashboard.enabled": "true", "grafanaDashboard.namespace": "mon"})
    validate_all(objects)
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["namespace"] == "mon"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["rft-run.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "rft-run.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in SERIES.findall(expr)}
    assert used and used <= exported(), used - exported()
    # the job pods' progress and the run's own figures are both on it
    assert {live.PROGRESS_DONE, live.TRAIN_LOSS, "rft_run_stage_seconds"} <= used
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables == ["datasource", "namespace", "run"]
    assert all('run="$run"' in expr for expr in exprs)


def test_the_pod_monitor_scrapes_the_job_pods_metrics_port() -> None:
    assert not by_kind(template(), "PodMonitor")
    for values, scope in (
        ({}, {"any": True}),
        ({"watchNamespace": "ml"}, {"matchNames": ["ml"]}),
    ):
        monitor = one(template({"metrics.podMonitor.enabled": "true", **values}), "PodMonitor")
        assert monitor["metadata"]["namespace"] == RELEASE_NAMESPACE
        assert monitor["spec"]["namespaceSelector"] == scope
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] == live.METRICS_PORT_NAME and endpoint["path"] == "/metrics"
    # it selects the pods the operator makes, by the port they declare
    spec = RFTRunSpec.model_validate(
        {"model": {"uri": "pvc://models/m"}, "data": {"train": "pvc://data/t.jsonl"}}
    )
    run = RunRef("r", "ml", "uid")
    job = build_score_job(run, spec, 0, score_config(spec, "r", 0, cluster_layout("r", "ml", spec)))
    pod = job["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == MANAGER
    (container,) = pod["spec"]["containers"]
    assert {"name": live.METRICS_PORT_NAME, "containerPort": live.METRICS_PORT} in container[
        "ports"
    ]
