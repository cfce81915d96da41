"""The Docker lab: three systemd containers reached with `docker exec` (pyinfra @docker).

Names, addresses and ports come from lab/seed.toml (PGCLUSTER_LAB selects another lab,
as the test suite does). Create the lab first: `make cluster`, or
`pyinfra -y @local deploys/lab.py`. This file refuses to go on when a container is missing
or stopped, and validates the inventory and group data before any host is touched.
"""

from pgcluster.lab import load_lab, require_running
from pgcluster.preflight import check_inventory

_lab = load_lab()


def _host(role: str) -> list:
    return [
        (
            f"@docker/{node.name}",
            {
                "node_name": node.name,
                "node_address": node.address,
                "postgresql_port": 5432,  # the lab maps published_port -> 5432 in the container
                "published_port": node.published_port,
                # Clients reach the lab from the Docker network (the host's published ports
                # arrive from the network's gateway).
                "client_networks": [_lab.subnet],
            },
        )
        for node in _lab.nodes
        if node.role == role
    ]


primary = _host("primary")
standby = _host("standby")
readonly = _host("readonly")

check_inventory(globals(), __file__)
require_running(_lab)
