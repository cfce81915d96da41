"""Inventory files validate themselves, with group data, before pyinfra connects."""

from __future__ import annotations

import pytest

from pgcluster.errors import ConfigError
from pgcluster.preflight import check_inventory, host_entries


def inventory(**groups):
    return {"__file__": "x", "_private": ["ignored"], "check_inventory": check_inventory,
            **groups}


def test_group_data_precedence_all_then_inventory_group_then_host(monkeypatch) -> None:
    monkeypatch.delenv("PGCLUSTER_ADMIN_PASSWORD", raising=False)
    entries = host_entries(
        inventory(primary=[("@lab/a", {"node_name": "a", "shared_buffers": "1GB"})],
                  standby=["@lab/b"]),
        "inventory/docker.py",
    )
    a, b = entries
    assert a.groups == ("primary", "docker") and b.groups == ("standby", "docker")
    assert a.data["max_connections"] == 100  # group_data/all.py
    assert b.data["admin_password"] == "admin123"  # group_data/docker.py (lab default)
    assert b.data["shared_buffers"] == "64MB"  # group_data/docker.py beats all.py
    assert a.data["shared_buffers"] == "1GB"  # host data beats both


def test_lab_defaults_never_apply_to_other_inventories(monkeypatch) -> None:
    monkeypatch.delenv("PGCLUSTER_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_REPLICATION_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_REWIND_PASSWORD", raising=False)
    monkeypatch.delenv("PGCLUSTER_APP_PASSWORD", raising=False)
    groups = inventory(primary=[("db1", {"node_address": "10.0.0.1"})],
                       standby=[("db2", {"node_address": "10.0.0.2"})])
    with pytest.raises(ConfigError) as caught:
        check_inventory(groups, "inventory/production.py")
    assert "admin_password is not set for db1, db2" in str(caught.value)
    assert "replication_password is not set" in str(caught.value)


def test_environment_supplies_the_passwords(monkeypatch) -> None:
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "from-env")
    monkeypatch.setenv("PGCLUSTER_REPLICATION_PASSWORD", "from-env-too")
    monkeypatch.setenv("PGCLUSTER_REWIND_PASSWORD", "from-env-as-well")
    monkeypatch.setenv("PGCLUSTER_APP_PASSWORD", "from-env-for-the-app")
    groups = inventory(primary=[("db1", {"node_address": "10.0.0.1"})],
                       standby=[("db2", {"node_address": "10.0.0.2"})])
    cluster = check_inventory(groups, "inventory/production.py")
    assert [n.name for n in cluster.nodes] == ["db1", "db2"]
