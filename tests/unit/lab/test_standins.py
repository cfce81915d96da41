"""The SSH stand-ins' key and inventory, without Docker: what the SSH suite relies on."""

from __future__ import annotations

import stat
from pathlib import Path

import paramiko
import pytest

from pgcluster.errors import ConfigError
from pgcluster.lab.definition import load_lab
from pgcluster.lab.standins import StandIns, make_key
from tests.unit.inventories import load_inventory

INVENTORY = "inventory/standins.py"


def test_key_is_private_loads_and_is_made_once(tmp_path: Path) -> None:
    key = make_key(tmp_path / "keys" / "id_ed25519")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    loaded = paramiko.Ed25519Key.from_private_key_file(str(key))
    public = Path(f"{key}.pub").read_text().split()
    assert public[:2] == [loaded.get_name(), loaded.get_base64()]
    before = key.read_bytes()
    assert make_key(key).read_bytes() == before  # reused, never replaced


def standins_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> StandIns:
    """The stand-ins' variables and the passwords (no lab defaults here) in the environment,
    as inventory/standins.py reads them, and `extra`."""
    standins = StandIns(load_lab("ssh"), "deploy", tmp_path / "id_ed25519", "ssh")
    for name, value in {**standins.env, "PGCLUSTER_ADMIN_PASSWORD": "a",
                        "PGCLUSTER_REPLICATION_PASSWORD": "r",
                        "PGCLUSTER_REWIND_PASSWORD": "w",
                        "PGCLUSTER_APP_PASSWORD": "p", **extra}.items():
        monkeypatch.setenv(name, value)
    return standins


def test_standin_inventory_reaches_nodes_over_ssh_with_sudo(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    standins = standins_env(monkeypatch, tmp_path, PGCLUSTER_PATRONI_REST_PASSWORD="t")
    inventory = load_inventory(INVENTORY)
    hosts = {h.name: h.data for h in inventory}
    assert list(hosts) == ["pgssh-primary", "pgssh-standby", "pgssh-readonly", "pgssh-drill"]
    machines = {n.name: n for n in standins.lab.database_machines}
    for name, data in hosts.items():
        node = machines[name]
        assert (data.ssh_hostname, data.node_address) == (node.address, node.address)
        assert (data.ssh_user, data._sudo, data.ssh_key) == ("deploy", True,
                                                             str(standins.key))
        assert data.ssh_known_hosts_file == "/dev/null"
        assert data.admin_password == "a"  # from the environment: no lab default here
    # The drill host is in the `drill` group only: no node of the cluster.
    assert [h.name for h in inventory.get_group("drill")] == ["pgssh-drill"]
    assert "pgssh-drill" not in {h.name for g in ("primary", "standby", "readonly")
                                 for h in inventory.get_group(g)}


def test_the_drill_host_inventory_is_the_drill_host_alone_as_a_primary_that_never_archives(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    standins_env(monkeypatch, tmp_path, PGCLUSTER_DRILL_INVENTORY=INVENTORY)
    inventory = load_inventory("inventory/drill_host.py")
    (host,) = list(inventory)
    assert host.name == "pgssh-drill"
    assert [h.name for h in inventory.get_group("primary")] == ["pgssh-drill"]
    # Reached as the stand-ins inventory says, in the cluster's group (group_data/standins).
    assert "standins" in host.groups
    assert (host.data.ssh_hostname, host.data.ssh_user) == ("172.26.0.13", "deploy")
    assert (host.data.archive_mode, host.data.ha_engine) == ("off", "manual")
    assert host.data.admin_password == "a"


def test_the_drill_host_inventory_needs_an_inventory_with_one_drill_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCLUSTER_DRILL_INVENTORY", raising=False)
    with pytest.raises(ConfigError, match="PGCLUSTER_DRILL_INVENTORY is not set"):
        load_inventory("inventory/drill_host.py")
    # The seed lab has none (its restores go to its scratch node).
    monkeypatch.setenv("PGCLUSTER_ALLOW_DOWN", "1")
    monkeypatch.setenv("PGCLUSTER_DRILL_INVENTORY", "inventory/docker.py")
    with pytest.raises(ConfigError, match="has 0 hosts in its `drill` group"):
        load_inventory("inventory/drill_host.py")


def test_standin_inventory_needs_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCLUSTER_SSH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"python -m pgcluster\.lab\.standins up"):
        load_inventory(INVENTORY)
