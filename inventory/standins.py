"""The SSH stand-ins (lab/ssh.toml) as plain SSH hosts, described exactly as a VM or
bare-metal inventory describes its hosts: an address, a non-root user with sudo and a key.

pgcluster.lab.standins builds the stand-ins and says where their key is, through the environment:
    PGCLUSTER_SSH_KEY   private key of the login user (required)
    PGCLUSTER_SSH_USER  the login user (default deploy)
    PGCLUSTER_SSH_LAB   lab definition of the stand-ins (default ssh: lab/ssh.toml)
Passwords come from PGCLUSTER_ADMIN_PASSWORD / PGCLUSTER_REPLICATION_PASSWORD /
PGCLUSTER_REWIND_PASSWORD / PGCLUSTER_APP_PASSWORD (or secrets/standins.env), as on
any inventory other than the Docker lab.

    pyinfra -y inventory/standins.py deploys/cluster.py
"""

import os

from pgcluster.control.preflight import check_inventory
from pgcluster.errors import ConfigError
from pgcluster.lab.definition import load_lab

_lab = load_lab(os.environ.get("PGCLUSTER_SSH_LAB", "ssh"))
_key = os.environ.get("PGCLUSTER_SSH_KEY")
if not _key:
    raise ConfigError("PGCLUSTER_SSH_KEY is not set: build the stand-ins with "
                      "`python -m pgcluster.lab.standins up`, which prints the variables to export")


def _hosts(role: str) -> list:
    return [
        (
            node.name,
            {
                "ssh_hostname": node.address,
                "ssh_user": os.environ.get("PGCLUSTER_SSH_USER", "deploy"),
                "ssh_key": _key,
                # Stand-ins make new host keys at every boot: nothing to remember or check.
                "ssh_known_hosts_file": "/dev/null",
                "ssh_strict_host_key_checking": "off",
                "ssh_allow_agent": False,  # only the stand-ins' key, never the user's agent
                "ssh_look_for_keys": False,
                "_sudo": True,  # the login user is not root: every command goes through sudo
                "node_name": node.name,
                "node_address": node.address,
                "client_networks": [_lab.subnet],
            },
        )
        for node in _lab.database_machines
        if node.role == role
    ]


primary = _hosts("primary")
standby = _hosts("standby")
readonly = _hosts("readonly")
# The host restore drills restore onto, outside the cluster, where the stand-ins have one.
if _lab.drill:
    drill = _hosts("drill")

check_inventory(globals(), __file__)
