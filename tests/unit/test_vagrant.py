"""The Vagrantfile: valid Ruby, three Debian 12 VMs with the seed's names on a private
network, both providers, sized from the environment, no provisioner; and inventory/vagrant.py
reaching the same machines at the same addresses with the keys Vagrant makes."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pgcluster.errors import ConfigError
from tests.conftest import REPO
from tests.unit.inventories import load_inventory

STUB = Path(__file__).parent / "fixtures" / "vagrant_stub.rb"
SEED_NAMES = ["postgresql-primary", "postgresql-standby", "postgresql-readonly"]


def ruby() -> str:
    path = shutil.which("ruby")
    if not path:
        pytest.fail("ruby is needed to check the Vagrantfile: apt-get install ruby "
                    "(.ci/run installs it)")
    return path


def vagrantfile(**env: str) -> dict[str, Any]:
    """What the Vagrantfile configures, evaluated against a recording stand-in for Vagrant."""
    result = subprocess.run([ruby(), str(STUB), str(REPO / "Vagrantfile")], cwd=REPO,
                            env={**os.environ, **env}, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    (config,) = json.loads(result.stdout)
    assert config["version"] == "2"
    return config["config"]


def machines(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {define["args"][0]: define["block"] for define in config["vm"]["define()"]}


def private_address(machine: dict[str, Any]) -> str:
    (network,) = [n for n in machine["vm"]["network()"] if n["args"] == ["private_network"]]
    return network["options"]["ip"]


@pytest.fixture
def vagrant_inventory(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PGCLUSTER_ADMIN_PASSWORD", "vm-admin")
    monkeypatch.setenv("PGCLUSTER_REPLICATION_PASSWORD", "vm-repl")
    monkeypatch.setenv("PGCLUSTER_REWIND_PASSWORD", "vm-rewind")
    monkeypatch.setenv("PGCLUSTER_APP_PASSWORD", "vm-app")
    monkeypatch.setenv("PGCLUSTER_PATRONI_REST_PASSWORD", "vm-patroni")
    monkeypatch.setenv("PGCLUSTER_ALLOW_DOWN", "1")  # no VM here: no keys either
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    return load_inventory("inventory/vagrant.py")


def test_vagrantfile_is_valid_ruby() -> None:
    result = subprocess.run([ruby(), "-c", "Vagrantfile"], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Syntax OK"


def test_three_debian_12_vms_with_the_seed_names_on_a_private_network() -> None:
    config = vagrantfile()
    assert config["vm"]["box"] == "debian/bookworm64"
    vms = machines(config)
    assert list(vms) == SEED_NAMES
    network = ipaddress.ip_network("192.168.56.0/24")
    addresses = [private_address(vm) for vm in vms.values()]
    assert all(ipaddress.ip_address(a) in network for a in addresses)
    assert len(set(addresses)) == 3
    assert all(vm["vm"]["hostname"] == name for name, vm in vms.items())


def test_both_providers_sized_from_the_environment() -> None:
    for env, memory, cpus in (({}, 1024, 1),
                              ({"PGCLUSTER_VM_MEMORY": "2048", "PGCLUSTER_VM_CPUS": "2"}, 2048, 2)):
        for vm in machines(vagrantfile(**env)).values():
            providers = {p["args"][0]: p["block"] for p in vm["vm"]["provider()"]}
            assert set(providers) == {"virtualbox", "libvirt"}
            for settings in providers.values():
                assert (settings["memory"], settings["cpus"]) == (memory, cpus)


def test_no_provisioner_and_no_shared_folder() -> None:
    """All provisioning is pyinfra's: nothing in the Vagrantfile duplicates the deploy."""
    config = vagrantfile()
    assert "provision()" not in json.dumps(config)
    (folder,) = config["vm"]["synced_folder()"]
    assert folder["options"] == {"disabled": True}


def test_inventory_names_the_vagrantfile_machines_and_addresses(vagrant_inventory) -> None:
    in_vagrantfile = {name: private_address(vm) for name, vm in machines(vagrantfile()).items()}
    in_inventory = {h.name: h.data.ssh_hostname for h in vagrant_inventory}
    assert in_inventory == in_vagrantfile
    assert {h.data.node_name: h.data.node_address for h in vagrant_inventory} == in_vagrantfile
    roles = {h.name: [g for g in h.groups if g != "vagrant"] for h in vagrant_inventory}
    assert roles == {"postgresql-primary": ["primary"], "postgresql-standby": ["standby"],
                     "postgresql-readonly": ["readonly"]}


def test_inventory_logs_in_as_vagrant_with_sudo_and_vagrants_keys(vagrant_inventory) -> None:
    for host in vagrant_inventory:
        assert host.data.ssh_user == "vagrant" and host.data._sudo is True
        key = Path(host.data.ssh_key)
        assert key == REPO / ".vagrant" / "machines" / host.name / "virtualbox" / "private_key"


def test_inventory_finds_keys_where_vagrant_dotfile_path_says(
        monkeypatch: pytest.MonkeyPatch, vagrant_inventory, tmp_path: Path) -> None:
    monkeypatch.setenv("VAGRANT_DOTFILE_PATH", str(tmp_path))
    for name in SEED_NAMES:
        key = tmp_path / "machines" / name / "libvirt" / "private_key"
        key.parent.mkdir(parents=True)
        key.write_text("key")
    monkeypatch.delenv("PGCLUSTER_ALLOW_DOWN", raising=False)
    for host in load_inventory("inventory/vagrant.py"):
        assert Path(host.data.ssh_key) == tmp_path / "machines" / host.name / "libvirt" / (
            "private_key")
        assert host.data.admin_password == "vm-admin"  # from the environment, no default


def test_inventory_follows_the_provider(monkeypatch: pytest.MonkeyPatch,
                                        vagrant_inventory) -> None:
    monkeypatch.setenv("VAGRANT_DEFAULT_PROVIDER", "libvirt")
    for host in load_inventory("inventory/vagrant.py"):
        assert Path(host.data.ssh_key).parent.name == "libvirt"


def test_inventory_stops_before_connecting_when_the_vms_were_never_created(
        monkeypatch: pytest.MonkeyPatch, vagrant_inventory, tmp_path: Path) -> None:
    monkeypatch.delenv("PGCLUSTER_ALLOW_DOWN")
    monkeypatch.setenv("VAGRANT_DOTFILE_PATH", str(tmp_path))  # whatever this checkout holds
    with pytest.raises(ConfigError, match="create the VMs with `vagrant up`"):
        load_inventory("inventory/vagrant.py")
