"""Backups: the scripts and repository directories on every node, the cron schedule, the
registry table on the primary, and taking a backup now (deploys/backup.py).

The schedule is the same on every node: each job decides when it runs whether its node is
the primary, so backups follow a failover without a deploy. Role-specific steps are planned
on every host through only_if (see pgcluster.operations.conditional.only_if).
"""

from __future__ import annotations

import os
import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from pgcluster.control.templating import render_template, template_context
from pgcluster.errors import ConfigError
from pgcluster.model import pgbackrest
from pgcluster.model.backups import BACKUP_KINDS, REGISTRY_VERSION, SCRIPTS, check_backup_name
from pgcluster.model.layout import SCRIPTS_DIR
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import jobs
from pgcluster.operations import pgbackrest as pgbackrest_operations
from pgcluster.operations import postgres as operations
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content, Directory, sql_file
from pgcluster.steps.configure import script_files

CRON_FILE = "/etc/cron.d/pgcluster"
REGISTRY_SQL = "/etc/pgcluster/backups.sql"


@deploy("Backup scripts")
def scripts(topology: Topology) -> None:
    """The repository directories, the log directory and the backup/restore scripts."""
    data = host.data.dict()
    ctx = template_context(data, topology.cluster.node(host.name), topology.cluster,
                           backup_engine=topology.backup_engine)
    log_dir = data["backup_log_dir"]
    content.directories(
        name="Directories: full and incremental backups, logs",
        dirs=[Directory(data["backup_full_dir"], "750", "postgres", "postgres"),
              Directory(data["backup_incr_dir"], "750", "postgres", "postgres"),
              Directory(log_dir, "755", "postgres", "postgres")],
    )
    # Created here so that root (restore-backup) never creates it first, owned by root.
    files.file(name=f"{log_dir}/backup.log", path=f"{log_dir}/backup.log", user="postgres",
               group="postgres", mode="640")
    # SCRIPTS_DIR, lib.sh and node.env come with the configure step, which every deploy runs
    # first.
    content.contents(
        name="Backup and restore scripts, rotation of their logs",
        files=[*script_files(SCRIPTS),
               Content("/etc/logrotate.d/pgcluster",
                       render_template("logrotate/pgcluster.j2", ctx))],
    )
    if topology.backup_engine == "pgbackrest":
        pgbackrest_files(data, ctx)


def pgbackrest_files(data: dict, ctx: dict) -> None:
    """pgBackRest's repository, spool and log directories and its configuration, which
    holds the object store's keys and repo2's passphrase: postgres' to read, nobody else's."""
    content.directories(
        name="pgBackRest: repo1, spool and log directories",
        dirs=[Directory("/etc/pgbackrest", "750", "root", "postgres"),
              Directory(data["pgbackrest_repo1_path"], "750", "postgres", "postgres"),
              Directory(data["pgbackrest_spool_path"], "750", "postgres", "postgres"),
              Directory(pgbackrest.LOG_DIR, "770", "postgres", "postgres")],
    )
    content.contents(
        name=f"pgBackRest's configuration ({pgbackrest.CONFIG_FILE})",
        files=[Content(pgbackrest.CONFIG_FILE,
                       render_template("pgbackrest/pgbackrest.conf.j2", ctx), "640", "root",
                       "postgres", secret=True)],
    )


@deploy("Backups: scripts, cron schedule, registry")
def schedule(topology: Topology) -> None:
    data = host.data.dict()
    ctx = template_context(data, topology.cluster.node(host.name), topology.cluster,
                           backup_engine=topology.backup_engine)
    here = topology.is_primary(host.name)
    scripts(topology)
    content.contents(name=f"Backup schedule ({CRON_FILE})",
                     files=[Content(CRON_FILE, render_template("cron/pgcluster.j2", ctx))])
    systemd.service(name="cron runs the backup schedule", service="cron", running=True,
                    enabled=True)
    # On every node: whichever is primary after a failover or switchover has it already,
    # so the next deploy need not write it there.
    content.contents(
        name="Backup registry SQL",
        files=[sql_file(REGISTRY_SQL, render_template("sql/backups.sql.j2",
                                             {**ctx, "registry_version": REGISTRY_VERSION}))],
    )
    only_if(
        here and topology.backup_engine == "pgbackrest", pgbackrest_operations.stanza,
        name=f"pgBackRest stanza {data['pgbackrest_stanza']} in every repository",
        stanza=data["pgbackrest_stanza"],
    )
    only_if(
        here, operations.backup_registry,
        name=f"Backup registry pgcluster.backups in {data['backup_registry_database']}",
        sql_file=REGISTRY_SQL,
        database=data["backup_registry_database"],
        version=REGISTRY_VERSION,
        port=int(data["postgresql_port"]),
    )


def requested_kind() -> tuple[str, str]:
    """What deploys/backup.py takes: --data backup_kind=... (or PGCLUSTER_BACKUP_KIND),
    default full; for verify, backup_name (or PGCLUSTER_BACKUP_NAME), default latest."""
    kind = str(host.data.get("backup_kind") or os.environ.get("PGCLUSTER_BACKUP_KIND") or "full")
    if kind not in BACKUP_KINDS:
        raise ConfigError(f"backup_kind {kind!r} is not one of {', '.join(BACKUP_KINDS)}")
    which = str(host.data.get("backup_name") or os.environ.get("PGCLUSTER_BACKUP_NAME")
                or "latest")
    return kind, check_backup_name(which)


@deploy("Back up now")
def now(topology: Topology, kind: str = "full", which: str = "latest") -> None:
    """Run one backup job now, on the live primary only (the scripts check it again)."""
    command = f"{SCRIPTS_DIR}/backup-{kind}"
    if kind == "verify":
        command += f" {shlex.quote(which)}"
    only_if(
        topology.is_primary(host.name), jobs.run_job,
        name=f"backup-{kind} on the primary ({topology.primary.name})",
        command=command,
    )
