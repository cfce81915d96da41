"""postgres_exporter's queries file (templates/monitoring/postgres-exporter-queries.yaml.j2)
holds together with the alert rules: it is the exporter's 0.11 format, it defines every
pgcluster_* series a rule or a promtool case reads (but the certificate's, a
node_exporter textfile metric), and the names the rest of the work relies on."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from pgcluster.model.monitoring import (
    CERTIFICATE_EXPIRY_METRIC,
    render_alerts,
    render_exporter_queries,
)
from tests.conftest import REPO
from tests.unit.helpers import ALL
from tests.unit.monitoring.cases import healthy

# The contract of issue 14: Prometheus' scrape configuration, the console page and the
# live tests (tests/integration/test_12_monitoring.py) read these.
CONTRACT = {
    "pgcluster_node_in_recovery", "pgcluster_node_replay_lag_seconds",
    "pgcluster_node_replay_lag_bytes", "pgcluster_node_wal_receiver_streaming",
    "pgcluster_node_connections", "pgcluster_node_max_connections",
    "pgcluster_archiver_failing", "pgcluster_archiver_failed_count",
    "pgcluster_archiver_last_archive_age_seconds",
    "pgcluster_slot_active", "pgcluster_slot_retained_wal_bytes",
    "pgcluster_backup_newest_full_age_seconds", "pgcluster_backup_newest_full_failed",
}
QUERY_KEYS = {"query", "metrics", "master", "cache_seconds"}
USAGES = {"GAUGE", "COUNTER", "LABEL"}


def queries(**data: Any) -> dict[str, Any]:
    return yaml.safe_load(render_exporter_queries({**ALL, **data}))


def defined() -> dict[str, str]:
    """The series the queries give, <query>_<column>, to their usage (LABEL columns
    name no series)."""
    found = {}
    for name, spec in queries().items():
        for metric in spec["metrics"]:
            ((column, how),) = metric.items()
            if how["usage"] != "LABEL":
                found[f"{name}_{column}"] = how["usage"]
    return found


def test_the_queries_file_is_postgres_exporter_0_11_s_format() -> None:
    found = queries()
    assert found, "no queries"
    for name, spec in found.items():
        assert re.fullmatch(r"pgcluster_[a-z_]+", name), name
        assert set(spec) <= QUERY_KEYS and {"query", "metrics"} <= set(spec), name
        assert isinstance(spec["query"], str) and spec["query"].lstrip().upper().startswith(
            "SELECT"), name
        assert isinstance(spec.get("master", False), bool), name
        assert isinstance(spec.get("cache_seconds", 0), int), name
        columns = []
        for metric in spec["metrics"]:
            assert isinstance(metric, dict) and len(metric) == 1, (name, metric)
            ((column, how),) = metric.items()
            assert set(how) == {"usage", "description"}, (name, column)
            assert how["usage"] in USAGES and how["description"].strip(), (name, column)
            columns.append(column)
        assert len(columns) == len(set(columns)), name
        # Each column is one the query returns (AS name, or a bare column of its table).
        for column in columns:
            assert re.search(rf"\b{column}\b", spec["query"]), (name, column)


def test_it_defines_the_names_of_the_contract() -> None:
    assert not CONTRACT - set(defined()), CONTRACT - set(defined())
    assert defined()["pgcluster_archiver_failed_count"] == "COUNTER"
    slot = {column: how["usage"] for metric in queries()["pgcluster_slot"]["metrics"]
            for column, how in metric.items()}
    assert slot["slot_name"] == "LABEL"
    repository = {column: how["usage"] for metric in
                  queries()["pgcluster_backup_repository"]["metrics"]
                  for column, how in metric.items()}
    assert repository == {"repository": "LABEL", "newest_full_age_seconds": "GAUGE"}
    drill = {column: how["usage"] for metric in queries()["pgcluster_drill"]["metrics"]
             for column, how in metric.items()}
    assert drill == {"newest_age_seconds": "GAUGE", "newest_failed": "GAUGE"}


def _pgcluster_names(text: str) -> set[str]:
    return set(re.findall(r"\bpgcluster_[a-z_]+\b", text))


def test_every_pgcluster_series_a_rule_reads_is_defined() -> None:
    known = set(defined()) | {CERTIFICATE_EXPIRY_METRIC}
    for engine in ("manual", "patroni"):
        for group in yaml.safe_load(render_alerts({**ALL, "ha_engine": engine}))["groups"]:
            for rule in group["rules"]:
                missing = _pgcluster_names(rule["expr"]) - known
                assert not missing, f"{rule['alert']} reads {missing}, which no query defines"


def test_every_pgcluster_series_of_the_promtool_cases_is_defined() -> None:
    # The cases feed the rules what the exporters would send: no invented series.
    known = set(defined()) | {CERTIFICATE_EXPIRY_METRIC}
    used = {key.split("{")[0] for key in healthy(True, 0)}
    assert {n for n in used if n.startswith("pgcluster_")} == known


def test_the_queries_run_in_the_registry_s_database_as_the_monitor_role() -> None:
    text = render_exporter_queries({**ALL, "monitor_user": "watcher",
                                    "backup_registry_database": "opsdb"})
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert "watcher" in header and "opsdb" in header
    assert "pgcluster.backups" in queries()["pgcluster_backup"]["query"]
    assert "pgcluster.backups" in queries()["pgcluster_backup_repository"]["query"]
    assert "pgcluster.backups" in queries()["pgcluster_drill"]["query"]


def test_the_repository_query_reads_pgbackrest_s_rows_only() -> None:
    # path is repo<N>/<label> under pgBackRest, full/<stamp> under the default engine: no
    # row (no series, no alert) there. Grouped over every full row of a repository, the
    # ok ones filtered in the aggregate: a repository whose full backups all failed still
    # answers, 1e9.
    query = " ".join(queries()["pgcluster_backup_repository"]["query"].split())
    assert "WHERE kind = 'full' AND path ~ '^repo[0-9]+/'" in query
    assert "substring(path FROM '^(repo[0-9]+)/') AS repository" in query
    assert "FILTER (WHERE status = 'ok' AND removed_at IS NULL)" in query
    assert "1e9)::float8 AS newest_full_age_seconds" in query
    assert "GROUP BY" in query


def test_the_drill_query_reads_the_newest_drill_as_status_does() -> None:
    # The row pgcluster status judges (LAST_DRILL_SQL): the newest drill by start, its
    # age from its end, else its start; none: 1e9 (which no alert reads as a fault) and
    # not failed. Each column a scalar subquery: one row, drills or not.
    query = " ".join(queries()["pgcluster_drill"]["query"].split())
    assert query.count("WHERE kind = 'drill' ORDER BY started_at DESC, id DESC LIMIT 1") == 2
    assert "now() - coalesce(finished_at, started_at)" in query
    assert "1e9)::float8 AS newest_age_seconds" in query
    assert "(status = 'failed')::int" in query and "0) AS newest_failed" in query
    assert "FROM pgcluster.backups" in query and "GROUP BY" not in query


def test_the_console_page_and_the_grafana_dashboard_read_only_defined_series() -> None:
    # Both are read by people: a renamed series would leave a panel silently empty.
    known = set(defined()) | {CERTIFICATE_EXPIRY_METRIC}
    # The page's series, not the names of its library's templates.
    console = re.sub(r'template "\w+"', "", (REPO / "templates/monitoring/consoles/"
                                             "pgcluster.html").read_text())
    dashboard = json.loads((REPO / "templates/monitoring/grafana/pgcluster.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for where, text in (("console", console), *(("grafana", e) for e in exprs)):
        missing = _pgcluster_names(text) - known
        assert not missing, f"{where} reads {missing}, which no query defines"
    assert all('cluster="$cluster"' in e for e in exprs), "a panel across every cluster"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
