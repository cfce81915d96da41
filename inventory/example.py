"""Bare metal (or any Debian 12 hosts reachable over SSH): a template to copy and fill in.

    cp inventory/example.py inventory/production.py     # then edit the values below
    export PGCLUSTER_ADMIN_PASSWORD=... PGCLUSTER_REPLICATION_PASSWORD=...
        PGCLUSTER_REWIND_PASSWORD=... PGCLUSTER_APP_PASSWORD=...
    # (or, once: python -m pgcluster --inventory inventory/production.py secrets init)
    pyinfra -y inventory/production.py deploys/cluster.py

Each host needs Debian 12, sshd, and a login user that is not root and may use sudo (the
deploy runs every command through sudo). Python is not needed on the hosts. The deploy is
the lab's and the VMs', unchanged: this file only says how to reach the hosts and which
role each has. Group data for this inventory can go in group_data/<this file's name>.py
(e.g. group_data/production.py), which overrides group_data/all.py.

The addresses below are documentation addresses (RFC 5737, 198.51.100.0/24) that route
nowhere: replace every one of them. Before connecting, this file validates the inventory
and group data (one primary, distinct addresses, passwords present and not the lab's, ...).
The deploy makes the cluster's CA and certificates in secrets/production/tls/ (for
inventory/production.py); clients use its ca.crt as sslrootcert.
"""

import os

from pgcluster.control.preflight import check_inventory

# How to log in, the same for every host (a host's own entry below can override any key).
_SSH = {
    "ssh_user": "deploy",  # a user with sudo on every host; never root
    "ssh_key": "~/.ssh/id_ed25519",  # its private key on this (control) machine
    # "ssh_port": 22,  # if sshd listens elsewhere
    "_sudo": True,  # every command runs through sudo as root
    # If sudo asks this user for a password, supply it from the environment (never here):
    "_sudo_password": os.environ.get("PGCLUSTER_SUDO_PASSWORD"),
    # Host keys are checked against ~/.ssh/known_hosts; pyinfra's default accepts a host's
    # key the first time it sees it. Use "yes" to accept only keys you have added yourself.
    # "ssh_strict_host_key_checking": "yes",
}


# Networks whose clients may log in with a password (over TLS, scram-sha-256), e.g. the
# application servers. The nodes' own addresses are always allowed, for replication only.
# (Host data, not a module-level list: pyinfra would read a list here as a group of hosts.)
_CLIENT_NETWORKS = ["198.51.100.0/24"]


def _node(name: str, ssh_address: str, cluster_address: str | None = None) -> tuple:
    """One host: the name pyinfra shows (and the node's name in PostgreSQL: cluster_name,
    application_name, replication slot), where SSH reaches it, and where the other nodes
    reach its PostgreSQL (a private network, if the hosts have one; default: the same)."""
    return (name, {**_SSH, "ssh_hostname": ssh_address, "node_name": name,
                   "node_address": cluster_address or ssh_address,
                   "client_networks": _CLIENT_NETWORKS})


# Exactly one primary. After a failover the live primary wins over this list (the deploy
# reads it from the nodes); update the groups to match when convenient.
primary = [_node("db1", "198.51.100.10")]
# The hot standby: promoted by a failover.
standby = [_node("db2", "198.51.100.11")]
# The read-only replica: serves reads, never promoted.
readonly = [_node("db3", "198.51.100.12")]
# With ha_engine = "patroni" (group_data/all.py), etcd runs on the three nodes above; to
# give Patroni's DCS hosts of its own (docs/patroni.md), list three (or five) small hosts:
# etcd = [_node("etcd1", "198.51.100.20"), _node("etcd2", "198.51.100.21"),
#         _node("etcd3", "198.51.100.22")]

# A host of its own for restore drills (`pgcluster drill restore`, `pgcluster restore
# --scratch`; docs/drills.md): Debian 12 with backup_root mounted as on the nodes. Never a
# node of the cluster: each restore replaces its data directory.
# drill = [_node("drill1", "198.51.100.30")]

check_inventory(globals(), __file__)
