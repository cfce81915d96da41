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


def test_standin_inventory_reaches_nodes_over_ssh_with_sudo(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    standins = StandIns(load_lab("ssh"), "deploy", tmp_path / "id_ed25519", "ssh")
    for name, value in {**standins.env, "PGCLUSTER_ADMIN_PASSWORD": "a",
                        "PGCLUSTER_REPLICATION_PASSWORD": "r",
                        "PGCLUSTER_REWIND_PASSWORD": "w",
                        "PGCLUSTER_APP_PASSWORD": "p",
                        "PGCLUSTER_PATRONI_REST_PASSWORD": "t"}.items():
        monkeypatch.setenv(name, value)
    hosts = {h.name: h.data for h in load_inventory(INVENTORY)}
    assert list(hosts) == ["pgssh-primary", "pgssh-standby", "pgssh-readonly"]
    for name, data in hosts.items():
        node = standins.lab.node(name)
        assert (data.ssh_hostname, data.node_address) == (node.address, node.address)
        assert (data.ssh_user, data._sudo, data.ssh_key) == ("deploy", True,
                                                             str(standins.key))
        assert data.ssh_known_hosts_file == "/dev/null"
        assert data.admin_password == "a"  # from the environment: no lab default here


def test_standin_inventory_needs_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCLUSTER_SSH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"python -m pgcluster\.lab\.standins up"):
        load_inventory(INVENTORY)
