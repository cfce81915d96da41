"""The Patroni engine: etcd on every node (or on the hosts of the inventory's `etcd`
group), Patroni managing PostgreSQL, for a new cluster or in place of Debian's unit on a
running one (no data moved, no replica cloned again).

Order matters: etcd first (Patroni's DCS); then Patroni on the node that is the primary
now (a new cluster's: it bootstraps it with initdb; a running one's: it takes the data
directory over and becomes the leader), and only when that node holds the leader key,
Patroni on the replicas, which follow it as they are. A replica whose Patroni started
first could otherwise win an empty leader race and promote itself.
"""

from __future__ import annotations

import time

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import apt, systemd

from pgcluster.control import tls
from pgcluster.control.templating import render_template, template_context
from pgcluster.errors import ClusterStateError
from pgcluster.model import patroni as model
from pgcluster.model.cluster import Cluster, Node
from pgcluster.model.endpoints import proxy_names
from pgcluster.model.failover import Plan
from pgcluster.model.layout import ETCD_ENVIRONMENT, ETCD_TLS_DIR, PATRONI_CONFIG, Layout
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import patroni as operations
from pgcluster.operations import postgres, promotion
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content, Directory

ETCD_HOME = "/var/lib/etcd"
PATRONI_PACKAGES = ["patroni", "etcd-client"]  # etcdctl too, to look into the DCS
ETCD_PACKAGES = ["etcd-server", "etcd-client"]


@deploy("Install Patroni and etcd")
def install(topology: Topology) -> None:
    """Patroni on the database nodes, etcd on the members of the etcd cluster (the nodes,
    or the `etcd` group's hosts): an etcd-server a node does not need would start Debian's
    own single-member etcd there."""
    database = topology.cluster.is_node(host.name)
    packages = list(dict.fromkeys(
        (PATRONI_PACKAGES if database else [])
        + (ETCD_PACKAGES if model.runs_etcd(topology.cluster, host.name) else [])))
    installed = host.get_fact(DebPackages)
    if any(package not in installed for package in packages):
        apt.update(name="Refresh the package index")
    apt.packages(name="Install Patroni and etcd", packages=packages, no_recommends=True)
    if database:
        FIXED[host.name] = operations.backport_etcd3_fix(
            name="Patroni 3.0.2: 3.0.3's etcd3 fix (a leader back from a partition never "
                 "takes the key another member won)")


# Each host's backport of the etcd3 fix (install), read by patroni(): a Patroni that ran
# the old code restarts, under maintenance mode.
FIXED: dict = {}


def _fixed() -> bool:
    return any(meta.is_complete() and meta.did_change() for meta in FIXED.values())


@deploy("etcd, Patroni's DCS")
def etcd(topology: Topology) -> None:
    """A member on every node, or on each host of the inventory's `etcd` group (and none
    on the nodes outside it). Every host waits for etcd in one step: pyinfra orders the
    steps of hosts that share none as it likes, and a node outside the group would start
    Patroni before the etcd hosts had started etcd."""
    data = host.data.dict()
    cluster = topology.cluster
    members = model.etcd_members(cluster, data)
    if model.runs_etcd(cluster, host.name):
        _member(data, cluster)
        # Itself, at the address its certificate names, as a client of its own cluster.
        me = cluster.etcd_host(host.name) or cluster.node(host.name)
        endpoints = next(m.client_url for m in members if m.name == me.name)
        files = model.etcd_tls_files()
        client = (files["ca"], files["cert"], files["key"])
    else:
        _refuse_a_moved_dcs(cluster)
        layout = Layout.from_data(data)
        # As Patroni reaches it: every member, with the node's certificate.
        endpoints = ",".join(m.client_url for m in members)
        client = (layout.tls_ca_file, layout.tls_cert_file, layout.tls_key_file)
    operations.wait_for_etcd(name="etcd answers on every host", endpoints=endpoints,
                             tls=client)


def _member(data: dict, cluster: Cluster) -> None:
    node = cluster.etcd_host(host.name) or cluster.node(host.name)
    ctx = template_context(data, node, cluster)
    # One certificate per host: a node's names the proxies too, as configure's does.
    proxies = proxy_names(cluster) if cluster.is_node(host.name) else []
    material = tls.node_material(data, node.name, node.address, engine="patroni",
                                 proxies=proxies)
    data_dir = str(data["etcd_data_dir"])
    # The package's home for etcd's data, etcd's own: a volume mounted there before the
    # package was installed (an etcd-only lab container) is root's, and etcd cannot list it.
    home = [Directory(ETCD_HOME, "700", "etcd", "etcd")] \
        if data_dir.startswith(f"{ETCD_HOME}/") else []
    content.directories(
        name="etcd's TLS files and data directory",
        dirs=[Directory(ETCD_TLS_DIR, "750", "etcd", "etcd"), *home,
              # etcd 3.4 refuses a data directory others may read.
              Directory(data_dir, "700", "etcd", "etcd")],
    )
    files = content.contents(
        name="etcd's configuration and TLS files (the node's certificate, owned by etcd)",
        files=[Content(ETCD_ENVIRONMENT, render_template("etcd/etcd.j2", ctx)),
               Content(f"{ETCD_TLS_DIR}/ca.crt", material.ca_bundle, "644", "etcd", "etcd"),
               Content(f"{ETCD_TLS_DIR}/server.crt", material.cert, "644", "etcd", "etcd"),
               Content(f"{ETCD_TLS_DIR}/server.key", material.key, "600", "etcd", "etcd",
                       secret=True)],
    )
    # On every member at once (pyinfra runs a step on all hosts together): a member started
    # alone waits for a quorum.
    systemd.service(name="etcd runs, and starts at boot", service="etcd", running=True,
                    enabled=True)
    systemd.service(name="etcd restarts: its configuration changed", service="etcd",
                    restarted=True, _if=files.did_change)


def _refuse_a_moved_dcs(cluster: Cluster) -> None:
    """A node outside the `etcd` group whose etcd runs held the DCS before the group was
    added: Patroni would find the new, empty etcd with no leader key and no history. Moving
    the DCS is a migration pgcluster does not do behind the user's back."""
    etcd_running = host.get_fact(SystemdStatus, services=["etcd.service"]).get("etcd.service")
    if etcd_running:
        hosts = ", ".join(e.host for e in cluster.etcd_hosts)
        raise ClusterStateError(
            f"etcd runs on {host.name}, which the inventory's `etcd` group ({hosts}) leaves "
            "out: this cluster's DCS is on its nodes, and pgcluster does not move it. Keep "
            f"etcd where it runs (remove the `etcd` group, or put {host.name} in it), or "
            "build the new cluster with the group from the start and restore a backup onto it.")


@deploy("Patroni")
def patroni(topology: Topology) -> None:
    data = host.data.dict()
    layout = Layout.from_data(data)
    node = topology.cluster.node(host.name)
    leader = topology.primary
    here = host.name == leader.host
    ctx = template_context(data, node, topology.cluster)
    config = content.contents(
        name=f"Patroni's configuration ({PATRONI_CONFIG}, it holds passwords)",
        files=[Content(PATRONI_CONFIG, render_template("patroni/patroni.yml.j2", ctx), "600",
                       "postgres", "postgres", secret=True)],
    )
    port = int(data["postgresql_port"])
    # Read before any operation runs: whether Patroni ran before this deploy. A Patroni
    # started by it has read the new file already, and a SIGHUP in its first second, before
    # it sets its handler, kills it for good (systemd's Restart=on-failure does not restart
    # a process a SIGHUP ended).
    was_running = bool(host.get_fact(SystemdStatus, services=["patroni.service"])
                       .get("patroni.service"))
    for first, what in ((True, f"the primary, {leader.name}"), (False, "the replicas")):
        mine = here == first
        only_if(mine, operations.hand_over_from_debian,
                name=f"{what}: Debian's {layout.service} hands PostgreSQL over to Patroni",
                layout=layout, port=port)
        only_if(mine, systemd.service, name=f"{what}: Patroni runs, and starts at boot",
                service="patroni", running=True, enabled=True)
        # A running Patroni re-reads its configuration on a reload (SIGHUP), no restart.
        only_if(mine and was_running, systemd.service,
                name=f"{what}: Patroni reloads its changed configuration",
                service="patroni", reloaded=True, _if=config.did_change)
        if first:
            only_if(here, operations.wait_for_leader,
                    name=f"{leader.name} holds the leader key", member=leader.name)
    dcs = only_if(here, operations.dcs_configuration,
                  name="The DCS's configuration as group_data says (ttl, loop_wait, ...)",
                  wanted=model.dcs_config(data, topology.cluster))
    CHANGED[host.name] = [config, dcs]
    # A running Patroni that got the etcd3 fix restarts to load it; paused, so that neither
    # its stop stops PostgreSQL nor anything fails over meanwhile. Last, after any reload:
    # a SIGHUP in a just-started Patroni's first second would kill it.
    fixed = FIXED.get(host.name)
    if was_running and fixed is not None:
        only_if(here, operations.maintenance, name="Maintenance mode, for Patroni's restart",
                paused=True, _if=_fixed)
        systemd.service(name="Patroni restarts with the fixed etcd3 code", service="patroni",
                        restarted=True, _if=fixed.did_change)
        only_if(here, operations.wait_for_leader, name=f"{leader.name} leads again",
                member=leader.name, _if=_fixed)
        only_if(here, operations.maintenance, name="Maintenance mode over", paused=False,
                _if=_fixed)


# What each host's deploy changed that Patroni acts on in its next HA loop (its file, the
# DCS's configuration): restart_pending waits that loop out before it looks for pending
# restarts. Filled while the deploy is planned, read when it executes.
CHANGED: dict[str, list] = {}


def _changed() -> bool:
    return any(meta.is_complete() and meta.did_change() for metas in CHANGED.values()
               for meta in metas)


@deploy("Patroni: the restarts that settings wait for, rolling")
def restart_pending(topology: Topology) -> None:
    """The replicas one at a time, each streaming again before the next; then the leader
    hands over by a switchover and restarts as a replica: writes pause for one switchover.
    A lowered setting that a replica must hold at the primary's value still waits after
    that; then the new leader restarts in place, and the replicas once more. Last in the
    deploy, as it moves the leader the steps before it were planned with. (A change of
    pgcluster's postgresql.conf shows in pg_settings at once, its reload waited for; one of
    Patroni's file or of the DCS only after Patroni's next loop.)"""
    data = host.data.dict()
    scope, port = str(data["patroni_scope"]), int(data["postgresql_port"])
    timeout = _timeout("replica_wait_timeout", 180)
    here = topology.cluster.node(host.name)
    operations.settle(name="One Patroni HA loop, for a changed configuration to be flagged",
                      seconds=int(data["patroni_loop_wait"]) + 2, _if=_changed)
    for replica in topology.replicas:
        only_if(host.name == replica.host, operations.restart_replica_if_pending,
                name=f"{replica.name}: restarted by Patroni if a setting waits for it",
                scope=scope, member=replica.name, port=port, timeout=timeout)
    only_if(host.name == topology.primary.host, operations.hand_over_and_restart_if_pending,
            name=f"{topology.primary.name}: if a setting waits for a restart, a switchover, "
                 "then the restart as a replica",
            scope=scope, member=topology.primary.name, port=port, timeout=timeout)
    # Whoever leads now (decided when it executes).
    operations.restart_leader_if_pending(
        name="The leader restarted in place if a lowered setting still waits",
        scope=scope, member=here.name, port=port, timeout=timeout)
    for node in topology.cluster.nodes:
        only_if(host.name == node.host, operations.restart_replica_if_pending,
                name=f"{node.name}: restarted again if a setting still waits (after the "
                     "leader's restart)",
                scope=scope, member=node.name, port=port, timeout=timeout, final=True)
    # Were this node the leader: the members that would stream from it (a cascade streams
    # from its upstream, replicatefrom, not from the leader).
    direct = [n.name for n in topology.cluster.streaming_from(here, here, topology.lost)]
    operations.followers_stream_if_leader(
        name="Every member streams from whoever leads now (cascades from their upstream)",
        member=here.name, names=direct, port=port, timeout=timeout)


# ------------------------------------------------------- the operator's commands, by Patroni
# The same commands and the same gates as the manual engine (pgcluster.model.failover plans
# them: lag, long transactions, unreachable is not dead), but Patroni does the change: it
# holds the leader key, so pgcluster never promotes, stops or re-points a server behind its
# back. Two managers of one cluster would be the surest way to two primaries.


def _timeout(key: str, default: int) -> int:
    return int(host.data.get(key) or default)


def _after_change(plan: Plan, event: str, detail: str) -> None:
    here = host.name == plan.new_primary.host
    data = host.data.dict()
    only_if(here, operations.wait_for_leader,
            name=f"{plan.new_primary.name} holds the leader key",
            member=plan.new_primary.name, timeout=_timeout("promote_timeout", 60) + 60)
    only_if(here, promotion.record_event,
            name=f"Record the {event} in logs_replicacion and the events log",
            event=event, node_name=plan.new_primary.name, detail=detail,
            database=data["database_name"], schema=data["database_schema"],
            port=int(data["postgresql_port"]))
    # Each on the node it streams from: the new primary, or a cascade's upstream
    # (replicatefrom).
    followers = plan.downstream(plan.topology.cluster.node(host.name))
    only_if(bool(followers), postgres.wait_for_replicas,
            name=f"The others stream from {plan.new_primary.name} (Patroni re-points them; "
                 "cascades from their upstream)",
            application_names=[n.name for n in followers],
            timeout=_timeout("replica_wait_timeout", 180), port=int(data["postgresql_port"]))


@deploy("Switchover by Patroni")
def switchover(plan: Plan) -> None:
    old, new = plan.old_primary, plan.new_primary
    only_if(host.name == old.host, operations.patronictl_change,
            name=f"patronictl switchover {old.name} -> {new.name}",
            command=model.switchover_command(old.name, new.name),
            what=f"switch over from {old.name} to {new.name}")
    _after_change(plan, "switchover", f"{old.name} -> {new.name} (Patroni)")


@deploy("Failover by Patroni")
def failover(plan: Plan) -> None:
    """Patroni fails over by itself once the leader key expires; this is the operator's
    failover (a chosen target, or before patroni_ttl has run out), run on the target."""
    new = plan.new_primary
    only_if(host.name == new.host, operations.patronictl_change,
            name=f"patronictl failover to {new.name}",
            command=model.failover_command(new.name), what=f"fail over to {new.name}")
    evidence = f"; {plan.evidence.describe(time.time())}" if plan.evidence else ""
    _after_change(plan, "failover", f"promovido {new.name} por Patroni; primario anterior "
                                    f"{plan.old_primary.name}{evidence}")


@deploy("Rejoin by Patroni")
def rejoin(topology: Topology, node: Node, reclone: bool) -> None:
    """Patroni rejoins a node by itself (pg_rewind when it diverged) as soon as it runs;
    with allow_reclone, `patronictl reinit` clones it again from the leader instead."""
    data = host.data.dict()
    layout = Layout.from_data(data)
    here = host.name == node.host
    only_if(here, operations.member_service, name=f"Patroni runs on {node.name}",
            layout=layout, running=True)
    only_if(here and reclone, operations.patronictl_change,
            name=f"patronictl reinit {node.name} (a new copy from the leader)",
            command=model.patronictl("reinit", str(data["patroni_scope"]), node.name,
                                     "--force", "--wait"),
            what=f"reinitialise {node.name}")
    source = topology.source(node)
    only_if(host.name == source.host, postgres.wait_for_replicas,
            name=f"{node.name} streams from {source.name}",
            application_names=[node.name], timeout=_timeout("replica_wait_timeout", 180),
            port=int(data["postgresql_port"]))


@deploy("Patroni: stop or start")
def service(topology: Topology, action: str, nodes: list[Node]) -> None:
    """Stop: the replicas first, the leader last (a leader stopped first hands over to a
    replica: that is a switchover, not a stop). Start: the last leader first, then the
    replicas, which follow it (started first, a replica would win the leader race with
    less WAL than the stopped leader)."""
    layout = Layout.from_data(host.data.dict())
    ordered = [*topology.replicas, topology.primary]
    if action == "start":
        ordered.reverse()
    for node in ordered:
        only_if(host.name == node.host and node in nodes, operations.member_service,
                name=f"{action.capitalize()} Patroni (and PostgreSQL) on {node.name}",
                layout=layout, running=action == "start")
        if action == "start" and node == topology.primary:
            only_if(host.name == node.host and node in nodes, operations.wait_for_leader,
                    name=f"{node.name} holds the leader key", member=node.name)
