"""The Patroni engine: etcd on every node, Patroni managing PostgreSQL, for a new cluster
or in place of Debian's unit on a running one (no data moved, no replica cloned again).

Order matters: etcd first (Patroni's DCS); then Patroni on the node that is the primary
now (a new cluster's: it bootstraps it with initdb; a running one's: it takes the data
directory over and becomes the leader), and only when that node holds the leader key,
Patroni on the replicas, which follow it as they are. A replica whose Patroni started
first could otherwise win an empty leader race and promote itself.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, systemd

from pgcluster.control import tls
from pgcluster.control.templating import render_template, template_context
from pgcluster.model import patroni as model
from pgcluster.model.layout import ETCD_ENVIRONMENT, ETCD_TLS_DIR, PATRONI_CONFIG, Layout
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import patroni as operations
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content, Directory

PACKAGES = ["patroni", "etcd-server", "etcd-client"]


@deploy("Install Patroni and etcd")
def install() -> None:
    installed = host.get_fact(DebPackages)
    if any(package not in installed for package in PACKAGES):
        apt.update(name="Refresh the package index")
    apt.packages(name="Install Patroni and etcd", packages=PACKAGES, no_recommends=True)


@deploy("etcd, Patroni's DCS")
def etcd(topology: Topology) -> None:
    data = host.data.dict()
    node = topology.cluster.node(host.name)
    ctx = template_context(data, node, topology.cluster)
    material = tls.node_material(data, node.name, node.address)
    content.directories(
        name="etcd's TLS files and data directory",
        dirs=[Directory(ETCD_TLS_DIR, "750", "etcd", "etcd"),
              # etcd 3.4 refuses a data directory others may read.
              Directory(data["etcd_data_dir"], "700", "etcd", "etcd")],
    )
    files = content.contents(
        name="etcd's configuration and TLS files (the node's certificate, owned by etcd)",
        files=[Content(ETCD_ENVIRONMENT, render_template("etcd/etcd.j2", ctx)),
               Content(f"{ETCD_TLS_DIR}/ca.crt", material.ca_bundle, "644", "etcd", "etcd"),
               Content(f"{ETCD_TLS_DIR}/server.crt", material.cert, "644", "etcd", "etcd"),
               Content(f"{ETCD_TLS_DIR}/server.key", material.key, "600", "etcd", "etcd",
                       secret=True)],
    )
    # On every node at once (pyinfra runs a step on all hosts together): a member started
    # alone waits for a quorum.
    systemd.service(name="etcd runs (restarted when its configuration changed)",
                    service="etcd", running=True, enabled=True, restarted=files.did_change)
    operations.wait_for_etcd(name="etcd answers on every node",
                             port=int(data["etcd_client_port"]))


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
        files=[Content(PATRONI_CONFIG, render_template("patroni/config.yml.j2", ctx), "600",
                       "postgres", "postgres", secret=True)],
    )
    port = int(data["postgresql_port"])
    for first, what in ((True, f"the primary, {leader.name}"), (False, "the replicas")):
        mine = here == first
        only_if(mine, operations.hand_over_from_debian,
                name=f"{what}: Debian's {layout.service} hands PostgreSQL over to Patroni",
                layout=layout, port=port)
        only_if(mine, systemd.service,
                name=f"{what}: Patroni runs (reloaded when its configuration changed)",
                service="patroni", running=True, enabled=True, reloaded=config.did_change)
        if first:
            only_if(here, operations.wait_for_leader,
                    name=f"{leader.name} holds the leader key", member=leader.name)
    only_if(here, operations.dcs_configuration,
            name="The DCS's configuration as group_data says (ttl, loop_wait, ...)",
            wanted=model.dcs_config(data, topology.cluster))
