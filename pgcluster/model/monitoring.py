"""The alert rules and postgres_exporter's queries (templates/monitoring/alerts.yml.j2 and
postgres-exporter-queries.yaml.j2), rendered from group_data: thresholds alert_*, the
paths whose filesystems must not fill, the HA engine (Patroni's and etcd's rules only
under Patroni)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pgcluster.control.templating import render_template
from pgcluster.model.layout import Layout
from pgcluster.model.settings import duration_seconds


def mount_regex(path: str) -> str:
    """A PromQL regex matching the mount points a path may live on: the path and every
    directory above it (node_exporter reports the one it is on; the others are not
    mount points, or are the root, which filling is as bad)."""
    parents = [str(p) for p in (PurePosixPath(path), *PurePosixPath(path).parents)]
    return "^(" + "|".join(sorted(set(parents), key=len)) + ")$"


def alert_context(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"a": {
        "for_": int(duration_seconds(data["alert_for"])),
        "lag_bytes": int(data["alert_replication_lag_bytes"]),
        "lag_seconds": int(duration_seconds(data["alert_replication_lag"])),
        "slot_bytes": int(data["alert_slot_retained_bytes"]),
        "archive_age": int(duration_seconds(data["alert_archive_wait"])),
        "full_age": int(duration_seconds(data["alert_full_backup_age"])),
        "connections_ratio": float(data["alert_connections_ratio"]),
        "certificate_days": int(data["alert_certificate_days"]),
        "free_ratio": float(data["alert_free_space_ratio"]),
        "backup_mounts": mount_regex(str(data["backup_root"])),
        "data_mounts": mount_regex(Layout.from_data(data).data_dir),
        "patroni": data.get("ha_engine") == "patroni",
    }}


def render_alerts(data: Mapping[str, Any]) -> str:
    return render_template("monitoring/alerts.yml.j2", alert_context(data))


def render_exporter_queries(data: Mapping[str, Any]) -> str:
    return render_template("monitoring/postgres-exporter-queries.yaml.j2",
                           {"monitor_user": data["monitor_user"],
                            "database": data["backup_registry_database"]})
