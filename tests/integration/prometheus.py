"""Prometheus' and Alertmanager's HTTP APIs on a lab's monitor container, as the tests read
them (test_07's Patroni and etcd targets, test_12's drills)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from pgcluster.lab.definition import Lab

PROMETHEUS, ALERTMANAGER = 9090, 9093  # the monitor's container ports, published by the lab


def api(lab: Lab, port: int, path: str, **params: str) -> Any:
    url = f"http://{lab.bind_address}:{lab.published(port)}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def instant(lab: Lab, promql: str) -> dict[str, float]:
    """An instant query's result: instance -> value."""
    result = api(lab, PROMETHEUS, "/api/v1/query", query=promql)["data"]["result"]
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}


def firing(lab: Lab, alert: str) -> set[str]:
    """The instances an alert is firing for, in Prometheus (not pending)."""
    alerts = api(lab, PROMETHEUS, "/api/v1/alerts")["data"]["alerts"]
    return {a["labels"].get("instance", "") for a in alerts
            if a["labels"]["alertname"] == alert and a["state"] == "firing"}


def firing_now(lab: Lab) -> list[dict[str, str]]:
    """Every firing alert's labels."""
    alerts = api(lab, PROMETHEUS, "/api/v1/alerts")["data"]["alerts"]
    return [a["labels"] for a in alerts if a["state"] == "firing"]


def alert_for(lab: Lab, alert: str) -> float:
    """The rule's `for`, as Prometheus loaded it (seconds)."""
    groups = api(lab, PROMETHEUS, "/api/v1/rules", type="alert")["data"]["groups"]
    rule = next(r for g in groups for r in g["rules"] if r["name"] == alert)
    return float(rule["duration"])


def healthy_targets(lab: Lab) -> dict[str, set[str]]:
    """job -> the instances whose last scrape succeeded."""
    targets = api(lab, PROMETHEUS, "/api/v1/targets")["data"]["activeTargets"]
    found: dict[str, set[str]] = {}
    for t in targets:
        if t["health"] == "up":
            found.setdefault(t["labels"]["job"], set()).add(t["labels"]["instance"])
    return found
