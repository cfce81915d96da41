"""On every other node: clone it from the live primary when it is not already its
replica, keep it enabled, then wait on the primary until every replica streams.

Every step is planned on every host (a no-op where it does not apply); see
pgcluster.operations.conditional.only_if for why.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import systemd

from pgcluster.model.conninfo import primary_conninfo
from pgcluster.model.layout import Layout
from pgcluster.model.patroni import patronictl
from pgcluster.model.topology import Topology
from pgcluster.operations import postgres as operations
from pgcluster.operations.conditional import only_if

# The primary_conninfo options a running replica must have as pgcluster renders them.
FOLLOW_KEYS = ("host", "port", "user", "passfile", "application_name", "sslmode", "sslrootcert",
               "channel_binding")


@deploy("Clone the replicas")
def clone(topology: Topology) -> None:
    data = host.data.dict()
    layout = Layout.from_data(data)
    me = topology.cluster.node(host.name)
    replica = not topology.is_primary(host.name)
    only_if(
        replica, operations.clone_replica,
        name=f"Clone replicas from {topology.primary.name} (pg_basebackup) where needed",
        layout=layout,
        conninfo=primary_conninfo(topology.primary, me, data),
        slot=me.slot,
        port=int(data["postgresql_port"]),
    )
    only_if(
        replica, systemd.service,
        name=f"Start and enable {layout.service} on replicas",
        service=layout.service,
        running=True,
        enabled=True,
    )
    # Replicas cloned before TLS (or before any change of these options) are re-pointed.
    only_if(
        replica, operations.follow_conninfo,
        name=f"Replicas reach {topology.primary.name} over TLS (verify-full)",
        layout=layout,
        conninfo=primary_conninfo(topology.primary, me, data),
        keys=FOLLOW_KEYS,
        port=int(data["postgresql_port"]),
    )


@deploy("Wait for streaming replication")
def wait(topology: Topology, engine: str = "manual") -> None:
    only_if(
        topology.is_primary(host.name) and bool(topology.replicas), operations.wait_for_replicas,
        name="Every replica streams from the primary",
        application_names=[r.name for r in topology.replicas],
        timeout=int(host.data.get("replica_wait_timeout", 180)),
        port=int(host.data.get("postgresql_port", 5432)),
        # Patroni makes the replicas: its view says which one is stuck, and why.
        explain=patronictl("list") if engine == "patroni" else None,
    )
