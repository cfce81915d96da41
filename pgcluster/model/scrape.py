"""What Prometheus scrapes and where Alertmanager sends alerts (docs/monitoring.md): the
template contexts of the monitor's files and the exporters' on the nodes.

Every database node runs postgres_exporter and node_exporter over TLS (the node's own
certificate), behind HTTP basic auth with monitor_password, which only the monitors hold:
the metrics answer no one else. Every series carries `instance` = the node's name (not
its address: alerts and dashboards speak of nodes) and `cluster` = patroni_scope (the
cluster's name under either engine).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt

from pgcluster.model.cluster import Cluster, ServiceHost
from pgcluster.model.settings import duration_seconds

# On a monitor host, what Prometheus reads (owned by root, readable by prometheus).
CA_FILE = "/etc/prometheus/pgcluster-ca.crt"
PASSWORD_FILE = "/etc/prometheus/pgcluster-monitor.password"
CERT_FILE = "/etc/prometheus/pgcluster-monitor.crt"  # its client certificate, for etcd
KEY_FILE = "/etc/prometheus/pgcluster-monitor.key"
RULES_FILE = "/etc/prometheus/pgcluster-alerts.yml"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
ALERTMANAGER_YML = "/etc/prometheus/alertmanager.yml"
# The console page (templates/monitoring/consoles/): Prometheus runs these Go templates
# on each request, so a new page needs no reload.
CONSOLES_DIR = "/etc/prometheus/consoles"
CONSOLE_LIBRARIES_DIR = "/etc/prometheus/console_libraries"
CONSOLE_FILES = {f"{CONSOLES_DIR}/pgcluster.html": "monitoring/consoles/pgcluster.html",
                 f"{CONSOLE_LIBRARIES_DIR}/pgcluster.lib": "monitoring/consoles/pgcluster.lib"}
CONSOLE_PATH = "/consoles/pgcluster.html"
# On a node, the exporters' TLS and basic auth (exporter-toolkit's web configuration).
EXPORTER_DIR = "/etc/prometheus/pgcluster"
WEB_CONFIG = f"{EXPORTER_DIR}/web.yml"
EXPORTER_CERT = f"{EXPORTER_DIR}/node.crt"
EXPORTER_KEY = f"{EXPORTER_DIR}/node.key"
QUERIES_FILE = f"{EXPORTER_DIR}/postgres-exporter-queries.yaml"
# node_exporter's textfile collector (Debian's default directory): the deploy writes the
# node certificate's expiry there, as it installs the certificate.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
TLS_EXPIRY_FILE = f"{TEXTFILE_DIR}/pgcluster_tls.prom"
SCRAPE_USER = "prometheus"  # the basic auth user name Prometheus gives the exporters
BCRYPT_COST = 10  # exporter-toolkit checks it on every scrape: cheap enough, not weak


def hostport(address: str, port: int) -> str:
    """address:port, with an IPv6 address in brackets."""
    return f"[{address}]:{int(port)}" if ":" in address else f"{address}:{int(port)}"


@dataclass(frozen=True)
class Target:
    name: str  # the instance label: a node's or an etcd member's name
    address: str  # host:port
    role: str = ""  # the inventory role of a database node


@functools.lru_cache(maxsize=256)
def password_hash(password: str, salt_source: str) -> str:
    """The bcrypt hash exporter-toolkit wants for basic auth. Its salt comes from the
    password and the host, not from chance, so a re-run renders the same file (no change,
    no restart) and two hosts still hold different hashes. Deterministic, hence cached:
    bcrypt is slow on purpose, and a deploy renders it for every node more than once."""
    digest = hashlib.sha256(f"pgcluster-scrape\0{salt_source}\0{password}".encode()).digest()
    # bcrypt's salt: 22 characters of its own base64 alphabet (16 bytes; the last
    # character carries 2 bits, so it is one of .Oeu).
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    number = int.from_bytes(digest[:16], "big")
    chars = [alphabet[(number >> (128 - 6 * (i + 1))) & 63] for i in range(21)]
    chars.append(".Oeu"[(number & 3)])
    salt = f"$2b${BCRYPT_COST:02d}${''.join(chars)}".encode()
    return bcrypt.hashpw(password.encode(), salt).decode()


def exporter_context(data: Mapping[str, Any], node_name: str, node_address: str
                     ) -> dict[str, Any]:
    """The exporters' settings on one node (their /etc/default files and web.yml)."""
    return {
        "node_name": node_name,
        "postgres_listen": hostport(node_address, int(data["postgres_exporter_port"])),
        "node_listen": hostport(node_address, int(data["node_exporter_port"])),
        "web_config": WEB_CONFIG,
        "cert_file": EXPORTER_CERT,
        "key_file": EXPORTER_KEY,
        "queries_file": QUERIES_FILE,
        "textfile_dir": TEXTFILE_DIR,
        "monitor_user": str(data["monitor_user"]),
        "database": str(data["backup_registry_database"]),
        "port": int(data["postgresql_port"]),
        "scrape_user": SCRAPE_USER,
        "password_hash": password_hash(str(data["monitor_password"]), node_name),
    }


def tls_expiry_metric(node_name: str, not_after_epoch: float) -> str:
    """node_exporter textfile: when the node's certificate expires."""
    return ("# HELP pgcluster_tls_certificate_expiry_timestamp_seconds When the node's TLS "
            "certificate expires (installed by the pgcluster deploy).\n"
            "# TYPE pgcluster_tls_certificate_expiry_timestamp_seconds gauge\n"
            f'pgcluster_tls_certificate_expiry_timestamp_seconds{{node="{node_name}"}} '
            f"{int(not_after_epoch)}\n")


def etcd_members(cluster: Cluster) -> list[ServiceHost | Any]:
    """Where etcd runs: the `etcd` group's hosts, else every database node."""
    return list(cluster.etcd_hosts) or list(cluster.nodes)


def prometheus_context(data: Mapping[str, Any], cluster: Cluster, monitor: ServiceHost,
                       engine: str) -> dict[str, Any]:
    listen = str(data["monitor_listen_address"])
    nodes = cluster.nodes
    return {
        "monitor": monitor,
        "cluster_name": str(data["patroni_scope"]),  # the cluster's name, either engine
        "interval": int(duration_seconds(data["monitor_scrape_interval"])),
        "rules_file": RULES_FILE,
        "prometheus": hostport(listen, int(data["prometheus_port"])),
        "alertmanager": hostport(listen, int(data["alertmanager_port"])),
        "ca_file": CA_FILE,
        "password_file": PASSWORD_FILE,
        "cert_file": CERT_FILE,
        "key_file": KEY_FILE,
        "scrape_user": SCRAPE_USER,
        "jobs": {
            "postgres": [Target(n.name, hostport(n.address, int(data["postgres_exporter_port"])),
                                n.role) for n in nodes],
            "node": [Target(n.name, hostport(n.address, int(data["node_exporter_port"])),
                            n.role) for n in nodes],
        },
        "patroni": [Target(n.name, hostport(n.address, int(data["patroni_rest_port"])),
                           n.role) for n in nodes] if engine == "patroni" else [],
        "etcd": [Target(m.name, hostport(m.address, int(data["etcd_client_port"])))
                 for m in etcd_members(cluster)] if engine == "patroni" else [],
    }


def alertmanager_context(data: Mapping[str, Any], monitor: ServiceHost) -> dict[str, Any]:
    email_to = data.get("alertmanager_email_to")
    return {
        "monitor": monitor,
        "webhooks": [str(url) for url in data.get("alertmanager_webhook_urls") or []],
        "email": {
            "to": str(email_to),
            "from": str(data.get("alertmanager_email_from") or f"pgcluster@{monitor.name}"),
            "smarthost": str(data.get("alertmanager_smarthost") or ""),
            "user": data.get("alertmanager_smtp_user"),
            "password": data.get("alertmanager_smtp_password"),
        } if email_to else None,
        "repeat_interval": int(duration_seconds(data["alertmanager_repeat_interval"])),
        "group_interval": int(duration_seconds(data["alertmanager_group_interval"])),
    }


def daemon_args(data: Mapping[str, Any]) -> dict[str, str]:
    """The monitor's two daemons' command lines (their /etc/default files' ARGS)."""
    listen = str(data["monitor_listen_address"])
    retention = int(duration_seconds(data["monitor_retention"]))
    return {
        "prometheus": (f"--web.listen-address={hostport(listen, int(data['prometheus_port']))} "
                       f"--storage.tsdb.retention.time={retention}s "
                       f"--web.console.templates={CONSOLES_DIR} "
                       f"--web.console.libraries={CONSOLE_LIBRARIES_DIR}"),
        # One Alertmanager per monitor, no gossip between them: no cluster port to open.
        "alertmanager": (f"--web.listen-address="
                         f"{hostport(listen, int(data['alertmanager_port']))} "
                         f"--cluster.listen-address= --config.file={ALERTMANAGER_YML}"),
    }
