"""Metrics and alerts (pgcluster.model.scrape, docs/monitoring.md), when the inventory has a
`monitor` group: on every database node postgres_exporter and node_exporter; on the
primary the exporter's role; on each monitor host Prometheus, its alert rules and
Alertmanager.

Without a `monitor` group nothing here runs.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Command
from pyinfra.operations import apt, server, systemd

from pgcluster import TEMPLATES_DIR
from pgcluster.control import tls
from pgcluster.control.templating import render_template
from pgcluster.model import scrape
from pgcluster.model.endpoints import proxy_names
from pgcluster.model.monitoring import render_alerts, render_exporter_queries
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import postgres as operations
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content, Directory

EXPORTERS = ("prometheus-postgres-exporter", "prometheus-node-exporter")


def _packages(packages: list[str], what: str) -> None:
    if any(package not in host.get_fact(DebPackages) for package in packages):
        apt.update(name="Refresh the package index")
    apt.packages(name=f"Install {what}", packages=packages, no_recommends=True)


def _material(topology: Topology, name: str, address: str, engine: str) -> tls.NodeTLS:
    # One certificate per host, with the names configure's gives it on a database node.
    proxies = proxy_names(topology.cluster) if topology.cluster.is_node(host.name) else []
    return tls.node_material(host.data.dict(), name, address, engine=engine, proxies=proxies)


def _started_before(services: tuple[str, ...], paths: list[str]) -> bool:
    """Whether a running service started before the newest of these files was written."""
    newest = f"$(stat -c %Y {' '.join(paths)} 2>/dev/null | sort -n | tail -1)"
    script = (f"newest={newest}; for s in {' '.join(services)}; do "
              "systemctl is-active -q $s || continue; "
              "t=$(date -d \"$(systemctl show -p ActiveEnterTimestamp --value $s)\" +%s) "
              "|| continue; [ -n \"$newest\" ] && [ \"$t\" -lt \"$newest\" ] && echo $s; "
              "done; true")
    return bool(host.get_fact(Command, command=script))


@deploy("Exporters for Prometheus")
def exporters(topology: Topology, engine: str) -> None:
    """postgres_exporter (as the monitor role, by peer over the socket) and node_exporter,
    both over TLS with the node's certificate and basic auth; the role made on the primary
    after the backup registry, whose table it reads."""
    cluster = topology.cluster
    if not cluster.monitor_hosts or not cluster.is_node(host.name):
        return
    data = host.data.dict()
    node = cluster.node(host.name)
    ctx = scrape.exporter_context(data, node.name, node.address)
    material = _material(topology, node.name, node.address, engine)
    expiry = tls.load_certs(material.cert)[0].not_valid_after_utc.timestamp()
    _packages(list(EXPORTERS), "postgres_exporter and node_exporter")
    role, port = str(data["monitor_user"]), int(data["postgresql_port"])
    here = topology.is_primary(host.name)
    only_if(here, operations.login_role,
            name=f"Role {role} (postgres_exporter: logs in by peer, nothing else)",
            role=role, port=port)
    only_if(here, operations.grant_role, name=f"{role} reads the statistics (pg_monitor)",
            role=role, member_of="pg_monitor", port=port)
    only_if(here, operations.grant_select, name=f"{role} reads the backup registry",
            role=role, table="pgcluster.backups",
            database=str(data["backup_registry_database"]), port=port)
    content.directories(name="The exporters' directories",
                        dirs=[Directory(scrape.EXPORTER_DIR, "750", "root", "prometheus"),
                              Directory(scrape.TEXTFILE_DIR, "755", "prometheus",
                                        "prometheus")])
    settings = [Content(scrape.WEB_CONFIG, render_template("monitoring/web.yml.j2", ctx),
                         "640", "root", "prometheus"),
                Content(scrape.EXPORTER_CERT, material.cert, "644", "root", "prometheus"),
                Content(scrape.EXPORTER_KEY, material.key, "640", "root", "prometheus",
                        secret=True),
                Content(scrape.QUERIES_FILE, render_exporter_queries(data), "644", "root",
                        "prometheus"),
                Content("/etc/default/prometheus-postgres-exporter",
                        render_template("monitoring/postgres-exporter.default.j2", ctx),
                        "640", "root", "prometheus"),
                Content("/etc/default/prometheus-node-exporter",
                        render_template("monitoring/node-exporter.default.j2", ctx))]
    files = content.contents(name="The exporters' settings, TLS files and queries",
                             files=settings)
    content.contents(name="The node certificate's expiry, for node_exporter",
                     files=[Content(scrape.TLS_EXPIRY_FILE,
                                    scrape.tls_expiry_metric(node.name, expiry))])
    # The package starts the exporter at once, with no server to connect to: it fails
    # until systemd stops trying. Its settings in place, it starts afresh; exporter-toolkit
    # reads its web configuration once, so a change needs the restart too, and so does an
    # exporter still running from before its settings (a deploy stopped in between).
    stale = _started_before(EXPORTERS, [f.dest for f in settings])
    server.shell(name="The exporters restart with their settings",
                 commands=[f"systemctl reset-failed {' '.join(EXPORTERS)} || true",
                           f"systemctl restart {' '.join(EXPORTERS)}"],
                 _if=lambda: files.did_change() or stale)
    for service in EXPORTERS:
        systemd.service(name=f"{service} runs, and starts at boot", service=service,
                        running=True, enabled=True)


@deploy("Prometheus and Alertmanager")
def monitor(topology: Topology, engine: str) -> None:
    """On a monitor host: the scrape configuration, the alert rules and Alertmanager, each
    checked by its own tool before the daemon reloads it."""
    cluster = topology.cluster
    monitor_host = cluster.monitor_host(host.name)
    if monitor_host is None:
        return
    data = host.data.dict()
    material = _material(topology, monitor_host.name, monitor_host.address, engine)
    args = scrape.daemon_args(data)
    daemons = ("prometheus", "prometheus-alertmanager")
    # Debian starts Prometheus at install with its own prometheus.yml (localhost:9090,
    # localhost:9100). Its samples would outlive that process by the 5 minutes of
    # Prometheus' lookback (a restart writes no stale markers): our rules, once loaded,
    # would see that localhost:9100 "down". So the daemons first start with our
    # configuration: masked (until reboot only, --runtime) while the packages install,
    # unmasked below, also after a deploy that stopped in between.
    units = " ".join(f"{d}.service" for d in daemons)
    fresh = any(d not in host.get_fact(DebPackages) for d in daemons)
    if fresh:
        server.shell(name="Prometheus and Alertmanager wait for their configuration to start",
                     commands=[f"systemctl mask --runtime {units}"])
    _packages(list(daemons), "Prometheus and Alertmanager")
    masked = host.get_fact(Command, command=" ".join(
        f"[ -L /run/systemd/system/{d}.service ] && echo {d};" for d in daemons) + " true")
    # A volume mounted on /var/lib/prometheus before the packages came (the lab's) is
    # root's: the daemons keep their data below it.
    content.directories(
        name="Prometheus' and Alertmanager's data directories",
        dirs=[Directory("/var/lib/prometheus", "755", "prometheus", "prometheus"),
              Directory("/var/lib/prometheus/metrics2", "750", "prometheus", "prometheus"),
              Directory("/var/lib/prometheus/alertmanager", "750", "prometheus",
                        "prometheus")])
    prometheus = content.contents(
        name="Prometheus' configuration, alert rules, CA, client certificate and password",
        files=[Content(scrape.PROMETHEUS_YML, render_template(
                   "monitoring/prometheus.yml.j2",
                   scrape.prometheus_context(data, cluster, monitor_host, engine))),
               Content(scrape.RULES_FILE, render_alerts({**data, "ha_engine": engine})),
               Content(scrape.CA_FILE, material.ca_bundle),
               Content(scrape.CERT_FILE, material.cert),
               Content(scrape.KEY_FILE, material.key, "640", "root", "prometheus",
                       secret=True),
               Content(scrape.PASSWORD_FILE, str(data["monitor_password"]), "640", "root",
                       "prometheus", secret=True)],
    )
    # Go templates, copied as they are (Jinja would read their {{ }}).
    content.contents(
        name="The cluster's console page",
        files=[Content(dest, (TEMPLATES_DIR / source).read_text())
               for dest, source in scrape.CONSOLE_FILES.items()],
    )
    alertmanager = content.contents(
        name="Alertmanager's configuration",
        files=[Content(scrape.ALERTMANAGER_YML, render_template(
                   "monitoring/alertmanager.yml.j2",
                   scrape.alertmanager_context(data, monitor_host)), "640", "root",
                   "prometheus", secret=bool(data.get("alertmanager_smtp_password")))],
    )
    defaults = content.contents(
        name="Prometheus' and Alertmanager's command lines",
        files=[Content(f"/etc/default/{service}", render_template(
                   "monitoring/daemon.default.j2",
                   {"service": service, "monitor": monitor_host, "args": args[key]}))
               for key, service in (("prometheus", "prometheus"),
                                    ("alertmanager", "prometheus-alertmanager"))],
    )
    server.shell(name="Prometheus' configuration and rules are valid (promtool)",
                 commands=[f"promtool check config {scrape.PROMETHEUS_YML}"],
                 _if=prometheus.did_change)
    server.shell(name="Alertmanager's configuration is valid (amtool)",
                 commands=[f"amtool check-config {scrape.ALERTMANAGER_YML}"],
                 _if=alertmanager.did_change)
    if fresh or masked:
        server.shell(name="Prometheus and Alertmanager may start, their configuration in place",
                     commands=[f"systemctl unmask --runtime {units}"])
    # A package that was there before started them with its own command lines: restarted
    # once ours are in place (also after a deploy that stopped in between).
    stale = _started_before(daemons, [f"/etc/default/{d}" for d in daemons])
    for service, changed in zip(daemons, (prometheus, alertmanager), strict=True):
        systemd.service(name=f"{service} runs, and starts at boot", service=service,
                        running=True, enabled=True)
        systemd.service(name=f"{service} restarts: its command line changed",
                        service=service, restarted=True,
                        _if=lambda: not fresh and (defaults.did_change() or stale))
        systemd.service(name=f"{service} reloads its changed configuration", service=service,
                        reloaded=True, _if=lambda c=changed: not fresh and c.did_change())
