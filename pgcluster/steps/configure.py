"""Render the cluster's configuration, scripts and secrets on every node, and apply
changes to a running server (reload, or restart when PostgreSQL says it must)."""

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from pgcluster import operations, tls
from pgcluster.layout import PGPASS, SCRIPTS_DIR, Layout
from pgcluster.render import context, render
from pgcluster.topology import Topology

# template -> (file in the cluster's configuration directory, mode)
CONFIG_FILES = {
    "postgresql/postgresql.conf.j2": ("postgresql.conf", "644"),
    "postgresql/pg_hba.conf.j2": ("pg_hba.conf", "640"),
    "postgresql/pg_ident.conf.j2": ("pg_ident.conf", "640"),
    "postgresql/start.conf.j2": ("start.conf", "644"),
    "postgresql/pg_ctl.conf.j2": ("pg_ctl.conf", "644"),
    "postgresql/environment.j2": ("environment", "644"),
}
SCRIPTS = ("archive-wal", "restore-wal", "clone-replica", "rejoin-replica", "start-guard")


def install_scripts(names: tuple[str, ...], ctx: dict) -> None:
    """Render templates/scripts/<name>.j2 into SCRIPTS_DIR, executable, for each name."""
    for script in names:
        files.put(
            name=f"Install {script}",
            src=StringIO(render(f"scripts/{script}.j2", ctx)),
            dest=f"{SCRIPTS_DIR}/{script}",
            mode="755",
        )


@deploy("Configure PostgreSQL")
def postgresql(topology: Topology) -> None:
    data = host.data.dict()
    layout = Layout.from_data(data)
    ctx = context(data, topology.cluster.node(host.name), topology.cluster)

    for path in (f"/etc/postgresql/{layout.version}", layout.conf_dir, f"{layout.conf_dir}/conf.d"):
        files.directory(name=f"Directory {path}", path=path, user="postgres",
                        group="postgres", mode="755")
    changes = [
        files.put(
            name=f"Render {target}",
            src=StringIO(render(template, ctx)),
            dest=f"{layout.conf_dir}/{target}",
            user="postgres",
            group="postgres",
            mode=mode,
        )
        for template, (target, mode) in CONFIG_FILES.items()
    ]
    changes += _tls_files(data, topology, layout)

    files.directory(name="pgcluster scripts directory", path=SCRIPTS_DIR, mode="755")
    install_scripts(SCRIPTS, ctx)
    operations.secret_file(
        name="Replication password file (.pgpass)",
        content=render("postgresql/pgpass.j2", ctx),
        dest=PGPASS,
        user="postgres",
        group="postgres",
        mode="600",
    )
    guard = files.put(
        name=f"Split-brain start guard for {layout.service}",
        src=StringIO(render("systemd/postgresql-guard.conf.j2", ctx)),
        dest=f"/etc/systemd/system/{layout.service}.service.d/pgcluster-guard.conf",
        mode="644",
    )
    systemd.daemon_reload(name="Reload systemd units", _if=guard.did_change)
    for path, mode in ((data["backup_root"], "755"), (data["wal_archive_dir"], "750")):
        files.directory(name=f"Directory {path}", path=path, user="postgres",
                        group="postgres", mode=mode)

    operations.apply_config(
        name="Reload PostgreSQL (restart only if a changed setting requires it)",
        layout=layout,
        port=int(data["postgresql_port"]),
        _if=lambda: any(change.did_change() for change in changes),
    )


def _tls_files(data: dict, topology: Topology, layout: Layout) -> list:
    """The node's CA bundle, certificate and key (made or renewed on the control machine
    when needed, see pgcluster.tls); a change reloads the server, which reads them again."""
    node = topology.cluster.node(host.name)
    material = tls.node_material(data, node.name, node.address)
    if material.issued:
        logger.warning(f"pgcluster: new TLS certificate for {node.name}: {material.issued}")
    files.directory(name=f"Directory {layout.tls_dir}", path=layout.tls_dir, user="postgres",
                    group="postgres", mode="755")
    return [
        files.put(name="TLS: the cluster CA certificate(s) to trust",
                  src=StringIO(material.ca_bundle), dest=layout.tls_ca_file,
                  user="postgres", group="postgres", mode="644"),
        files.put(name="TLS: this node's certificate",
                  src=StringIO(material.cert), dest=layout.tls_cert_file,
                  user="postgres", group="postgres", mode="644"),
        operations.secret_file(name="TLS: this node's private key",
                               content=material.key, dest=layout.tls_key_file,
                               user="postgres", group="postgres", mode="600"),
    ]
