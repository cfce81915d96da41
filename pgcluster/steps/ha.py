"""Failover, switchover, rejoin and service control, as pyinfra steps.

Each command first gathers the live facts and lets pgcluster.model.failover decide (who is
primary, who is reachable, which standby is furthest ahead), which refuses with a clear
message when acting would risk data. Then every step is planned on every host and is a
no-op where it does not apply (see pgcluster.operations.conditional.only_if), so the steps
run in order across hosts.

Parameters come from pyinfra data (`--data failover_target=...`), which is how
`python -m pgcluster failover|switchover|rejoin|stop|start` call these deploys.
"""

from __future__ import annotations

import time
import weakref

from pyinfra import host, logger
from pyinfra.api import State

from pgcluster.errors import ClusterStateError
from pgcluster.facts.backups import WalArchive
from pgcluster.facts.postgres import PgQuery
from pgcluster.model import failover as decisions
from pgcluster.model.cluster import Node
from pgcluster.model.conninfo import primary_conninfo, rewind_conninfo
from pgcluster.model.failover import Plan
from pgcluster.model.layout import Layout
from pgcluster.model.topology import Topology
from pgcluster.operations import postgres as operations
from pgcluster.operations import promotion
from pgcluster.operations.conditional import only_if
from pgcluster.steps import live, patroni
from pgcluster.steps.live import flag


def _reachable() -> set[str]:
    return {h.name for h in host.state.activated_hosts}


_plans: weakref.WeakKeyDictionary[State, Plan] = weakref.WeakKeyDictionary()


def plan_failover() -> Plan:
    """The failover's plan, made once per run (the deploy file runs for every host), shown
    before anything is touched: how far behind the target is, or why it is refused."""
    state = host.state
    if state not in _plans:
        topology = live.topology(operation="failover")
        reachable = _reachable()
        plan = decisions.plan_failover(
            topology, reachable, target_name=host.data.get("failover_target") or None,
            force=flag(host.data.get("force")),
            limits=decisions.failover_limits_from(host.data.dict()),
            archive=_archive(topology, reachable))
        if plan.evidence is not None:
            logger.warning(f"pgcluster: failover to {plan.new_primary.name}: "
                           f"{plan.evidence.describe(time.time())}")
        _plans[state] = plan
    return _plans[state]


def _archive(topology: Topology, reachable: set[str]) -> decisions.ArchiveState | None:
    """The WAL archive as one reachable node sees it (every node shares it in the lab and
    on NFS; with local disks each node sees its own)."""
    for node in topology.replicas:
        if node.host in reachable:
            other = host.inventory.get_host(node.host)
            found = other.get_fact(WalArchive, archive_dir=other.data.get("wal_archive_dir"))
            return decisions.ArchiveState(**found) if found else None
    return None


def plan_switchover() -> Plan:
    topology = live.topology(operation="switchover")
    limits = decisions.limits_from(host.data.dict())
    old = topology.primary
    long_transactions = (0, 0)
    if old.host in _reachable():
        long_transactions = decisions.parse_long_transactions(
            host.inventory.get_host(old.host).get_fact(
                PgQuery, sql=decisions.long_transactions_sql(limits.max_xact_seconds),
                port=old.port))
    return decisions.plan_switchover(
        topology, _reachable(), target_name=host.data.get("switchover_target") or None,
        force=flag(host.data.get("force")), limits=limits,
        long_transactions=long_transactions)


def plan_rejoin() -> tuple[Topology, Node]:
    topology = live.topology(operation="rejoin")
    return topology, decisions.plan_rejoin(topology, _reachable(),
                                          host.data.get("rejoin_node") or None)


# ------------------------------------------------------------------------------- steps


def _layout() -> Layout:
    return Layout.from_data(host.data.dict())


def _port() -> int:
    return int(host.data.get("postgresql_port", 5432))


def _follow(plan_primary: Node, node: Node, here: bool, reclone: bool = False,
            keep: list[Node] | None = None) -> None:
    """Make `node` stream from `plan_primary` (its source: the primary, or an upstream),
    keeping the slots of `keep`, the replicas that stream from it."""
    data = host.data.dict()
    only_if(
        here, promotion.rejoin,
        name=f"Follow {plan_primary.name} (re-point, or pg_rewind when diverged)",
        layout=_layout(),
        conninfo=primary_conninfo(plan_primary, node, data),
        slot=node.slot,
        rewind_conninfo=rewind_conninfo(plan_primary, data),
        primary_host=plan_primary.host,
        reclone=reclone,
        port=_port(),
        keep_slots=tuple(n.slot for n in keep or ()),
    )


def _follow_plan(plan: Plan, me: Node) -> None:
    """A follower of a failover or a switchover streams from its source once the new
    primary is up, keeping the slots of the replicas that stream from it."""
    _follow(plan.source(me) if me in plan.followers else plan.new_primary, me,
            here=me in plan.followers, keep=plan.downstream(me))


def _new_primary_duties(plan: Plan, event: str, detail: str) -> None:
    here = host.name == plan.new_primary.host
    data = host.data.dict()
    # First: until it is done, every commit on the new primary waits for a standby.
    only_if(here, promotion.synchronous_override,
            name="Suspend synchronous replication while no synchronous standby can follow",
            followers=[n.name for n in plan.followers], port=_port())
    # The nodes that will stream from it (a cascade keeps its slot on its upstream), and
    # the lost ones whose source it is when they come back.
    for node in plan.topology.cluster.streaming_from(plan.new_primary, plan.new_primary,
                                                     plan.lost):
        only_if(here, operations.replication_slot,
                name=f"Replication slot {node.slot} on the new primary",
                slot=node.slot, port=_port())
    only_if(here, promotion.record_event,
            name=f"Record the {event} in logs_replicacion and the events log",
            event=event, node_name=plan.new_primary.name, detail=detail,
            database=data["database_name"], schema=data["database_schema"], port=_port())


def _patroni(topology: Topology) -> bool:
    """Whether Patroni manages this cluster: then it alone makes the change (steps.patroni)."""
    return live.engine(topology) == "patroni"


def failover(plan: Plan) -> None:
    if _patroni(plan.topology):
        patroni.failover(plan)
        return
    me = plan.topology.cluster.node(host.name)
    only_if(host.name == plan.old_primary.host and plan.fence, promotion.stop_server,
            name=f"Fence {plan.old_primary.name}: stop it before promoting",
            layout=_layout(), port=_port())
    only_if(host.name == plan.new_primary.host, promotion.promote,
            name=f"Promote {plan.new_primary.name} (pg_promote)",
            layout=_layout(), timeout=int(host.data.get("promote_timeout", 60)), port=_port(),
            stopped_host=plan.old_primary.host if plan.fence else None)
    lost = plan.old_primary.name + ("" if not plan.fence else " (fenced)")
    evidence = f"; {plan.evidence.describe(time.time())}" if plan.evidence else ""
    _new_primary_duties(plan, "failover",
                        f"promovido {plan.new_primary.name}; primario anterior {lost}{evidence}")
    _follow_plan(plan, me)
    _wait(plan)


def switchover(plan: Plan) -> None:
    if _patroni(plan.topology):
        patroni.switchover(plan)
        return
    me = plan.topology.cluster.node(host.name)
    only_if(host.name == plan.old_primary.host, promotion.stop_server,
            name=f"Stop {plan.old_primary.name} cleanly (fast shutdown)",
            layout=_layout(), port=_port())
    only_if(host.name == plan.new_primary.host, promotion.wait_received,
            name=f"{plan.new_primary.name} has received all of {plan.old_primary.name}'s WAL",
            layout=_layout(), lsn_host=plan.old_primary.host, port=_port())
    only_if(host.name == plan.new_primary.host, promotion.promote,
            name=f"Promote {plan.new_primary.name} (pg_promote)",
            layout=_layout(), timeout=int(host.data.get("promote_timeout", 60)), port=_port(),
            stopped_host=plan.old_primary.host)
    _new_primary_duties(plan, "switchover",
                        f"{plan.old_primary.name} -> {plan.new_primary.name}")
    _follow_plan(plan, me)
    _wait(plan)


def rejoin(topology: Topology, node: Node) -> None:
    if _patroni(topology):
        patroni.rejoin(topology, node, reclone=flag(host.data.get("allow_reclone")))
        return
    me = topology.cluster.node(host.name)
    here_primary = host.name == topology.primary.host
    # A cascading replica rejoins its upstream or, when that is out of reach or stopped
    # (rejoin starts no other node), the upstream's own source.
    stopped = {n.host for n in topology.cluster.nodes
               if n != node and not topology.live.get(n.host, {}).get("running")}
    source = topology.source(node, lost=topology.lost | stopped)
    here_source = host.name == source.host
    only_if(here_source, operations.replication_slot,
            name=f"Replication slot {node.slot} for {node.name}", slot=node.slot, port=_port())
    _follow(source, me, here=me == node,
            reclone=flag(host.data.get("allow_reclone")), keep=topology.downstream(node))
    only_if(here_primary, promotion.synchronous_override,
            name="Lift a suspension of synchronous replication once its standby is back",
            followers=[n.name for n in topology.replicas], port=_port())
    only_if(here_source, operations.wait_for_replicas,
            name=f"{node.name} streams from {source.name}",
            application_names=[node.name],
            timeout=int(host.data.get("replica_wait_timeout", 180)), port=_port())


def _wait(plan: Plan) -> None:
    me = plan.topology.cluster.node(host.name)
    followers = plan.downstream(me)
    only_if(bool(followers), operations.wait_for_replicas,
            name=f"Followers stream from {plan.new_primary.name} (cascades from their "
                 "upstream)",
            application_names=[n.name for n in followers],
            timeout=int(host.data.get("replica_wait_timeout", 180)), port=_port())


def service(topology: Topology, action: str, nodes: list[Node]) -> None:
    """Stop or start PostgreSQL on some nodes. Stop: the primary first (a stopping primary
    hands its last WAL to the standbys). Start: the replicas first, so that the primary's
    start guard finds peers to confirm that no other node is a primary."""
    if action not in ("start", "stop"):
        raise ClusterStateError(f"unknown service action {action!r}: use start or stop")
    as_primary = action == "start" and flag(host.data.get("start_as_primary"))
    if _patroni(topology):
        if as_primary:
            raise ClusterStateError("start --as-primary: Patroni elects the primary itself "
                                    "(the leader race); start the node without it")
        patroni.service(topology, action, nodes)
        return
    if as_primary:
        decisions.check_start_as_primary(topology, nodes)
    op = promotion.start_server if action == "start" else promotion.stop_server
    extra = {"as_primary": True} if as_primary else {}
    ordered = [topology.primary, *topology.replicas]
    if action == "start":
        ordered.reverse()
    for node in ordered:
        only_if(host.name == node.host and node in nodes, op,
                name=f"{action.capitalize()} PostgreSQL on {node.name}",
                layout=_layout(), port=_port(), **extra)


def nodes_from_data(topology: Topology) -> list[Node]:
    wanted = str(host.data.get("service_nodes") or "all")
    if wanted == "all":
        return list(topology.cluster.nodes)
    return [topology.cluster.find(name.strip()) for name in wanted.split(",") if name.strip()]
