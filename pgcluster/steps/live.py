"""First step of every cluster deploy: validate the inventory, then read who is primary
from the nodes (once per run, shared by every host's plan)."""

from __future__ import annotations

import weakref

import gevent.lock
from pyinfra import host, inventory, logger
from pyinfra.api import State

from pgcluster.control.preflight import validate_inventory
from pgcluster.facts.postgres import node_state
from pgcluster.model.cluster import Cluster, HostEntry, Node
from pgcluster.model.topology import Topology, decide

_cache: weakref.WeakKeyDictionary[State, Topology] = weakref.WeakKeyDictionary()
_lock = gevent.lock.RLock()


def topology(strict: bool = True) -> Topology:
    """Validate the whole inventory (again: any inventory may be used, not only ours),
    then read who is primary from the nodes. Raises before any operation is planned;
    split brain too, unless strict=False (only for stopping nodes)."""
    validate_inventory(HostEntry(h.name, tuple(h.groups), h.data.dict()) for h in inventory)
    return current(host.state, strict=strict)


def current(state: State, strict: bool = True) -> Topology:
    """The live topology for this run, read once from every host and shared by all."""
    with _lock:
        if state not in _cache:
            states = {h.name: node_state(h) for h in state.inventory.iter_activated_hosts()}
            topology = decide(Cluster.from_inventory(state.inventory), states, strict=strict)
            for note in topology.notes:
                logger.warning(f"pgcluster: {note}")
            _cache[state] = topology
        return _cache[state]


def this_node(topology: Topology) -> Node:
    return topology.cluster.node(host.name)
