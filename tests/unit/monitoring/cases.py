"""The cases `promtool test rules` runs for the alert rules (test_alerts.py): for every
rule a fault that fires it, with the alert's labels and summary, and a healthy cluster, or
one just inside the rule's bound, where it stays quiet.

Each case is the series of a healthy three-node cluster as the exporters report it
(`healthy`), changed where the fault is. The bounds are the rendered context's
(pgcluster.model.monitoring.alert_context of group_data/all.py's defaults), never
written here a second time: change a default and the cases follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INTERVAL = 15  # seconds between samples and between rule evaluations (the scrape interval)
CLUSTER = "pgcluster"  # patroni_scope's default: every series' `cluster`
PRIMARY, STANDBY, READONLY = "postgresql-primary", "postgresql-standby", "postgresql-readonly"
ROLES = {PRIMARY: "primary", STANDBY: "standby", READONLY: "readonly"}
SLOTS = ("postgresql_standby", "postgresql_readonly")  # on the primary, one per replica
MOUNTS = ("/", "/backups", "/var/lib/postgresql")  # the lab's: root, two volumes
REPOSITORIES = ("repo1", "repo2")  # backup_engine = "pgbackrest": local, then S3
GIB = 1024**3
DAY = 86400

# A series' value: a number (the same at every sample), promtool's own notation for
# samples that change ("0 0 stale 1x40"), or None: the series is not there.
Value = float | int | str | None


def labels(job: str, instance: str, **extra: str) -> dict[str, str]:
    """The labels Prometheus' scrape configuration gives a node's series."""
    found = {"job": job, "instance": instance, "cluster": CLUSTER}
    if job != "etcd":
        found["role"] = ROLES[instance]
    return {**found, **extra}


def series(name: str, job: str, instance: str, **extra: str) -> str:
    """One series, as promtool's input_series names it (labels sorted: one spelling)."""
    found = labels(job, instance, **extra)
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(found.items())) + "}"


def pg(name: str, instance: str, **extra: str) -> str:
    return series(name, "postgres", instance, **extra)


def fs(name: str, instance: str, mountpoint: str) -> str:
    return series(name, "node", instance, mountpoint=mountpoint, **_device(mountpoint))


def _device(mountpoint: str) -> dict[str, str]:
    return {"device": "overlay", "fstype": "overlay"} if mountpoint == "/" else \
        {"device": "/dev/sdb", "fstype": "ext4"}


def fs_labels(instance: str, mountpoint: str) -> dict[str, str]:
    return labels("node", instance, mountpoint=mountpoint, **_device(mountpoint))


def free(instance: str, mountpoint: str, fraction: float) -> dict[str, Value]:
    """A filesystem of 100 GiB with this fraction free."""
    return {fs("node_filesystem_size_bytes", instance, mountpoint): 100 * GIB,
            fs("node_filesystem_avail_bytes", instance, mountpoint): int(fraction * 100 * GIB)}


def unmounted(instance: str, mountpoint: str) -> dict[str, Value]:
    return dict.fromkeys(free(instance, mountpoint, 0), None)


CUSTOM = ("pgcluster_node_", "pgcluster_archiver_", "pgcluster_slot_", "pgcluster_backup_",
          "pgcluster_drill_")


def healthy(patroni: bool, certificate_expiry: float) -> dict[str, Value]:
    """Every series of a healthy cluster: the primary streams to both replicas through
    their slots, archives, has a recent full backup; nobody is near a bound. The archive
    was last written a day ago (an idle cluster), with nothing waiting. The registry holds
    pgBackRest's rows too, a recent full backup in each repository (the default engine
    has no repository series: a case of its own), and a restore drill that passed an
    hour ago."""
    found: dict[str, Value] = {}
    for node, role in ROLES.items():
        replica = int(role != "primary")
        found |= {
            series("up", "postgres", node): 1,
            series("up", "node", node): 1,
            pg("pg_up", node): 1,
            pg("pgcluster_node_in_recovery", node): replica,
            pg("pgcluster_node_replay_lag_seconds", node): 0,
            pg("pgcluster_node_replay_lag_bytes", node): 0,
            pg("pgcluster_node_wal_receiver_streaming", node): replica,
            pg("pgcluster_node_connections", node): 10,
            pg("pgcluster_node_max_connections", node): 100,
            pg("pgcluster_archiver_failing", node): 0,
            pg("pgcluster_archiver_failed_count", node): 0,
            pg("pgcluster_archiver_last_archive_age_seconds", node): DAY,
            pg("pgcluster_archiver_pending_segments", node): 0,
            pg("pgcluster_archiver_oldest_pending_age_seconds", node): 0,
            pg("pgcluster_backup_newest_full_age_seconds", node): 3600,
            pg("pgcluster_backup_newest_full_failed", node): 0,
            **{pg("pgcluster_backup_repository_newest_full_age_seconds", node,
                  repository=repository): 3600 for repository in REPOSITORIES},
            pg("pgcluster_drill_newest_age_seconds", node): 3600,
            pg("pgcluster_drill_newest_failed", node): 0,
            series("pgcluster_tls_certificate_expiry_timestamp_seconds", "node", node):
                certificate_expiry,
        }
        for mountpoint in MOUNTS:
            found |= free(node, mountpoint, 0.5)
        if patroni:
            found |= {
                series("up", "patroni", node): 1,
                series("patroni_primary", "patroni", node, scope=CLUSTER): 1 - replica,
                series("patroni_postgres_running", "patroni", node, scope=CLUSTER): 1,
                series("patroni_cluster_unlocked", "patroni", node, scope=CLUSTER): 0,
                series("up", "etcd", node): 1,
                series("etcd_server_has_leader", "etcd", node): 1,
            }
    for slot in SLOTS:
        found |= {pg("pgcluster_slot_active", PRIMARY, slot_name=slot): 1,
                  pg("pgcluster_slot_retained_wal_bytes", PRIMARY, slot_name=slot): 16 << 20}
    return found


def postgres_down(instance: str) -> dict[str, Value]:
    """A node whose server is down: its exporter answers pg_up 0 and none of the queries."""
    gone: dict[str, Value] = {pg("pg_up", instance): 0}
    for key in healthy(True, 0):
        if key.startswith(CUSTOM) and f'instance="{instance}"' in key:
            gone[key] = None
    return gone


@dataclass(frozen=True)
class Expected:
    """A firing alert: its labels (but alertname) and its summary, as Prometheus
    expands it; the runbook is the rule's, expanded with these labels."""

    labels: Mapping[str, str]
    summary: str


@dataclass(frozen=True)
class Case:
    name: str
    alert: str
    change: Mapping[str, Value] = field(default_factory=dict)  # on the healthy series
    fires: tuple[Expected, ...] = ()  # () -- a healthy case: nothing fires
    eval_times: tuple[int, ...] = ()  # seconds; default: the rule's `for` plus a minute
    patroni: bool = False  # only with ha_engine = "patroni"

    @property
    def healthy(self) -> bool:
        return not self.fires


def cases(ctx: Mapping[str, Any], eval_time: int) -> list[Case]:
    """Every case. `ctx` is alert_context's; `eval_time` the time of the certificate's
    case (its expiry is relative to time() there)."""
    lag_bytes, lag_seconds = ctx["lag_bytes"], ctx["lag_seconds"]
    slot_bytes, archive_wait = ctx["slot_bytes"], ctx["archive_wait"]
    full_age, ratio, days = ctx["full_backup_age"], ctx["connections_ratio"], \
        ctx["certificate_days"]
    free_ratio = ctx["free_ratio"]
    split = ctx["for_split_brain"]
    drill_age = ctx["drill_max_age"]  # None: no RestoreDrillTooOld rule, no case of it

    def on(instance: str, severity: str, job: str = "postgres",
           **extra: str) -> dict[str, str]:
        return {**labels(job, instance, **extra), "severity": severity}

    def each_node(name: str, value: Value) -> dict[str, Value]:
        return {pg(name, node): value for node in ROLES}

    def repository_age(value: Value, repository: str = "repo2",
                       nodes: tuple[str, ...] = tuple(ROLES)) -> dict[str, Value]:
        return {pg("pgcluster_backup_repository_newest_full_age_seconds", node,
                   repository=repository): value for node in nodes}

    cluster = {"cluster": CLUSTER}
    return [
        # ------------------------------------------------------------ availability
        Case("a node_exporter down", "InstanceDown",
             {series("up", "node", STANDBY): 0},
             (Expected(on(STANDBY, "critical", job="node"),
                       f"node on {STANDBY} does not answer Prometheus (up = 0)"),)),
        Case("every target up", "InstanceDown"),
        Case("a replica's server stopped", "PostgresDown", postgres_down(READONLY),
             (Expected(on(READONLY, "critical"),
                       f"PostgreSQL on {READONLY} is down: its exporter cannot connect "
                       "(pg_up = 0)"),)),
        Case("every server up", "PostgresDown"),
        Case("the primary's server stopped", "NoPrimary", postgres_down(PRIMARY),
             (Expected({**cluster, "severity": "critical"},
                       f"No node of cluster {CLUSTER} accepts writes: the 2 that answer "
                       "are all replicas"),)),
        Case("one primary", "NoPrimary"),
        Case("no server answers (PostgresDown's)", "NoPrimary",
             {k: v for node in ROLES for k, v in postgres_down(node).items()}),
        Case("the standby promoted while the primary runs", "MoreThanOnePrimary",
             {pg("pgcluster_node_in_recovery", STANDBY): 0,
              pg("pgcluster_node_wal_receiver_streaming", STANDBY): 0},
             (Expected({**cluster, "severity": "critical"},
                       f"2 nodes of cluster {CLUSTER} accept writes: a split brain"),),
             eval_times=(split + 2 * INTERVAL,)),
        Case("one primary", "MoreThanOnePrimary", eval_times=(split + 2 * INTERVAL,)),
        # A switchover: the standby is primary from 30 s; the old primary's last sample
        # says primary until its next scrape (45 s: down, a stale marker), then it is back
        # as a replica. Never an alert, at any evaluation.
        Case("a switchover's overlap of one scrape", "MoreThanOnePrimary",
             {pg("pgcluster_node_in_recovery", PRIMARY): "0 0 0 stale 1x40",
              pg("pgcluster_node_in_recovery", STANDBY): "1 1 0x40"},
             eval_times=tuple(range(30, 30 + split + 4 * INTERVAL, INTERVAL))),
        # ------------------------------------------------------------- replication
        Case("a replica not streaming", "ReplicaNotStreaming",
             {pg("pgcluster_node_wal_receiver_streaming", STANDBY): 0},
             (Expected(on(STANDBY, "critical"),
                       f"{STANDBY} is a replica that streams no WAL from the primary "
                       "(streaming = 0)"),)),
        Case("both replicas stream (the primary does not)", "ReplicaNotStreaming"),
        Case("twice the bound behind, in bytes", "ReplicationLagBytes",
             {pg("pgcluster_node_replay_lag_bytes", READONLY): 2 * lag_bytes},
             (Expected(on(READONLY, "warning"),
                       f"{READONLY} has {humanize1024(2 * lag_bytes)}B of WAL received and "
                       "not replayed yet"),)),
        Case("at the bound, in bytes", "ReplicationLagBytes",
             {pg("pgcluster_node_replay_lag_bytes", READONLY): lag_bytes}),
        Case("twice the bound behind, in time", "ReplicationLagSeconds",
             {pg("pgcluster_node_replay_lag_seconds", STANDBY): 2 * lag_seconds},
             (Expected(on(STANDBY, "warning"),
                       f"{STANDBY} replays {humanize_duration(2 * lag_seconds)} behind the "
                       "primary"),)),
        Case("at the bound, in time", "ReplicationLagSeconds",
             {pg("pgcluster_node_replay_lag_seconds", STANDBY): lag_seconds}),
        Case("the read-only replica's slot without its replica", "SlotInactive",
             {pg("pgcluster_slot_active", PRIMARY, slot_name=SLOTS[1]): 0},
             (Expected(on(PRIMARY, "warning", slot_name=SLOTS[1]),
                       f"Replication slot {SLOTS[1]} on the primary {PRIMARY} has no "
                       "client (active = 0): it keeps WAL"),)),
        Case("a replica's slot, waiting for a failover", "SlotInactive",
             {pg("pgcluster_slot_active", STANDBY, slot_name=SLOTS[1]): 0,
              pg("pgcluster_slot_retained_wal_bytes", STANDBY, slot_name=SLOTS[1]): 0}),
        Case("a slot over the bound", "SlotRetainingWal",
             {pg("pgcluster_slot_retained_wal_bytes", PRIMARY, slot_name=SLOTS[0]):
              2 * slot_bytes},
             (Expected(on(PRIMARY, "warning", slot_name=SLOTS[0]),
                       f"Replication slot {SLOTS[0]} on {PRIMARY} keeps "
                       f"{humanize1024(2 * slot_bytes)}B of WAL"),)),
        Case("a slot at the bound", "SlotRetainingWal",
             {pg("pgcluster_slot_retained_wal_bytes", PRIMARY, slot_name=SLOTS[0]):
              slot_bytes}),
        # -------------------------------------------------- archiving and backups
        Case("the primary's archive_command fails", "ArchivingFailing",
             {pg("pgcluster_archiver_failing", PRIMARY): 1,
              pg("pgcluster_archiver_failed_count", PRIMARY): "1+1x40"},
             (Expected(on(PRIMARY, "critical"),
                       f"The primary {PRIMARY} fails to archive WAL (failing = 1): "
                       "point-in-time recovery falls behind"),)),
        Case("a replica's archiver (it archives nothing)", "ArchivingFailing",
             {pg("pgcluster_archiver_failing", STANDBY): 1}),
        Case("a segment waiting twice the bound", "LastArchiveTooOld",
             {pg("pgcluster_archiver_pending_segments", PRIMARY): 3,
              pg("pgcluster_archiver_oldest_pending_age_seconds", PRIMARY): 2 * archive_wait},
             (Expected(on(PRIMARY, "warning"),
                       f"A WAL segment on the primary {PRIMARY} has waited "
                       f"{humanize_duration(2 * archive_wait)} to be archived"),)),
        Case("an idle primary: last archive a day ago, nothing waits", "LastArchiveTooOld"),
        Case("a segment waiting as long as the bound", "LastArchiveTooOld",
             {pg("pgcluster_archiver_pending_segments", PRIMARY): 1,
              pg("pgcluster_archiver_oldest_pending_age_seconds", PRIMARY): archive_wait}),
        Case("no full backup at all (1e9), on every node", "NewestFullBackupTooOld",
             each_node("pgcluster_backup_newest_full_age_seconds", 1_000_000_000),
             (Expected(on(PRIMARY, "warning"),
                       f"The newest usable full backup of the primary {PRIMARY} is "
                       f"{humanize_duration(1_000_000_000)} old"),)),
        Case("a full backup as old as the bound", "NewestFullBackupTooOld",
             each_node("pgcluster_backup_newest_full_age_seconds", full_age)),
        # repo1 fresh, so the newest full backup over both is too (NewestFullBackupTooOld
        # stays quiet): only the per-repository age tells.
        Case("repo2 (off-site) twice the bound old, repo1 fresh, on every node",
             "BackupRepositoryBehind", repository_age(2 * full_age),
             (Expected(on(PRIMARY, "warning", repository="repo2"),
                       f"The newest usable full backup in repo2 of the primary {PRIMARY} is "
                       f"{humanize_duration(2 * full_age)} old"),)),
        Case("every full backup to repo2 failed (1e9), on every node",
             "BackupRepositoryBehind", repository_age(1_000_000_000),
             (Expected(on(PRIMARY, "warning", repository="repo2"),
                       f"The newest usable full backup in repo2 of the primary {PRIMARY} is "
                       f"{humanize_duration(1_000_000_000)} old"),)),
        Case("both repositories fresh", "BackupRepositoryBehind"),
        Case("repo2 as old as the bound", "BackupRepositoryBehind",
             repository_age(full_age)),
        Case("repo2 old on the replicas only", "BackupRepositoryBehind",
             repository_age(2 * full_age, nodes=(STANDBY, READONLY))),
        Case("the default engine: no repository series", "BackupRepositoryBehind",
             {k: v for repository in REPOSITORIES
              for k, v in repository_age(None, repository).items()}),
        Case("the newest full backup failed, on every node", "NewestFullBackupFailed",
             each_node("pgcluster_backup_newest_full_failed", 1),
             (Expected(on(PRIMARY, "warning"),
                       f"The last full backup on the primary {PRIMARY} failed "
                       "(failed = 1)"),)),
        Case("the newest full backup is ok", "NewestFullBackupFailed"),
        # A registry row, replicated: the primary's answer, one alert, at once.
        Case("the newest restore drill failed, on every node", "RestoreDrillFailed",
             each_node("pgcluster_drill_newest_failed", 1),
             (Expected(on(PRIMARY, "warning"),
                       f"The newest restore drill in the registry of the primary {PRIMARY} "
                       "failed (failed = 1): the backups are not proven"),),
             eval_times=(0, INTERVAL)),
        Case("the newest restore drill passed", "RestoreDrillFailed"),
        Case("a failed drill on the replicas only", "RestoreDrillFailed",
             {pg("pgcluster_drill_newest_failed", node): 1 for node in (STANDBY, READONLY)}),
        Case("never a restore drill (failed 0, age 1e9)", "RestoreDrillFailed",
             each_node("pgcluster_drill_newest_age_seconds", 1_000_000_000)),
        *([] if drill_age is None else [
            Case("the newest restore drill twice the bound old, on every node",
                 "RestoreDrillTooOld",
                 each_node("pgcluster_drill_newest_age_seconds", 2 * drill_age),
                 (Expected(on(PRIMARY, "warning"),
                           f"The newest restore drill in the registry of the primary {PRIMARY} "
                           f"is {humanize_duration(2 * drill_age)} old: the backups are not "
                           "proven lately"),)),
            Case("a restore drill an hour ago", "RestoreDrillTooOld"),
            # As status: a cluster that never ran a drill is not unhealthy.
            Case("never a restore drill (1e9), on every node", "RestoreDrillTooOld",
                 each_node("pgcluster_drill_newest_age_seconds", 1_000_000_000)),
            Case("a restore drill as old as the bound", "RestoreDrillTooOld",
                 each_node("pgcluster_drill_newest_age_seconds", drill_age)),
            Case("an old drill on the replicas only", "RestoreDrillTooOld",
                 {pg("pgcluster_drill_newest_age_seconds", node): 2 * drill_age
                  for node in (STANDBY, READONLY)}),
        ]),
        # --------------------------------------------------------------- capacity
        Case("connections over the bound", "ConnectionsNearMax",
             {pg("pgcluster_node_connections", PRIMARY): int(100 * ratio) + 10},
             (Expected(on(PRIMARY, "warning"),
                       f"{PRIMARY} uses {int(100 * ratio) + 10}% of max_connections"),)),
        Case("connections at the bound", "ConnectionsNearMax",
             {pg("pgcluster_node_connections", PRIMARY): int(100 * ratio)}),
        Case("a certificate a day inside the bound", "CertificateExpiring",
             {series("pgcluster_tls_certificate_expiry_timestamp_seconds", "node", STANDBY):
              eval_time + (days - 1) * DAY},
             (Expected(on(STANDBY, "warning", job="node"),
                       f"The TLS certificate of {STANDBY} expires in {days - 1:.1f} days"),),
             eval_times=(eval_time,)),
        Case("a certificate a day outside the bound", "CertificateExpiring",
             {series("pgcluster_tls_certificate_expiry_timestamp_seconds", "node", STANDBY):
              eval_time + (days + 1) * DAY},
             eval_times=(eval_time,)),
        Case("the backup volume nearly full", "BackupRootFilling",
             free(STANDBY, "/backups", free_ratio / 2),
             (Expected({**fs_labels(STANDBY, "/backups"), "severity": "warning"},
                       f"/backups on {STANDBY}, backup_root (backups, WAL archive), has "
                       f"{percent(free_ratio / 2)} free"),)),
        Case("backup_root on the root filesystem, nearly full", "BackupRootFilling",
             {**unmounted(STANDBY, "/backups"), **free(STANDBY, "/", free_ratio / 2)},
             (Expected({**fs_labels(STANDBY, "/"), "severity": "warning"},
                       f"/ on {STANDBY}, backup_root (backups, WAL archive), has "
                       f"{percent(free_ratio / 2)} free"),)),
        Case("the backup volume at the bound", "BackupRootFilling",
             free(STANDBY, "/backups", free_ratio)),
        Case("the root filesystem full, backup_root a volume of its own", "BackupRootFilling",
             free(STANDBY, "/", free_ratio / 2)),
        Case("the data volume nearly full", "DataDirectoryFilling",
             free(PRIMARY, "/var/lib/postgresql", free_ratio / 2),
             (Expected({**fs_labels(PRIMARY, "/var/lib/postgresql"), "severity": "critical"},
                       f"/var/lib/postgresql on {PRIMARY}, the data directory, has "
                       f"{percent(free_ratio / 2)} free"),)),
        Case("the data volume at the bound", "DataDirectoryFilling",
             free(PRIMARY, "/var/lib/postgresql", free_ratio)),
        Case("the root filesystem full, the data a volume of its own", "DataDirectoryFilling",
             free(PRIMARY, "/", free_ratio / 2)),
        # ---------------------------------------------------------------- Patroni
        Case("every Patroni sees no leader", "PatroniNoLeader",
             {series("patroni_cluster_unlocked", "patroni", node, scope=CLUSTER): 1
              for node in ROLES}
             | {series("patroni_primary", "patroni", PRIMARY, scope=CLUSTER): 0},
             (Expected({**cluster, "severity": "critical"},
                       f"Patroni of cluster {CLUSTER} has no leader (unlocked = 1): no node "
                       "takes writes"),), patroni=True),
        Case("a leader", "PatroniNoLeader", patroni=True),
        Case("one Patroni alone sees no leader", "PatroniNoLeader",
             {series("patroni_cluster_unlocked", "patroni", READONLY, scope=CLUSTER): 1},
             patroni=True),
        Case("an etcd member down", "EtcdMemberDown", {series("up", "etcd", READONLY): 0},
             (Expected(on(READONLY, "warning", job="etcd"),
                       f"etcd member {READONLY} does not answer (up = 0): one more loss and "
                       "Patroni has no quorum"),), patroni=True),
        Case("every etcd member up", "EtcdMemberDown", patroni=True),
        Case("an etcd member without a leader", "EtcdNoLeader",
             {series("etcd_server_has_leader", "etcd", STANDBY): 0},
             (Expected(on(STANDBY, "critical", job="etcd"),
                       f"etcd member {STANDBY} sees no etcd leader (has_leader = 0)"),),
             patroni=True),
        Case("etcd has a leader", "EtcdNoLeader", patroni=True),
    ]


# ------------------------------------------- Prometheus' template functions, for summaries

def humanize1024(value: float) -> str:
    """Prometheus' humanize1024 of a whole number of bytes (as the cases use them)."""
    for prefix in ("", "ki", "Mi", "Gi", "Ti", "Pi"):
        if abs(value) < 1024 or prefix == "Pi":
            return f"{value:.4g}{prefix}"
        value /= 1024
    raise AssertionError("unreachable")


def humanize_duration(seconds: float) -> str:
    """Prometheus' humanizeDuration of a whole number of seconds of a minute or more."""
    days, rest = divmod(int(seconds), DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def percent(fraction: float) -> str:
    """Prometheus' humanizePercentage: the percentage with at most 4 significant digits."""
    return f"{fraction * 100:.4g}%"
