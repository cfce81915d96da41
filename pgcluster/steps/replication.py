"""The cluster's replication, by its engine: with the manual engine pgcluster creates the
primary, clones the replicas and waits until they stream; with Patroni, etcd and Patroni
run on every node, Patroni bootstraps the primary (or takes the running one over) and makes
the replicas, and pgcluster adds the seed's roles and data and waits until they stream."""

from __future__ import annotations

from pgcluster.model.topology import Topology
from pgcluster.steps import patroni, primary, replicas


def build(topology: Topology, engine: str) -> None:
    if engine == "patroni":
        patroni.install()
        patroni.etcd(topology)
        patroni.patroni(topology)
        primary.initialise(topology, engine)
    else:
        primary.initialise(topology, engine)
        replicas.clone(topology)
    replicas.wait(topology, engine)


def finish(topology: Topology, engine: str) -> None:
    """Last in the deploy: under Patroni, the restarts that changed settings wait for,
    rolling (it may move the leader by a switchover)."""
    if engine == "patroni":
        patroni.restart_pending(topology)
