"""What a failover, a switchover or a rejoin may do: every decision about changing the
primary, made from the live topology before anything is touched (pure: the steps in
pgcluster.steps.ha gather the facts and carry the plan out).

Each function returns a Plan or raises ClusterStateError saying why acting would risk data
(a primary that still accepts writes, a read-only replica as a target, a target that is not
streaming, ...) and what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgcluster.errors import ClusterStateError
from pgcluster.model.cluster import Node
from pgcluster.model.topology import Topology
from pgcluster.model.wal import position


@dataclass
class Plan:
    topology: Topology
    old_primary: Node
    new_primary: Node
    followers: list[Node]  # reachable nodes to re-point at the new primary
    unreachable: list[Node] = field(default_factory=list)
    fence: bool = False  # stop the old primary first (--force on a running primary)


@dataclass(frozen=True)
class SwitchoverLimits:
    max_lag_bytes: int = 16 * 1024 * 1024
    max_xact_seconds: int = 60


def accepts_writes(topology: Topology, node: Node) -> bool:
    state = topology.live.get(node.host, {})
    return bool(state.get("running") and not state.get("in_recovery"))


def plan_failover(topology: Topology, reachable: set[str], target_name: str | None = None,
                  force: bool = False) -> Plan:
    """Promote a standby because the primary is lost (or, with force, fenced first)."""
    old = topology.primary
    fence = old.host in reachable and accepts_writes(topology, old)
    if fence and not force:
        raise ClusterStateError(
            f"{old.name} is running and accepts writes: there is nothing to fail over from. "
            "Use `pgcluster switchover --to NODE` for a planned change without data loss, "
            "or `failover --force` to stop (fence) it and promote anyway."
        )
    candidates = [
        n for n in topology.replicas
        if n.promotable and n.host in reachable
        and topology.live[n.host].get("running") and topology.live[n.host].get("in_recovery")
    ]
    if target_name:
        target = topology.cluster.find(target_name)
        if not target.promotable:
            raise ClusterStateError(
                f"{target.name} is the read-only replica: it is never promoted. Promote a "
                "standby instead."
            )
        if target not in candidates:
            raise ClusterStateError(
                f"{target.name} cannot be promoted: it is not a reachable, running standby"
            )
    elif candidates:
        # The standby that received the most WAL loses the least.
        target = max(candidates, key=lambda n: position(topology.live[n.host].get("receive_lsn")))
    else:
        raise ClusterStateError(
            f"no standby can be promoted: none of "
            f"{', '.join(n.name for n in topology.replicas if n.promotable) or 'the nodes'} "
            "is reachable and running in recovery"
        )
    followers = [n for n in topology.replicas
                 if n != target and n != old and n.host in reachable]
    return Plan(
        topology=topology, old_primary=old, new_primary=target, followers=followers,
        unreachable=[n for n in topology.cluster.nodes if n.host not in reachable],
        fence=fence,
    )


def plan_switchover(topology: Topology, reachable: set[str], target_name: str | None,
                    force: bool = False, limits: SwitchoverLimits = SwitchoverLimits(),
                    long_transactions: tuple[int, int] = (0, 0)) -> Plan:
    """Move the primary role to a streaming standby with no data loss. long_transactions:
    (how many, the longest in seconds) transactions on the primary older than
    limits.max_xact_seconds."""
    old = topology.primary
    if old.host not in reachable or not accepts_writes(topology, old):
        raise ClusterStateError(
            f"{old.name} is not a running primary: a switchover needs one. If it failed, "
            "use `pgcluster failover`."
        )
    if not target_name:
        raise ClusterStateError("switchover needs a target: --to NODE")
    target = topology.cluster.find(target_name)
    if target == old:
        raise ClusterStateError(f"{target.name} is already the primary")
    if not target.promotable:
        raise ClusterStateError(f"{target.name} is the read-only replica: it is never promoted")
    target_state = topology.live.get(target.host, {})
    if not (target.host in reachable and target_state.get("receiver_status") == "streaming"
            and target_state.get("sender_host") == old.address):
        raise ClusterStateError(f"{target.name} is not streaming from {old.name}")
    if not force:
        switchover_gates(topology, old, target, limits, long_transactions)
    others = [n for n in topology.replicas if n != target and n.host in reachable]
    followers = [*others, old]
    return Plan(topology=topology, old_primary=old, new_primary=target, followers=followers,
                unreachable=[n for n in topology.cluster.nodes if n.host not in reachable])


def switchover_gates(topology: Topology, old: Node, target: Node, limits: SwitchoverLimits,
                     long_transactions: tuple[int, int]) -> None:
    lag = (position(topology.live[old.host].get("current_lsn"))
           - position(topology.live[target.host].get("replay_lsn")))
    if lag > limits.max_lag_bytes:
        raise ClusterStateError(
            f"{target.name} replays {lag} bytes behind {old.name} (limit "
            f"switchover_max_lag_bytes = {limits.max_lag_bytes}): wait for it to catch up, "
            "or --force"
        )
    count, longest = long_transactions
    if count:
        raise ClusterStateError(
            f"{count} transaction(s) on {old.name} have been open for up to {longest}s (limit "
            f"switchover_max_xact_seconds = {limits.max_xact_seconds}): a switchover would "
            "roll them back. Let them finish, or --force."
        )


def plan_rejoin(topology: Topology, reachable: set[str], node_name: str | None) -> Node:
    """The node to bring back as a standby of the running primary."""
    if not node_name:
        raise ClusterStateError("rejoin needs the node to bring back: rejoin NODE")
    node = topology.cluster.find(node_name)
    primary = topology.primary
    if node == primary:
        raise ClusterStateError(f"{node.name} is the primary: there is nothing to rejoin")
    if primary.host not in reachable or not accepts_writes(topology, primary):
        raise ClusterStateError(
            f"the primary {primary.name} is not running: rejoin needs a running primary "
            "(run `pgcluster failover` first if it is lost)"
        )
    if node.host not in reachable:
        raise ClusterStateError(
            f"{node.name} is not reachable: start the machine (lab: `pgcluster start "
            f"{node.name}`) so that it can be rejoined"
        )
    return node


def long_transactions_sql(max_xact_seconds: int) -> str:
    """Client transactions on the primary open longer than the switchover allows: (count,
    longest in seconds)."""
    return ("select count(*), coalesce(max(extract(epoch from now() - xact_start))::int, 0) "
            "from pg_stat_activity where backend_type = 'client backend' and xact_start < "
            f"now() - interval '{int(max_xact_seconds)} seconds'")


def parse_long_transactions(rows: list[list[str]] | None) -> tuple[int, int]:
    row = (rows or [["0", "0"]])[0]
    return int(row[0]), int(row[1])


def limits_from(data: Mapping[str, Any]) -> SwitchoverLimits:
    return SwitchoverLimits(
        max_lag_bytes=int(data.get("switchover_max_lag_bytes", 16 * 1024 * 1024)),
        max_xact_seconds=int(data.get("switchover_max_xact_seconds", 60)),
    )
