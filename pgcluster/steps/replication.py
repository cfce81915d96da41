"""The cluster's replication, by its engine: with the manual engine pgcluster creates the
primary, clones the replicas and waits until they stream; with Patroni, etcd runs on every
node (or on the hosts of the inventory's `etcd` group), Patroni bootstraps the primary (or
takes the running one over) and makes the replicas, and pgcluster adds the seed's roles and
data and waits until they stream."""

from __future__ import annotations

from pyinfra import host

from pgcluster.model import patroni as model
from pgcluster.model.topology import Topology
from pgcluster.steps import live, patroni, primary, replicas


def build(topology: Topology, engine: str) -> None:
    """On every host: an etcd-only host gets etcd here and nothing else (from the same
    steps as the nodes, so that every member of etcd starts at once)."""
    database = live.database_node()
    member = model.runs_etcd(topology.cluster, host.name)
    if engine == "patroni" and (database or member):  # a proxy needs neither
        patroni.install(topology)
        patroni.etcd(topology)
        if database:
            patroni.patroni(topology)
            primary.initialise(topology, engine)
    elif database:
        primary.initialise(topology, engine)
        replicas.clone(topology)
    if database:
        replicas.wait(topology, engine)


def finish(topology: Topology, engine: str) -> None:
    """Last in the deploy: under Patroni, the restarts that changed settings wait for,
    rolling (it may move the leader by a switchover)."""
    if engine == "patroni":
        patroni.restart_pending(topology)
