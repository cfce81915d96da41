"""The three Vagrant VMs of the Vagrantfile, reached over SSH as Vagrant's own `vagrant`
user (not root) with sudo, with the key Vagrant made for each machine.

    vagrant up                                    # or: vagrant up --provider=libvirt
    export PGCLUSTER_ADMIN_PASSWORD=... PGCLUSTER_REPLICATION_PASSWORD=...
        PGCLUSTER_REWIND_PASSWORD=... PGCLUSTER_APP_PASSWORD=...
    # (or, once: python -m pgcluster --inventory inventory/vagrant.py secrets init)
    pyinfra -y inventory/vagrant.py deploys/cluster.py

Names and addresses are the Vagrantfile's (tests/unit/test_vagrant.py keeps them equal).
The deploy is the lab's, unchanged: only how the hosts are reached differs. There are no
default passwords here. Before connecting, this file validates the inventory and group
data and checks that `vagrant up` has made each machine's key, unless
PGCLUSTER_ALLOW_DOWN=1 (a machine without a key is then an unreachable host).
"""

import os
from pathlib import Path

from pgcluster.control.preflight import check_inventory
from pgcluster.errors import ConfigError

_ROOT = Path(__file__).resolve().parent.parent
# Where Vagrant keeps its machines: .vagrant next to the Vagrantfile, or Vagrant's own
# VAGRANT_DOTFILE_PATH (relative to the Vagrantfile's directory, as Vagrant reads it).
_DOTFILE = _ROOT / os.environ.get("VAGRANT_DOTFILE_PATH", ".vagrant")

# name, role, address on the private network: as in the Vagrantfile's NODES.
_NODES = [
    ("postgresql-primary", "primary", "192.168.56.10"),
    ("postgresql-standby", "standby", "192.168.56.11"),
    ("postgresql-readonly", "readonly", "192.168.56.12"),
]
# Vagrant keeps a machine's key under the provider that created it; VAGRANT_DEFAULT_PROVIDER
# (Vagrant's own variable) chooses when both exist.
_PROVIDERS = [p for p in (os.environ.get("VAGRANT_DEFAULT_PROVIDER"), "virtualbox", "libvirt")
              if p]


def _key(name: str) -> Path:
    machine = _DOTFILE / "machines" / name
    for provider in _PROVIDERS:
        if (machine / provider / "private_key").is_file():
            return machine / provider / "private_key"
    return machine / _PROVIDERS[0] / "private_key"


def _hosts(role: str) -> list:
    return [
        (
            name,
            {
                "ssh_hostname": address,  # the private network: the address replication uses
                "ssh_user": "vagrant",  # every Vagrant box has it, with sudo and no password
                "ssh_key": str(_key(name)),
                # As `vagrant ssh` does: a re-created VM has new host keys.
                "ssh_known_hosts_file": "/dev/null",
                "ssh_strict_host_key_checking": "off",
                "_sudo": True,  # vagrant is not root: every command goes through sudo
                "node_name": name,
                "node_address": address,
                # This machine reaches the VMs from 192.168.56.1: let it (and the VMs) log in
                # with passwords (over TLS, scram-sha-256); the replication rules name each
                # node.
                "client_networks": ["192.168.56.0/24"],
                # Each VM keeps its own repository on its own disk (no shared storage).
                "backup_root_must_be_mounted": False,
            },
        )
        for name, node_role, address in _NODES
        if node_role == role
    ]


primary = _hosts("primary")
standby = _hosts("standby")
readonly = _hosts("readonly")

check_inventory(globals(), __file__)
if os.environ.get("PGCLUSTER_ALLOW_DOWN") != "1":
    _missing = [name for name, _, _ in _NODES if not _key(name).is_file()]
    if _missing:
        raise ConfigError([
            f"no Vagrant key for {name} ({_key(name)}): create the VMs "
            "with `vagrant up` (or PGCLUSTER_ALLOW_DOWN=1 to treat it as unreachable)"
            for name in _missing
        ])
