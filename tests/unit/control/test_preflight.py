"""Inventory files validate themselves, with group data, before pyinfra connects."""

from __future__ import annotations

import pytest

from pgcluster.control.preflight import check_inventory, host_entries, validate_inventory
from pgcluster.errors import ConfigError
from pgcluster.model.cluster import HostEntry
from tests.unit.helpers import entry, three_nodes


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
    monkeypatch.delenv("PGCLUSTER_PATRONI_REST_PASSWORD", raising=False)
    groups = inventory(primary=[("db1", {"node_address": "10.0.0.1"})],
                       standby=[("db2", {"node_address": "10.0.0.2"})])
    with pytest.raises(ConfigError) as caught:
        check_inventory(groups, "inventory/production.py")
    assert "admin_password is not set for db1, db2" in str(caught.value)
    assert "replication_password is not set" in str(caught.value)
    # Patroni's password only where Patroni runs.
    assert "patroni_rest_password" not in str(caught.value)
    patroni = {"ha_engine": "patroni"}
    groups = inventory(primary=[("db1", {"node_address": "10.0.0.1", **patroni})],
                       standby=[("db2", {"node_address": "10.0.0.2", **patroni})])
    with pytest.raises(ConfigError) as caught:
        check_inventory(groups, "inventory/production.py")
    assert "patroni_rest_password is not set for db1, db2" in str(caught.value)


def test_environment_supplies_the_passwords(monkeypatch) -> None:
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "from-env")
    monkeypatch.setenv("PGCLUSTER_REPLICATION_PASSWORD", "from-env-too")
    monkeypatch.setenv("PGCLUSTER_REWIND_PASSWORD", "from-env-as-well")
    monkeypatch.setenv("PGCLUSTER_APP_PASSWORD", "from-env-for-the-app")
    monkeypatch.setenv("PGCLUSTER_PATRONI_REST_PASSWORD", "from-env-for-patroni")
    groups = inventory(primary=[("db1", {"node_address": "10.0.0.1"})],
                       standby=[("db2", {"node_address": "10.0.0.2"})])
    cluster = check_inventory(groups, "inventory/production.py")
    assert [n.name for n in cluster.nodes] == ["db1", "db2"]


@pytest.mark.parametrize("key,env", [("admin_password", "PGCLUSTER_ADMIN_PASSWORD"),
                                     ("replication_password", "PGCLUSTER_REPLICATION_PASSWORD")])
@pytest.mark.parametrize("missing", [None, ""])
def test_missing_password(key: str, env: str, missing: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_inventory(three_nodes(**{key: missing}))
    assert len(caught.value.problems) == 1, caught.value.problems
    message = caught.value.problems[0]
    assert f"{key} is not set for db1, db2, db3" in message
    assert f"export {env}=" in message


def test_check_raises_one_error_listing_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_inventory([entry("db1", "standby", admin_password=None), entry("db2", "standby")])
    text = str(caught.value)
    assert text.startswith("pgcluster cannot continue:")
    assert "no primary" in text and "admin_password is not set" in text
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize("path", ["inventory/docker.py", "inventory/scratch.py",
                                  "inventory/example.py", "inventory/vagrant.py",
                                  "inventory/standins.py"])
def test_the_shipped_inventories_validate_clean(monkeypatch, path: str) -> None:
    """Every inventory, with its group data and host data, passes the typed checks (pyinfra
    loads it as `pyinfra INVENTORY DEPLOY` does; no host is reached)."""
    from tests.unit.inventories import load_inventory

    for key in ("ADMIN", "REPLICATION", "REWIND", "APP", "PATRONI_REST"):
        monkeypatch.setenv(f"PGCLUSTER_{key}_PASSWORD", f"not-the-lab-{key.lower()}")
    monkeypatch.setenv("PGCLUSTER_ALLOW_DOWN", "1")  # no lab container or VM needed
    monkeypatch.setenv("PGCLUSTER_SSH_KEY", "/nonexistent/id_ed25519")  # the stand-ins'
    monkeypatch.delenv("PGCLUSTER_LAB", raising=False)
    inventory = load_inventory(path)
    entries = [HostEntry(h.name, tuple(h.groups), h.data.dict()) for h in inventory]
    assert validate_inventory(entries).nodes  # as the deploys validate it again


def test_check_inventory_says_in_which_file_a_value_was_set(monkeypatch) -> None:
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "from-env")
    monkeypatch.setenv("PGCLUSTER_REPLICATION_PASSWORD", "from-env-too")
    monkeypatch.setenv("PGCLUSTER_REWIND_PASSWORD", "from-env-as-well")
    monkeypatch.setenv("PGCLUSTER_APP_PASSWORD", "from-env-for-the-app")
    monkeypatch.setenv("PGCLUSTER_PATRONI_REST_PASSWORD", "from-env-for-patroni")
    groups = inventory(primary=[("db1", {"node_address": "10.0.0.1", "shared_buffers": 128})],
                       standby=[("db2", {"node_address": "10.0.0.2/24"})])
    with pytest.raises(ConfigError) as caught:
        check_inventory(groups, "inventory/production.py")
    assert caught.value.problems == [
        "shared_buffers = 128 on db1 has no unit (PostgreSQL would read it as 128 x 8kB): use a "
        "size with a unit, kB, MB, GB or TB, from 128kB to 8589934584kB, e.g. shared_buffers = "
        "'128MB' (set in host data in inventory/production.py)",
        "node_address = '10.0.0.2/24' on db2 is a network, not one host: use one host: an IP "
        "address (e.g. '10.0.1.5') or a DNS host name of letters, digits, - and . (e.g. "
        "'db1.example.net'), e.g. node_address = '10.0.1.5' (set in host data in "
        "inventory/production.py)",
    ]


def test_a_value_from_group_data_names_its_file(monkeypatch) -> None:
    from pgcluster.control.preflight import _gather

    monkeypatch.delenv("PGCLUSTER_ADMIN_PASSWORD", raising=False)
    gathered = _gather(inventory(primary=[("@lab/a", {"node_name": "a"})]),
                       "inventory/docker.py")
    assert gathered.entries[0].data["shared_buffers"] == "64MB"
    assert gathered.origins[("@lab/a", "shared_buffers")] == "group_data/docker.py"
    assert gathered.origins[("@lab/a", "max_connections")] == "group_data/all.py"
    assert gathered.origins[("@lab/a", "node_name")] == "host data in inventory/docker.py"
