"""The alert rules and postgres_exporter's queries (templates/monitoring/alerts.yml.j2 and
postgres-exporter-queries.yaml.j2), rendered from group_data: the thresholds alert_*, the
paths whose filesystems must not fill, the HA engine (Patroni's and etcd's rules only
under Patroni).

The metric names are a contract with the exporters' installation, Prometheus' scrape
configuration and the live tests (docs/monitoring.md): every series of a database node has
`instance` = the node's name and `cluster` = the cluster's; the queries file defines the
pgcluster_* series, node_exporter's textfile collector the certificate's expiry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pgcluster.control.templating import render_template
from pgcluster.model.layout import Layout
from pgcluster.model.settings import duration_seconds

# node_exporter's textfile metric written by the deploy (pgcluster.model.scrape's
# TLS_EXPIRY_FILE), not a query: pg_monitor cannot read the certificate's file.
CERTIFICATE_EXPIRY_METRIC = "pgcluster_tls_certificate_expiry_timestamp_seconds"


def promql_string(text: str) -> str:
    """A PromQL double-quoted string. PromQL unquotes it as Go does, and JSON's escapes
    (\\\\, \\", \\n, \\uXXXX) are a subset of Go's: no value can end the string."""
    return json.dumps(str(text), ensure_ascii=True)


def mount_candidates(path: str) -> list[str]:
    """The mount points a path may live on, deepest first: the path itself and each
    directory above it, down to /. (Validation lets only absolute paths through; any other
    text still ends up quoted, never as PromQL.)"""
    pure = PurePosixPath(str(path))
    return [str(p) for p in (pure, *pure.parents)]


def free_fraction(path: str) -> str:
    """PromQL for the fraction of free space on the filesystem `path` is on, one series
    per node: node_exporter reports every mount point, and the one that holds `path` is
    the deepest of its candidates that the node has. The root alone would be wrong when
    backup_root or the data directory is its own volume (the lab's, most servers'), and
    every candidate would alert twice for the same full disk, under the wrong name.

    For each candidate: its free fraction, unless the node has a deeper candidate mounted
    (`unless on(cluster, instance)`); the `or` of them keeps one per node."""
    candidates = mount_candidates(path)
    parts = []
    for depth, mount in enumerate(candidates):
        selector = f"{{mountpoint={promql_string(mount)}}}"
        part = f"node_filesystem_avail_bytes{selector} / node_filesystem_size_bytes{selector}"
        deeper = candidates[:depth]
        if deeper:
            pattern = promql_string("|".join(re.escape(m) for m in deeper))
            part = (f"({part} unless on(cluster, instance) "
                    f"node_filesystem_size_bytes{{mountpoint=~{pattern}}})")
        parts.append(part)
    return " or ".join(parts)


def alert_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """The rules' template context, from one host's data (group_data/all.py's defaults
    and its overrides): the bounds as plain numbers, in seconds, bytes and fractions."""
    scrape = duration_seconds(data["monitor_scrape_interval"])
    return {
        # How long a condition holds before its alert fires (Prometheus' `for`).
        "for_default": int(duration_seconds(data["alert_for"])),
        # Two primaries: after a switchover the old primary's last sample (a primary)
        # lasts until its next scrape, while the new one is already a primary, so the
        # alert waits at least two scrape intervals, whatever alert_split_brain_for says.
        "for_split_brain": int(max(duration_seconds(data["alert_split_brain_for"]),
                                   2 * scrape)),
        "lag_bytes": int(data["alert_replication_lag_bytes"]),
        "lag_seconds": int(duration_seconds(data["alert_replication_lag"])),
        "slot_bytes": int(data["alert_slot_retained_bytes"]),
        "archive_wait": int(duration_seconds(data["alert_archive_wait"])),
        "full_backup_age": int(duration_seconds(data["alert_full_backup_age"])),
        # The newest restore drill's bound (None: any age, no rule), as status reads it.
        "drill_max_age": None if data.get("drill_max_age") in (None, "")
        else int(duration_seconds(data["drill_max_age"])),
        "connections_ratio": float(data["alert_connections_ratio"]),
        "certificate_days": int(data["alert_certificate_days"]),
        "free_ratio": float(data["alert_free_space_ratio"]),
        # The filesystems that must not fill: backup_root's (the WAL archive and the
        # backups, on every node) and the data directory's (Layout: Debian's
        # /var/lib/postgresql/<version>/<cluster>, under either engine).
        "backup_root": str(data["backup_root"]),
        "backup_root_free": free_fraction(str(data["backup_root"])),
        "data_dir": Layout.from_data(data).data_dir,
        "data_dir_free": free_fraction(Layout.from_data(data).data_dir),
        "patroni": data.get("ha_engine") == "patroni",
    }


def render_alerts(data: Mapping[str, Any]) -> str:
    return render_template("monitoring/alerts.yml.j2", alert_context(data))


def exporter_queries_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """The queries run as monitor_user in the backup registry's database (the exporter's
    connection names it: templates/monitoring/postgres-exporter.default.j2); the file
    only says so in its header."""
    return {"monitor_user": data["monitor_user"], "database": data["backup_registry_database"]}


def render_exporter_queries(data: Mapping[str, Any]) -> str:
    return render_template("monitoring/postgres-exporter-queries.yaml.j2",
                           exporter_queries_context(data))
