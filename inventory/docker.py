"""The Docker lab: three systemd containers reached like VMs (the @lab connector: docker
exec into running containers; it never starts, commits or removes one).

Names, addresses and ports come from lab/seed.toml (PGCLUSTER_LAB selects another lab,
as the test suite does). Create the lab first: `make cluster`, or
`pyinfra -y @local deploys/lab.py`. Before any host is touched this file validates the
inventory and group data, and refuses to go on when a container is missing or stopped,
unless PGCLUSTER_ALLOW_DOWN=1 (set by `python -m pgcluster` commands such as status and
failover, which treat a stopped node as an unreachable host).
"""

import os

from pgcluster.control.preflight import check_inventory
from pgcluster.lab.definition import load_lab
from pgcluster.lab.docker import require_running

_lab = load_lab()


def _hosts(role: str) -> list:
    # Names, addresses, the published port, the client network (this machine only: see
    # Lab.host_data) and the certificate's extra names, all from the lab definition.
    return [(f"@lab/{node.name}", _lab.host_data(node)) for node in _lab.nodes
            if node.role == role]


primary = _hosts("primary")
standby = _hosts("standby")
readonly = _hosts("readonly")
# Containers that run etcd only, where the lab has them (lab/etcd.toml): Patroni's DCS on
# hosts of its own. Without them etcd runs on the three nodes.
if _lab.etcd:
    etcd = [(f"@lab/{node.name}", _lab.etcd_host_data(node)) for node in _lab.etcd]
# The container that runs HAProxy, where the lab has one: the cluster's endpoints.
if _lab.proxy:
    proxy = [(f"@lab/{_lab.proxy.name}", _lab.proxy_host_data(_lab.proxy))]
# The container that runs Prometheus and Alertmanager, where the lab has one.
if _lab.monitor:
    monitor = [(f"@lab/{_lab.monitor.name}", _lab.monitor_host_data(_lab.monitor))]
# The container that runs the object store (SeaweedFS's S3), where the lab has one:
# pgBackRest's repo2 (backup_engine = "pgbackrest").
if _lab.objectstore:
    objectstore = [(f"@lab/{_lab.objectstore.name}",
                    _lab.objectstore_host_data(_lab.objectstore))]

# The container restore drills restore onto, where the lab has one (the `drill` group;
# without it they use the lab's scratch node).
if _lab.drill:
    drill = [(f"@lab/{_lab.drill.name}", _lab.host_data(_lab.drill))]

check_inventory(globals(), __file__)
if os.environ.get("PGCLUSTER_ALLOW_DOWN") != "1":
    require_running(_lab)
