"""What a failover, a switchover or a rejoin may do: every decision about changing the
primary, made from the live topology before anything is touched (pure: the steps in
pgcluster.steps.ha gather the facts and carry the plan out).

Each function returns a Plan or raises ClusterStateError saying why acting would risk data
(a primary that still accepts writes, a read-only replica as a target, a target that is not
streaming, ...) and what to do instead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgcluster.errors import ClusterStateError
from pgcluster.model.cluster import Node
from pgcluster.model.topology import Topology
from pgcluster.model.wal import format_lsn, position, segment_end


@dataclass(frozen=True)
class Evidence:
    """How far behind the target is, as far as anyone can tell once the primary is gone:
    its WAL position (received or replayed from the archive, whichever is further), the
    furthest position known elsewhere (another replica, or the end of the WAL archive), and
    when it last received WAL against the last WAL activity seen anywhere in the cluster."""

    target: str
    position: int
    best_known: int
    best_source: str
    received_at: float | None = None
    cluster_last_wal_at: float | None = None

    @property
    def lag_bytes(self) -> int:
        return max(0, self.best_known - self.position)

    @property
    def receive_gap(self) -> float | None:
        """Seconds between this target's last WAL and the cluster's last WAL activity."""
        if self.received_at is None or self.cluster_last_wal_at is None:
            return None
        return max(0.0, self.cluster_last_wal_at - self.received_at)

    def describe(self, now: float) -> str:
        text = (f"{self.target} has WAL up to {format_lsn(self.position)}, "
                f"{self.lag_bytes} bytes behind the furthest known position "
                f"{format_lsn(self.best_known)} ({self.best_source})")
        if self.received_at is not None:
            text += f"; it last received WAL {now - self.received_at:.0f}s ago"
            if self.receive_gap:
                text += f", {self.receive_gap:.0f}s before the cluster's last WAL activity"
        return text


@dataclass
class Plan:
    topology: Topology
    old_primary: Node
    new_primary: Node
    followers: list[Node]  # reachable nodes to re-point at the new primary
    unreachable: list[Node] = field(default_factory=list)
    fence: bool = False  # stop the old primary first (--force on a running primary)
    evidence: Evidence | None = None  # a failover's: how far behind the target is
    # Hosts that cannot serve WAL once the plan is carried out: the unreachable ones, and
    # after a failover the old primary. A cascade past one of them follows its source.
    lost: set[str] = field(default_factory=set)

    def source(self, node: Node) -> Node:
        """Whom a follower streams from once the new primary is up: the new primary, or
        its upstream for a cascading replica (Cluster.source)."""
        return self.topology.cluster.source(node, self.new_primary, self.lost)

    def downstream(self, node: Node) -> list[Node]:
        """The followers that stream from `node` once the plan is carried out."""
        return [n for n in self.followers if self.source(n).host == node.host]


@dataclass(frozen=True)
class SwitchoverLimits:
    max_lag_bytes: int = 16 * 1024 * 1024
    max_xact_seconds: int = 60


@dataclass(frozen=True)
class FailoverLimits:
    max_lag_bytes: int = 16 * 1024 * 1024
    max_receive_gap: int = 1800


@dataclass(frozen=True)
class ArchiveState:
    """The WAL archive as a reachable node sees it (facts.backups.WalArchive)."""

    newest_segment: str
    last_file_at: float


def accepts_writes(topology: Topology, node: Node) -> bool:
    state = topology.live.get(node.host, {})
    return bool(state.get("running") and not state.get("in_recovery"))


# Seconds a live primary may take, beyond half of wal_receiver_timeout, to answer its
# replica's ping (network and scheduling delays).
PING_MARGIN = 5.0


def hears_from(live: Mapping[str, Any], address: str) -> bool:
    """Whether a replica's WAL receiver proves that the primary at `address` is alive: it
    streams from it and has heard from it recently. A receiver pings its primary after
    half of wal_receiver_timeout without a message, and a live primary answers at once,
    so a longer silence proves nothing (a primary killed, or powered off, closes no
    connection: its replicas show a stream until wal_receiver_timeout). Unknown silence
    counts as heard: the doubt goes to refusing."""
    if not live.get("running") or live.get("receiver_status") != "streaming" \
            or live.get("sender_host") != address:
        return False
    silence, timeout_ms = live.get("receiver_silence"), live.get("receiver_timeout_ms")
    try:
        silent = float(silence)
        allowed = int(timeout_ms) / 2000 + PING_MARGIN
    except (TypeError, ValueError):
        return True
    return int(timeout_ms) == 0 or silent <= allowed


def plan_failover(topology: Topology, reachable: set[str], target_name: str | None = None,
                  force: bool = False, limits: FailoverLimits = FailoverLimits(),
                  archive: ArchiveState | None = None, now: float | None = None) -> Plan:
    """Promote a standby because the primary is lost (or, with force, fenced first).

    Unreachable is not dead: a replica still streaming from the old primary proves it runs,
    and what cannot be reached cannot be fenced, so that is refused even with force. A
    target further behind than limits allow (force overrides) would lose what it lacks."""
    old = topology.primary
    fence = old.host in reachable and accepts_writes(topology, old)
    if fence and not force:
        raise ClusterStateError(
            f"{old.name} is running and accepts writes: there is nothing to fail over from. "
            "Use `pgcluster switchover --to NODE` for a planned change without data loss, "
            "or `failover --force` to stop (fence) it and promote anyway."
        )
    if old.host not in reachable:
        streaming = [n.name for n in topology.replicas if n.host in reachable
                     and hears_from(topology.live[n.host], old.address)]
        if streaming:
            raise ClusterStateError(
                f"{' and '.join(streaming)} still stream{'s' if len(streaming) == 1 else ''} "
                f"WAL from {old.name}: the primary is alive, only unreachable from here. "
                f"Promoting now would make two primaries, and pgcluster cannot fence what it "
                f"cannot reach (even with --force). Stop PostgreSQL on {old.name} yourself "
                "(or power it off), then run the failover again. (A replica of a primary "
                "that died without closing its connections shows a stream until it has "
                "heard nothing for half of wal_receiver_timeout: run the failover again "
                "then.)"
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
    evidence = failover_evidence(topology, reachable, target, archive)
    if not force:
        failover_gates(evidence, limits, now if now is not None else time.time())
    followers = [n for n in topology.replicas
                 if n != target and n != old and n.host in reachable]
    unreachable = [n for n in topology.cluster.nodes if n.host not in reachable]
    return Plan(
        topology=topology, old_primary=old, new_primary=target, followers=followers,
        unreachable=unreachable, fence=fence, evidence=evidence,
        lost={old.host, *(n.host for n in unreachable)},
    )


def _wal_position(state: Mapping[str, Any]) -> int:
    # A standby catching up from the archive replays past what it received by streaming.
    return max(position(state.get("receive_lsn")), position(state.get("replay_lsn")))


def failover_evidence(topology: Topology, reachable: set[str], target: Node,
                      archive: ArchiveState | None) -> Evidence:
    others = [n for n in topology.replicas if n != target and n.host in reachable
              and topology.live[n.host].get("in_recovery")]
    best, source = _wal_position(topology.live[target.host]), "its own"
    for node in others:
        if _wal_position(topology.live[node.host]) > best:
            best, source = _wal_position(topology.live[node.host]), node.name
    if archive is not None and segment_end(archive.newest_segment) > best:
        best, source = segment_end(archive.newest_segment), "the end of the WAL archive"
    received = [t for t in (_received_at(topology.live[n.host]) for n in [target, *others])
                if t is not None]
    if archive is not None:
        received.append(archive.last_file_at)
    return Evidence(
        target=target.name, position=_wal_position(topology.live[target.host]),
        best_known=best, best_source=source,
        received_at=_received_at(topology.live[target.host]),
        cluster_last_wal_at=max(received) if received else None,
    )


def _received_at(state: Mapping[str, Any]) -> float | None:
    value = state.get("wal_received_at")
    return float(value) if value not in (None, "") else None


def failover_gates(evidence: Evidence, limits: FailoverLimits, now: float) -> None:
    if evidence.lag_bytes > limits.max_lag_bytes:
        raise ClusterStateError(
            f"{evidence.describe(now)}: more than failover_max_lag_bytes = "
            f"{limits.max_lag_bytes}. Promoting it would lose what it lacks. Promote a "
            "standby that has more, wait for this one to catch up from the archive, or "
            "--force to accept the loss."
        )
    gap = evidence.receive_gap
    if gap is not None and gap > limits.max_receive_gap:
        raise ClusterStateError(
            f"{evidence.describe(now)}: it stopped receiving WAL more than "
            f"failover_max_receive_age = {limits.max_receive_gap}s before the rest of the "
            "cluster did, so the old primary may have gone on writing without it (or still "
            "be alive on the far side of a partition). Make sure the old primary is really "
            "down, then --force."
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
    unreachable = [n for n in topology.cluster.nodes if n.host not in reachable]
    return Plan(topology=topology, old_primary=old, new_primary=target, followers=followers,
                unreachable=unreachable, lost={n.host for n in unreachable})


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


def check_start_as_primary(topology: Topology, nodes: list[Node]) -> Node:
    """The one node a deliberate start as primary may concern: named alone, holding a
    primary's data directory, while no other node runs as a primary."""
    if len(nodes) != 1:
        raise ClusterStateError("--as-primary starts one node, named: pgcluster start NODE "
                                "--as-primary")
    node = nodes[0]
    state = topology.live.get(node.host, {})
    if state.get("standby_signal"):
        raise ClusterStateError(f"{node.name} holds a standby's data directory: it starts as "
                                "a standby, no --as-primary needed")
    running = [n.name for n in topology.cluster.nodes
               if n != node and accepts_writes(topology, n)]
    if running:
        raise ClusterStateError(
            f"{' and '.join(running)} already run{'s' if len(running) == 1 else ''} as a "
            f"primary: starting {node.name} as one too would make two. Rejoin it instead "
            f"(pgcluster rejoin {node.name})."
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


def failover_limits_from(data: Mapping[str, Any]) -> FailoverLimits:
    return FailoverLimits(
        max_lag_bytes=int(data.get("failover_max_lag_bytes", 16 * 1024 * 1024)),
        max_receive_gap=int(data.get("failover_max_receive_age", 1800)),
    )
