"""The Grafana dashboard and the alert rules query only the metrics the node exports.

No Prometheus here to parse PromQL, so the checks are structural: every metric a query names is
one of the node's (histograms through their _bucket/_count/_sum series), brackets balance, and
the dashboard and rule files have the shape Grafana and prometheus-operator load.
"""

from __future__ import annotations

import json
import pathlib
import re

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
COUNTERS_AND_GAUGES = {
    "streamd_shard_incoming_bytes_total",
    "streamd_shard_incoming_records_total",
    "streamd_shard_outgoing_bytes_total",
    "streamd_shard_outgoing_records_total",
    "streamd_shard_write_provisioned_throughput_exceeded_total",
    "streamd_shard_read_provisioned_throughput_exceeded_total",
    "streamd_shard_iterator_age_milliseconds",
    "streamd_raft_term",
    "streamd_raft_is_leader",
    "streamd_raft_leader_changes_total",
    "streamd_raft_apply_lag",
    "streamd_raft_log_entries",
    "streamd_wal_fsyncs_total",
    "streamd_wal_bytes_written_total",
}
HISTOGRAMS = {
    "streamd_wal_fsync_seconds",
    "streamd_grpc_request_seconds",
    "streamd_kinesis_request_seconds",
}
KNOWN = COUNTERS_AND_GAUGES | {
    f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "count", "sum")
}
# Series from Prometheus itself, not the node.
PROMETHEUS = {"up"}
LABELS = {"stream", "shard", "group", "method", "action", "code", "instance", "job", "le"}


def check_expr(expr: str, where: str) -> set[str]:
    names = set(re.findall(r"\bstreamd_[a-z_]+", expr))
    unknown = names - KNOWN
    assert not unknown, f"{where}: unknown metrics {unknown}"
    bare_histograms = names & HISTOGRAMS
    assert not bare_histograms, f"{where}: a histogram is queried through _bucket/_count/_sum"
    for open_, close in ["()", "{}", "[]"]:
        assert expr.count(open_) == expr.count(close), f"{where}: unbalanced {open_}"
    for by in re.findall(r"\bby \(([^)]*)\)", expr):
        for label in (lbl.strip() for lbl in by.split(",")):
            assert label in LABELS, f"{where}: unknown label {label!r}"
    used_prometheus = set(re.findall(r"\b(up)\{", expr))
    assert names or used_prometheus <= PROMETHEUS and used_prometheus, f"{where}: queries nothing"
    return names


def test_dashboard_queries_known_metrics_and_loads():
    dash = json.loads((DEPLOY / "grafana" / "streamd-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dash["templating"]["list"]}
    used: set[str] = set()
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= check_expr(target["expr"], panel["title"])
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), f"{panel['title']}: ${var}"
    # Every metric the node exports has a panel.
    exported = COUNTERS_AND_GAUGES | HISTOGRAMS
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert exported <= shown, f"no panel for {exported - shown}"


def test_alert_rules_are_well_formed():
    rule = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    names = []
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            names.append(r["alert"])
            check_expr(r["expr"], r["alert"])
            assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
            assert r["annotations"]["summary"], r["alert"]
            if "for" in r:
                assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
    assert len(names) == len(set(names)), "alert names must be unique"
