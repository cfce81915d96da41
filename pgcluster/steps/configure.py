"""Render the cluster's configuration, scripts and secrets on every node, and apply
changes to a running server (reload, or restart when PostgreSQL says it must)."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import Host, deploy
from pyinfra.operations import systemd

from pgcluster import NODE_DIR
from pgcluster.control import tls
from pgcluster.control.templating import render_template, template_context
from pgcluster.errors import ConfigError
from pgcluster.facts.files import MountPoint
from pgcluster.model.endpoints import proxy_names
from pgcluster.model.layout import NODE_ENV, PGPASS, SCRIPTS_DIR, Layout
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import postgres as operations
from pgcluster.operations import promotion
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content, Directory

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


def script_files(names: tuple[str, ...]) -> list[Content]:
    """pgcluster/node/<name>.sh as SCRIPTS_DIR/<name>, executable, for each name: the names
    other files call them by (archive_command, cron, the operations)."""
    return [Content(f"{SCRIPTS_DIR}/{name}", (NODE_DIR / f"{name}.sh").read_text(), "755")
            for name in names]


def node_files(ctx: dict) -> list[Content]:
    """What every node script reads: the shared library, next to them, and this node's
    settings (no secrets: world-readable, as PostgreSQL's archive_command runs as postgres)."""
    return [Content(f"{SCRIPTS_DIR}/lib.sh", (NODE_DIR / "lib.sh").read_text(), "644"),
            Content(NODE_ENV, render_template("node/node.env.j2", ctx), "644")]


def first_start(topology: Topology, host_name: str) -> bool:
    """Whether this host is the primary of a cluster being created: no data directory yet.
    Its first start (primary.initialise) comes before any replica exists, so no peer could
    confirm it to start-guard, which would keep it down."""
    return topology.is_primary(host_name) and not topology.live.get(host_name, {}).get("data")


def require_mounted_backup_root(target: Host) -> None:
    """Refuse (before anything is created) a backup_root that is not a mount point where
    it must be one: a share that failed to mount would split the WAL archive across local
    disks, and a promoted standby would archive where no other node looks."""
    root = target.data.get("backup_root")
    if target.data.get("backup_root_must_be_mounted", True) and not target.get_fact(
            MountPoint, path=root):
        raise ConfigError(
            f"backup_root {root} is not a mount point on {target.name}: mount the storage "
            "every node shares there first (e.g. an NFSv4 export, see docs), then run the "
            "deploy again; for a repository on each node's own disk set "
            "backup_root_must_be_mounted = False in its group data or host data"
        )


@deploy("Configure PostgreSQL")
def postgresql(topology: Topology, engine: str = "manual") -> None:
    data = host.data.dict()
    layout = Layout.from_data(data)
    require_mounted_backup_root(host)
    ctx = template_context(data, topology.cluster.node(host.name), topology.cluster, engine,
                           topology.backup_engine)
    guard_file = f"/etc/systemd/system/{layout.service}.service.d/pgcluster-guard.conf"

    content.directories(
        name="Directories: configuration, TLS, scripts, backups and WAL archive",
        dirs=[
            *(Directory(path, "755", "postgres", "postgres") for path in (
                f"/etc/postgresql/{layout.version}", layout.conf_dir,
                f"{layout.conf_dir}/conf.d", layout.tls_dir)),
            Directory(SCRIPTS_DIR),
            Directory(data["backup_root"], "755", "postgres", "postgres"),
            Directory(data["wal_archive_dir"], "750", "postgres", "postgres"),
        ],
    )
    config = content.contents(
        name="Configuration files and TLS certificates",
        files=[
            *(Content(f"{layout.conf_dir}/{target}", render_template(template, ctx), mode,
                      "postgres", "postgres")
              for template, (target, mode) in CONFIG_FILES.items()),
            *_tls_files(data, topology, layout, engine),
        ],
    )
    content.contents(
        name="pgcluster scripts, their settings and the replication password file (.pgpass)",
        files=[
            *script_files(SCRIPTS),
            *node_files(ctx),
            Content(PGPASS, render_template("postgresql/pgpass.j2", ctx), "600", "postgres",
                    "postgres", secret=True),
        ],
    )
    guard = content.contents(
        name=f"Split-brain start guard for {layout.service}",
        files=[Content(guard_file, render_template("systemd/postgresql-guard.conf.j2", ctx))],
    )
    systemd.daemon_reload(name="Reload systemd units", _if=guard.did_change)
    only_if(
        engine == "manual" and first_start(topology, host.name),
        promotion.allow_start_as_primary,
        name="A new cluster's primary: its first start needs no peer (start-guard)",
    )

    operations.apply_config(
        name="Reload PostgreSQL (restart only if a changed setting requires it)",
        layout=layout,
        port=int(data["postgresql_port"]),
        # Under Patroni only Patroni restarts PostgreSQL (steps.patroni, rolling).
        restart=engine == "manual",
        _if=config.did_change,
    )


def _tls_files(data: dict, topology: Topology, layout: Layout, engine: str) -> list[Content]:
    """The node's CA bundle, certificate and key (made or renewed on the control machine
    when needed, see pgcluster.tls); a change reloads the server, which reads them again."""
    node = topology.cluster.node(host.name)
    material = tls.node_material(data, node.name, node.address, engine=engine,
                                 proxies=proxy_names(topology.cluster))
    if material.issued:
        logger.warning(f"pgcluster: new TLS certificate for {node.name}: {material.issued}")
    return [
        Content(layout.tls_ca_file, material.ca_bundle, "644", "postgres", "postgres"),
        Content(layout.tls_cert_file, material.cert, "644", "postgres", "postgres"),
        Content(layout.tls_key_file, material.key, "600", "postgres", "postgres",
                secret=True),
    ]
