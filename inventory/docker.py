"""The Docker lab: three systemd containers reached like VMs (the @lab connector: docker
exec into running containers; it never starts, commits or removes one).

Names, addresses and ports come from lab/seed.toml (PGCLUSTER_LAB selects another lab,
as the test suite does). Create the lab first: `make cluster`, or
`pyinfra -y @local deploys/lab.py`. Before any host is touched this file validates the
inventory and group data, and refuses to go on when a container is missing or stopped,
unless PGCLUSTER_ALLOW_DOWN=1 (set by `python -m pgcluster` commands such as status and
failover, which treat a stopped node as an unreachable host).
"""

import ipaddress
import os

from pgcluster.lab import load_lab, require_running
from pgcluster.preflight import check_inventory

_lab = load_lab()
# Who may log in with a password: only this machine. Its clients reach the nodes through
# the ports published on its loopback, and Docker forwards those connections from the lab
# network's gateway (the subnet's first address), so that one address is the lab's only
# client network: any other container, even on the lab network, is refused by pg_hba.conf
# (tests/integration/test_06_security.py shows it). Add networks here to let more in.
_GATEWAY = f"{next(ipaddress.ip_network(_lab.subnet).hosts())}/32"


def _hosts(role: str) -> list:
    return [
        (
            f"@lab/{node.name}",
            {
                "node_name": node.name,
                "node_address": node.address,
                "postgresql_port": 5432,  # the lab maps published_port -> 5432 in the container
                "published_port": node.published_port,
                "client_networks": [_GATEWAY],
                # Clients on this machine connect to 127.0.0.1 (the published port) with
                # sslmode=verify-full: the certificate names that address too.
                "tls_extra_names": ["localhost", _lab.bind_address],
            },
        )
        for node in _lab.nodes
        if node.role == role
    ]


primary = _hosts("primary")
standby = _hosts("standby")
readonly = _hosts("readonly")

check_inventory(globals(), __file__)
if os.environ.get("PGCLUSTER_ALLOW_DOWN") != "1":
    require_running(_lab)
