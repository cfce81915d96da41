"""The cluster's endpoints (pgcluster.model.endpoints, docs/endpoints.md), when the
inventory has a `proxy` group: on every database node the role checks HAProxy reads and
PgBouncer; on the primary PgBouncer's verifier lookup; on each proxy, HAProxy.

Without a `proxy` group nothing here runs: the nodes keep only their direct ports.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, server, systemd

from pgcluster import NODE_DIR
from pgcluster.control import tls
from pgcluster.control.templating import render_template, template_context
from pgcluster.model import endpoints as model
from pgcluster.model.layout import SCRIPTS_DIR
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import postgres as operations
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content, sql_file

HEALTH_SCRIPT = f"{SCRIPTS_DIR}/health-check.py"
HEALTH_ENV = "/etc/pgcluster/health.env"
HEALTH_UNIT = "/etc/systemd/system/pgcluster-health.service"
LOOKUP_SQL = "/etc/pgcluster/pgbouncer.sql"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"


def _packages(packages: list[str], what: str) -> None:
    if any(package not in host.get_fact(DebPackages) for package in packages):
        apt.update(name="Refresh the package index")
    apt.packages(name=f"Install {what}", packages=packages, no_recommends=True)


def _on_a_node(topology: Topology) -> bool:
    return bool(topology.cluster.proxy_hosts) and topology.cluster.is_node(host.name)


@deploy("Role checks for HAProxy")
def role_checks(topology: Topology, engine: str) -> None:
    """pgcluster-health under the manual engine, on Patroni's port; under Patroni none (its
    REST API answers the same paths there). Before Patroni starts: both bind that port."""
    if not _on_a_node(topology):
        return
    if engine == "patroni":
        systemd.service(name="pgcluster-health stopped: Patroni's REST API answers HAProxy",
                        service="pgcluster-health", running=False, enabled=False)
        return
    data = host.data.dict()
    ctx = template_context(data, topology.cluster.node(host.name), topology.cluster, engine)
    _packages(["python3"], "Python, for the role checks")
    files = content.contents(
        name="pgcluster-health: its script, settings and unit",
        files=[Content(HEALTH_SCRIPT, (NODE_DIR / "health-check.py").read_text(), "755"),
               Content(HEALTH_ENV, render_template("node/health.env.j2", ctx)),
               Content(HEALTH_UNIT, render_template("systemd/pgcluster-health.service.j2",
                                                    ctx))],
    )
    systemd.daemon_reload(name="Reload systemd units", _if=files.did_change)
    systemd.service(name="pgcluster-health runs, and starts at boot",
                    service="pgcluster-health", running=True, enabled=True)
    systemd.service(name="pgcluster-health restarts: its files changed",
                    service="pgcluster-health", restarted=True, _if=files.did_change)


@deploy("PgBouncer")
def pgbouncer(topology: Topology) -> None:
    """On every node, in front of its own server; its lookup made on the primary (from
    there it reaches the replicas by streaming)."""
    if not _on_a_node(topology):
        return
    data = host.data.dict()
    ctx = template_context(data, topology.cluster.node(host.name), topology.cluster)
    port = int(data["postgresql_port"])
    here = topology.is_primary(host.name)
    _packages(["pgbouncer"], "PgBouncer")
    files = content.contents(
        name="PgBouncer's configuration (no password in it) and its lookup's SQL",
        files=[Content(model.PGBOUNCER_INI, render_template("pgbouncer/pgbouncer.ini.j2", ctx),
                       "640", "postgres", "postgres"),
               Content(model.USERLIST, render_template("pgbouncer/userlist.txt.j2", ctx),
                       "640", "postgres", "postgres"),
               sql_file(LOOKUP_SQL, render_template("sql/pgbouncer.sql.j2", ctx))],
    )
    role = str(data["pgbouncer_auth_user"])
    only_if(here, operations.login_role,
            name=f"Role {role} (PgBouncer's lookup: logs in by peer, nothing else)",
            role=role, port=port)
    only_if(here, operations.auth_lookup,
            name="PgBouncer's lookup of verifiers in every database (auth_query)",
            sql_file=LOOKUP_SQL, role=role, digest=model.lookup_digest(data),
            databases=[str(data["database_name"]), "postgres"], port=port)
    systemd.service(name="PgBouncer runs, and starts at boot", service="pgbouncer",
                    running=True, enabled=True)
    # A reload keeps the clients; listening elsewhere (the package's first start listens on
    # the loopback) needs the restart.
    address, pool_port = topology.cluster.node(host.name).address, int(data["pgbouncer_port"])
    server.shell(
        name="PgBouncer reloads its changed configuration (restarts to listen elsewhere)",
        commands=[f"systemctl reload pgbouncer && sleep 1 && timeout 3 bash -c "
                  f"'</dev/tcp/{address}/{pool_port}' 2>/dev/null "
                  "|| systemctl restart pgbouncer"],
        _if=files.did_change,
    )


@deploy("HAProxy, the cluster's endpoints")
def haproxy(topology: Topology) -> None:
    proxy = topology.cluster.proxy_host(host.name)
    if proxy is None:
        return
    data = host.data.dict()
    _packages(["haproxy"], "HAProxy")
    config = render_template("haproxy/haproxy.cfg.j2",
                             model.haproxy_context(data, topology.cluster, proxy))
    files = content.contents(
        name="HAProxy's configuration and the cluster CA it checks the nodes with",
        files=[Content(model.HAPROXY_CA, tls.ca_bundle(data)),
               Content(HAPROXY_CFG, config)],
    )
    server.shell(name="HAProxy's configuration is valid (haproxy -c)",
                 commands=[f"haproxy -c -q -f {HAPROXY_CFG}"], _if=files.did_change)
    systemd.service(name="HAProxy runs, and starts at boot", service="haproxy", running=True,
                    enabled=True)
    systemd.service(name="HAProxy reloads its configuration (no connection dropped)",
                    service="haproxy", reloaded=True, _if=files.did_change)
