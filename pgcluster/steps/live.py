"""First step of every cluster deploy: validate the inventory, then read who is primary
from the nodes (once per run, shared by every host's plan)."""

from __future__ import annotations

import weakref

import gevent.lock
from pyinfra import host, inventory, logger
from pyinfra.api import State
from pyinfra.api.state import BaseStateCallback

from pgcluster.control import secrets
from pgcluster.control.preflight import validate_inventory
from pgcluster.errors import ConfigError
from pgcluster.facts.patroni import HaServices
from pgcluster.facts.postgres import node_state
from pgcluster.model import pgbackrest
from pgcluster.model.cluster import Cluster, HostEntry, Node, is_service_host
from pgcluster.model.layout import Layout
from pgcluster.model.patroni import decide_engine, running_engine
from pgcluster.model.topology import Topology, decide
from pgcluster.steps import lock

_cache: weakref.WeakKeyDictionary[State, Topology] = weakref.WeakKeyDictionary()
_lock = gevent.lock.RLock()


def topology(strict: bool = True, operation: str | None = None) -> Topology:
    """Validate the whole inventory (again: any inventory may be used, not only ours),
    then read who is primary from the nodes. Raises before any operation is planned;
    split brain too, unless strict=False (only for stopping nodes). `operation` names a
    change that holds the cluster-wide operation lock while it runs (steps.lock)."""
    validate_inventory(HostEntry(h.name, tuple(h.groups), h.data.dict()) for h in inventory)
    stop_at_the_first_failure(host.state)
    found = current(host.state, strict=strict)
    if operation:
        lock.hold(host.state, found, operation, break_lock=flag(host.data.get("break_lock")))
    return found


def flag(value: object) -> bool:
    """A yes/no value given with --data (pyinfra passes strings through)."""
    return str(value).strip().lower() in ("1", "true", "yes", "y", "on")


class StopAtTheFirstFailure(BaseStateCallback):
    """Every deploy that reads the topology changes the cluster. pyinfra's default drops a
    host whose step failed and carries on with the others: a failover whose fence failed
    would still promote. FAIL_PERCENT 0 stops the run at the first failed step on any host
    instead; it is set when the run starts executing, because pyinfra resets what a deploy
    file sets in its config once the file is loaded, and because hosts that could not be
    reached at all (a stopped lab node) are left out before that, not failures."""

    @staticmethod
    def operation_start(state: State, op_hash: str) -> None:  # type: ignore[override]
        state.config.FAIL_PERCENT = 0


def stop_at_the_first_failure(state: State) -> None:
    with _lock:
        if not any(isinstance(h, StopAtTheFirstFailure) for h in state.callback_handlers):
            state.add_callback_handler(StopAtTheFirstFailure())


def current(state: State, strict: bool = True) -> Topology:
    """The live topology for this run, read once from every host and shared by all."""
    with _lock:
        if state not in _cache:
            cluster = Cluster.from_inventory(state.inventory)
            # `pgcluster remove NODE`: the others are configured as if it had left the
            # inventory already (it is excluded from the run, --exclude).
            if host.data.get("removed_node"):
                cluster = cluster.without(str(host.data.get("removed_node")))
            states = {h.name: node_state(h) for h in state.inventory.iter_activated_hosts()
                      if cluster.is_node(h.name)}
            topology = decide(cluster, states, strict=strict)
            topology.backup_engine = pgbackrest.decide_engine(
                host.data.get("backup_engine") or None,
                (s.get("backup_engine") for s in states.values()))
            stores = [o.name for o in cluster.objectstore_hosts]
            found = sorted({problem for h in state.inventory.iter_activated_hosts()
                            if cluster.is_node(h.name)
                            for problem in pgbackrest.problems(
                                h.data.dict(), topology.backup_engine, stores)})
            if found:
                raise ConfigError("backup_engine = \"pgbackrest\": " + "; ".join(found)
                                  + ". Secrets go in the environment or the inventory's "
                                  "secrets file (docs/backups.md)")
            for note in topology.notes:
                logger.warning(f"pgcluster: {note}")
            _cache[state] = topology
        return _cache[state]


_engines: weakref.WeakKeyDictionary[State, str] = weakref.WeakKeyDictionary()


def engine(topology: Topology) -> str:
    """The high-availability engine of this run (read once from the nodes): "patroni" where
    the cluster runs on it or ha_engine asks for it (a manual cluster is then taken over in
    place), else "manual"."""
    state = host.state
    with _lock:
        if state not in _engines:
            services = {h.name: h.get_fact(HaServices, postgresql_service=Layout.from_data(
                h.data.dict()).service) for h in state.inventory.iter_activated_hosts()
                if topology.cluster.is_node(h.name)}
            running = running_engine(services, topology.live)
            chosen = decide_engine(host.data.get("ha_engine") or None, running)
            lacking = [h.name for h in state.inventory.iter_activated_hosts()
                       if topology.cluster.is_node(h.name)
                       and not h.data.get("patroni_rest_password")]
            if chosen == "patroni" and lacking:
                raise ConfigError(secrets.missing_message("patroni_rest_password", lacking)
                                  + " (Patroni runs this cluster)")
            if running and chosen != running:
                logger.warning(f"pgcluster: ha_engine = {chosen!r}: Patroni takes over the "
                               "running cluster in place (data kept, replicas not cloned)")
            _engines[state] = chosen
        return _engines[state]


def database_node() -> bool:
    """Whether this host is a database node: every host but the service hosts (of the
    `etcd` or `proxy` group and no role group), which the cluster deploy gives etcd or
    HAProxy and every other command leaves alone."""
    return not is_service_host(HostEntry(host.name, tuple(host.groups), host.data.dict()))


def this_node(topology: Topology) -> Node:
    return topology.cluster.node(host.name)
