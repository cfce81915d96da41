"""Every tunable of the cluster, with the reason for its value.

pyinfra loads this file for every host of every inventory; a file named after an inventory
(group_data/docker.py for inventory/docker.py) or after a group overrides it. Host data in
the inventory (addresses, node names) overrides both.

Each value's annotation is its type and range (pgcluster/model/settings.py): every value,
here, in a group file or in host data, is checked by it before any host is touched, and a
key that a group file sets but this file does not list is refused as a typo.
docs/configuration.md lists the rules. pyinfra itself ignores the annotations.

Secrets are never written here: they come from the environment, from the inventory's
git-ignored secrets file (secrets/<inventory>.env, mode 0600) or are generated once into it
(`python -m pgcluster --inventory INVENTORY secrets init`); see
pgcluster/control/secrets.py. Only the Docker lab has documented defaults, in
group_data/docker.py.
"""

from pgcluster.control.secrets import inventory_dir, secret
from pgcluster.model.settings import (
    CLUSTER_NAME,
    DCS_NAMESPACE,
    ENCODING,
    HTTP_USER,
    LISTEN_ADDRESSES,
    LOCALE,
    PATRONI_SCOPE,
    S3_BUCKET,
    S3_REGION,
    TIME_ZONE,
    WEBHOOK_URL,
    WEEK,
    AbsolutePath,
    Bool,
    Cidr,
    Cron,
    Dict,
    Duration,
    Enum,
    Host,
    Identifier,
    Int,
    ListOf,
    NodeName,
    Optional,
    PostgresSettings,
    Real,
    Seconds,
    Secret,
    Size,
    Text,
)

# --------------------------------------------------------------------------- PostgreSQL
# Debian 12 packages PostgreSQL 15; the only supported version
postgresql_version: Enum(15, message="is not supported: Debian 12 packages PostgreSQL 15") = 15
# Debian cluster name: /etc/postgresql/15/main, postgresql@15-main
postgresql_cluster: CLUSTER_NAME = "main"
# Port on every node (the lab publishes 5432-5434 on the host)
postgresql_port: Int(1, 65535) = 5432
listen_addresses: LISTEN_ADDRESSES = "*"  # pg_hba.conf, not the listener, decides who may connect
# As in the seed; standbys must have at least the primary's value
max_connections: Int(1, 262143) = 100
# Small-VM default; ~25% of RAM on a dedicated server
shared_buffers: Size(16, 1073741823, base="8kB") = "128MB"
# Log and now() time zone; UTC keeps nodes in different zones comparable
timezone: TIME_ZONE = "UTC"
initdb_encoding: ENCODING = "UTF8"  # the seed's data is Spanish text
initdb_locale: LOCALE = "C.UTF-8"  # present on every Debian system, no locales package needed
data_checksums: Bool() = True  # initdb --data-checksums: detect storage corruption on read
# Any other postgresql.conf setting, name -> value (strings are quoted for you).
postgresql_settings_extra: PostgresSettings() = {}

# -------------------------------------------------------------------------- Replication
# Enough WAL for streaming replicas and base backups
wal_level: Enum("replica", "logical", "minimal") = "replica"
max_wal_senders: Int(0, 262143) = 10  # as in the seed; replicas + base backups + pg_receivewal
max_replication_slots: Int(0, 262143) = 10  # one slot per replica, with room for rebuilds
# As in the seed: a replica without its slot can still catch up
wal_keep_size: Size(0, 2147483647, base="MB") = "512MB"
# Slots keep WAL for a replica that is down; this caps it so a dead replica cannot fill the
# primary's disk (the replica then catches up from the archive, or is rebuilt).
max_slot_wal_keep_size: Size(-1, 2147483647, base="MB") = "2GB"
hot_standby: Bool() = True  # replicas answer read-only queries
hot_standby_feedback: Bool() = True  # long reads on replicas are not cancelled by vacuum on primary
# A replica pings its primary after half of this without a message and drops the stream
# after all of it (PostgreSQL's default is 60s). Shorter means a dead primary is noticed
# sooner, and a failover needs that: a replica that still shows a stream is taken as proof
# that its primary lives, until it has heard nothing for longer than a live primary allows.
wal_receiver_timeout: Duration(0, 2147483647, base="ms") = "15s"
wal_log_hints: Bool() = True  # lets pg_rewind rejoin a failed primary instead of a full rebuild
# Replicas fetch WAL from the archive when streaming cannot serve it (lab: shared volume).
restore_from_archive: Bool() = True
replica_wait_timeout: Seconds(1, WEEK) = 180  # seconds the deploy waits for a new replica to stream
# Synchronous replication, off by default as in the seed. List the node names that may
# confirm a commit (e.g. ["postgresql-standby", "postgresql-primary"]: the promotable
# nodes); each node then waits for the first of the others that streams. Zero committed
# rows are lost on failover, at the price of writes waiting for that standby. A failover
# that leaves no such standby suspends it (ALTER SYSTEM) until `pgcluster rejoin`.
synchronous_standbys: ListOf(NodeName()) = []
# With synchronous_standbys: on = flushed on the standby
synchronous_commit: Enum("on", "remote_apply", "remote_write", "local", "off") = "on"
# Host data: the node (its node_name) this replica streams from instead of the primary, a
# cascading replica (docs/replicas.md): fewer streams on the primary, or a far site fed by
# one link. Re-pointed to its upstream's own source while the upstream is lost; keeps
# streaming when the upstream is promoted. None: it streams from the primary.
upstream: Optional(NodeName()) = None
# A physical replication slot on a node that no node of the inventory streams from (a node
# removed from the inventory) keeps WAL for no one, up to max_slot_wal_keep_size. "warn":
# a deploy keeps it and says so, with the SQL that drops it; "drop": a deploy drops it.
orphan_slots: Enum("warn", "drop") = "warn"

# ----------------------------------------------------------------- Failover, switchover
switchover_max_lag_bytes: Int(0) = 16 * 1024 * 1024  # switchover refuses a target further behind
# ... or a primary with transactions open this long
switchover_max_xact_seconds: Seconds(0, WEEK) = 60
promote_timeout: Seconds(1, WEEK) = 60  # seconds pg_promote() may take to finish recovery
# A failover refuses (without --force) a target that lags more than this behind the most
# advanced position known (another replica's, or the end of the WAL archive) ...
failover_max_lag_bytes: Int(0) = 16 * 1024 * 1024
# ... or that stopped receiving WAL more than this many seconds before the rest of the
# cluster last saw WAL (another replica, the archive): the old primary went on writing
# without it, and may still be alive on the far side of a partition. Check that it really
# is dead, then decide with --force. (A cluster idle as long is no reason to refuse.)
failover_max_receive_age: Seconds(1, WEEK) = 1800
# A node that would start as a primary first asks its peers whether another node is on a
# newer timeline or already primary; when no peer answers within this many seconds it
# stays down (pgcluster start NODE --as-primary starts it anyway, deliberately).
start_guard_wait: Seconds(1, WEEK) = 60
status_max_lag_bytes: Int(0) = 64 * 1024 * 1024  # status: a replica further behind is unhealthy
# Status: an older newest full backup is unhealthy
status_max_backup_age_hours: Int(1, 24 * 366) = 8 * 24

# -------------------------------------------------------------------------------- Drills
# `pgcluster drill failover|switchover` (docs/drills.md) passes when the writer's first
# commit after the fault is acknowledged within this many seconds (the recovery time an
# application sees: promotion, re-pointing, the endpoint noticing) ...
drill_max_rto_seconds: Seconds(1, 3600) = 30
# ... and no more acknowledged commits than this are missing on the new primary. A cleanly
# stopped primary sends its standbys everything first, so 0 holds even without synchronous
# replication; a killed one may lose the last few (see synchronous_standbys).
drill_max_lost_commits: Int(0) = 0
# Backups that prove themselves: `pgcluster drill schedule` installs a cron job on the
# control machine (/etc/cron.d) that runs the restore drill at this time (weekly: Saturday
# 04:30), each run recorded in the registry (kind 'drill'). "": `drill schedule` refuses.
drill_restore_schedule: Cron() = "30 4 * * 6"
# status (and the RestoreDrillTooOld alert): a newest restore drill older than this is
# unhealthy, as a failed one always is; None: any age. The weekly schedule plus a day.
drill_max_age: Optional(Duration(3600, 31536000, base="s")) = "8d"

# ------------------------------------------------------------- High availability engine
# Who promotes a standby when the primary fails. "manual": pgcluster's own failover and
# switchover commands, run by an operator. "patroni": Patroni on every node, with etcd on
# every node as its DCS, promotes the most advanced standby automatically. None: keep the
# engine the cluster already runs (a new cluster starts with "manual").
ha_engine: Optional(Enum("manual", "patroni")) = None
# Patroni's timing, the fastest its docs call safe (Patroni 3.0.2 does not check them;
# pgcluster refuses anything else): loop_wait + 2 x retry_timeout <= ttl, ttl >= 20,
# loop_wait >= 2, retry_timeout >= 3. A killed primary is replaced after about ttl seconds;
# a cleanly stopped one within loop_wait. Lower ttl means false failovers on a slow network.
patroni_ttl: Seconds(20, 3600) = 20  # the leader lock's lifetime
patroni_loop_wait: Seconds(2, 3600) = 5  # seconds between two runs of Patroni's HA loop
# DCS and PostgreSQL trouble shorter than this never demotes the leader
patroni_retry_timeout: Seconds(3, 3600) = 5
# A replica further behind (bytes of WAL) never takes part in the leader race: the data it
# lacks would be lost. Patroni's default, 1 MB.
patroni_maximum_lag_on_failover: Int(0) = 1024 * 1024
# Seconds a crashed primary may take to recover in place before a failover is started
# (Patroni's primary_start_timeout); 0 fails over at once, losing what was not replicated.
patroni_primary_start_timeout: Seconds(0, WEEK) = 300
# With the DCS unreachable, a primary that still reaches every other member keeps running
# instead of demoting itself: an etcd outage alone never stops writes.
patroni_failsafe_mode: Bool() = True
patroni_pg_ctl_timeout: Seconds(1, WEEK) = 60  # seconds pg_ctl may take to start or stop PostgreSQL
# Patroni's REST API (HTTPS, the node's certificate): health checks, switchovers. Changes
# also need a client certificate of the cluster CA and the user and password below.
patroni_rest_port: Int(1, 65535) = 8008
patroni_rest_user: HTTP_USER = "patroni"
patroni_rest_password: Optional(Secret()) = secret("patroni_rest_password")
# A hung node is reset by the kernel's watchdog (/dev/watchdog, softdog) before its leader
# lock expires, so that it can never write beside a new primary. "automatic" uses it when
# there is one; "required" refuses to lead without it; "off" never uses it.
patroni_watchdog: Enum("off", "automatic", "required") = "automatic"
# The cluster's name in the DCS (also PostgreSQL's cluster_name under Patroni) and the
# prefix of its keys: /pgcluster/pgcluster/leader, ...
patroni_scope: PATRONI_SCOPE = "pgcluster"
patroni_namespace: DCS_NAMESPACE = "/pgcluster/"
# etcd, Patroni's DCS: one member on every node, TLS with client certificates for both
# clients and peers. 3 members survive the loss of one; 2 would survive none, so pgcluster
# refuses a Patroni cluster of 2 nodes (1 is a lab without failover).
etcd_client_port: Int(1, 65535) = 2379
etcd_peer_port: Int(1, 65535) = 2380
# Milliseconds. etcd's leader sends a heartbeat this often ...
etcd_heartbeat_interval: Int(10, 10000) = 100
# ... and a member that hears none this long starts an election: at least 5 x the heartbeat
# (etcd refuses less), and shorter than patroni_retry_timeout, so that an etcd election
# never outlasts Patroni's retries.
etcd_election_timeout: Int(50, 50000) = 1000
# Not Debian's /var/lib/etcd/default: the etcd-server package's first start fills that with
# a cluster of one member, which would never join the others.
etcd_data_dir: AbsolutePath() = "/var/lib/etcd/pgcluster"

# ---------------------------------------------------------- Endpoints: HAProxy, PgBouncer
# One address for writes and one for reads, whichever node is primary (docs/endpoints.md):
# HAProxy on the hosts of the inventory's `proxy` group (the lab's <prefix>-proxy
# container), each node's role read over HTTPS on patroni_rest_port (Patroni's REST API,
# or pgcluster's health check under the manual engine: the same paths either way).
proxy_rw_port: Int(1, 65535) = 5000  # read-write: the primary, through its PgBouncer
proxy_ro_port: Int(1, 65535) = 5001  # read-only: the replicas round robin, through PgBouncer
# The same, straight to PostgreSQL, for sessions that need session state (SET, LISTEN,
# advisory locks, prepared statements): PgBouncer's transaction pooling forbids it.
proxy_rw_direct_port: Int(1, 65535) = 5002
proxy_ro_direct_port: Int(1, 65535) = 5003
proxy_stats_port: Int(1, 65535) = 7000  # HAProxy's statistics page, read-only
# Where the statistics page listens on the proxy host: its loopback (the lab listens on
# the container's address and publishes it on this machine's loopback only).
proxy_stats_address: Host() = "127.0.0.1"
# A replica further behind its primary than this (bytes of WAL) leaves the read-only
# endpoints until it catches up (Patroni's /replica?lag=).
proxy_max_replica_lag: Int(0) = 16 * 1024 * 1024
# When no replica qualifies: "primary" sends reads to the primary, "none" refuses them.
proxy_ro_fallback: Enum("primary", "none") = "primary"
# HAProxy's checks: every check_interval ms (fast_interval while a node changes state); a
# node is down after check_fall failed checks and up after check_rise good ones. A new
# primary takes writes about check_rise x fast_interval after its promotion.
proxy_check_interval: Int(100, 60000) = 2000
proxy_check_fast_interval: Int(100, 60000) = 500
proxy_check_fall: Int(1, 100) = 2
proxy_check_rise: Int(1, 100) = 2
# PgBouncer on every database node, in front of its own server's Unix socket. Clients use
# TLS and scram-sha-256, checked against PostgreSQL's own verifiers (auth_query as
# pgbouncer_auth_user, which logs in by peer over the socket): no password in any file.
pgbouncer_port: Int(1, 65535) = 6432
# "transaction" shares a server connection between clients between transactions: no
# session state (SET, LISTEN, session advisory locks, WITH HOLD cursors, and in 1.18 no
# protocol-level prepared statements); such clients use the direct ports.
pgbouncer_pool_mode: Enum("transaction", "session", "statement") = "transaction"
pgbouncer_max_client_conn: Int(1, 100000) = 1000  # client connections one PgBouncer accepts
pgbouncer_default_pool_size: Int(1, 10000) = 20  # server connections per user and database
pgbouncer_reserve_pool_size: Int(0, 10000) = 5  # extra ones when clients wait reserve_pool_timeout
# Server connections per database, all users (0: no limit): keep it under max_connections.
pgbouncer_max_db_connections: Int(0, 100000) = 50
pgbouncer_auth_user: Identifier() = "pgbouncer"  # reads verifiers, nothing else; never a superuser

# ---------------------------------------------------------------------------- Monitoring
# With a `monitor` inventory group (docs/monitoring.md): on every database node
# postgres_exporter and node_exporter, over TLS with the node's certificate and HTTP basic
# auth (monitor_password: only the monitors hold it); on each monitor host Prometheus, which
# scrapes them (and Patroni's and etcd's /metrics), and Alertmanager.
monitor_user: Identifier() = "monitor"  # postgres_exporter's role: pg_monitor, by peer only
postgres_exporter_port: Int(1, 65535) = 9187  # the Prometheus project's registered ports
node_exporter_port: Int(1, 65535) = 9100
# Prometheus' and Alertmanager's address on a monitor host: the loopback by default (no
# login in front of them: reach them through an SSH tunnel); the lab gives the container's
# own address, which Docker publishes on the control machine's loopback only.
monitor_listen_address: Host() = "127.0.0.1"
prometheus_port: Int(1, 65535) = 9090
alertmanager_port: Int(1, 65535) = 9093
# How often Prometheus scrapes and evaluates the alert rules: an alert's `for` plus two of
# these is how late it may fire.
monitor_scrape_interval: Duration(1, 3600, base="s") = 15
monitor_retention: Duration(3600, 315360000, base="s") = "15d"  # how long Prometheus keeps samples
# Where Alertmanager sends alerts: webhooks (each gets every alert, as JSON) and e-mail (to
# alertmanager_email_to through alertmanager_smarthost, host:port; its password, if it needs
# one, is the secret alertmanager_smtp_password). Neither set: alerts are only listed by
# Alertmanager's API and `amtool`.
alertmanager_webhook_urls: ListOf(WEBHOOK_URL) = []
alertmanager_email_to: Optional(Text()) = None
alertmanager_email_from: Optional(Text()) = None  # default: pgcluster@<the monitor's name>
alertmanager_smarthost: Optional(Text()) = None  # e.g. "smtp.example.com:587" (STARTTLS)
alertmanager_smtp_user: Optional(Text()) = None
alertmanager_smtp_password: Optional(Secret()) = secret("alertmanager_smtp_password")
# Alerts of one kind on one node are sent together, at most this often while they last.
alertmanager_repeat_interval: Duration(60, 604800, base="s") = "4h"
# After a notification, how long Alertmanager waits before it sends what changed in the
# same group: a resolution, or the same alert on another node. Shorter is noisier.
alertmanager_group_interval: Duration(1, 86400, base="s") = "1min"
# The alert rules' thresholds (templates/monitoring/alerts.yml.j2; docs/monitoring.md). An
# alert fires when its condition has held for alert_for (a failed backup: at once), and
# reaches Prometheus' API within alert_for + two scrapes.
alert_for: Duration(0, 86400, base="s") = "1min"
# Two primaries at once is a split brain: it must not wait alert_for, but a switchover
# looks like one until the old primary's next scrape (its last sample still says primary),
# so MoreThanOnePrimary waits this long, and never less than two monitor_scrape_interval.
alert_split_brain_for: Duration(0, 86400, base="s") = "30s"
alert_replication_lag_bytes: Int(0) = 64 * 1024 * 1024  # WAL received, not yet replayed
alert_replication_lag: Duration(1, 86400, base="s") = "5min"  # replay behind the primary
alert_slot_retained_bytes: Int(0) = 1024 * 1024 * 1024  # under max_slot_wal_keep_size's lab 1GB
# A segment waiting this long to be archived (the archive, and so PITR, falls behind);
# archive_timeout closes a segment every minute while there are writes.
alert_archive_wait: Duration(60, 86400, base="s") = "10min"
# The weekly full backup plus a day: one missed run is an alert.
alert_full_backup_age: Duration(3600, 31536000, base="s") = "8d"
alert_connections_ratio: Real(0, 1) = 0.8  # of max_connections
# Under tls_renew_days (30): a deploy re-run renews first; this fires when none did.
alert_certificate_days: Int(1, 36500) = 21
alert_free_space_ratio: Real(0, 1) = 0.1  # backup_root's and the data directory's filesystems

# ------------------------------------------------------------------------ WAL archiving
# Archives on the primary; a promoted standby takes over archiving
archive_mode: Enum("on", "off", "always") = "on"
# Seconds (or "1min"...): bounds the data an archive-only restore can lose
archive_timeout: Duration(0, 1073741823, base="s") = 60
# full/, incr/, wal_archive/ live here (lab: a shared volume)
backup_root: AbsolutePath() = "/backups"
# The deploy refuses to create the repository when backup_root is not a mount point, so an
# NFS share that failed to mount never splits the archive across local disks. Turn it off
# only for a deliberately local repository (the Vagrant VMs: a directory on each VM).
backup_root_must_be_mounted: Bool() = True
wal_archive_dir: AbsolutePath() = f"{backup_root}/wal_archive"  # the seed's /backups/wal_archive

# ------------------------------------------------------------------------------ Backups
# Every node must see the same backup_root (the lab: one Docker volume; VMs and bare metal:
# one shared filesystem such as an NFS export mounted there on every node), so that the
# archive survives the primary and a promoted standby keeps archiving into the same place.
# full/<YYYYMMDDTHHMMSSZ>/: pg_basebackup, tar + gzip
backup_full_dir: AbsolutePath() = f"{backup_root}/full"
# incr/<YYYYMMDD>/: the day's archived WAL, gzip'd
backup_incr_dir: AbsolutePath() = f"{backup_root}/incr"
backup_compress_level: Int(1, 9) = 6  # gzip level of full backups and incrementals (the seed's 6)
# pg_basebackup --checkpoint: "fast" starts the backup at once (an I/O burst); "spread"
# waits for a paced checkpoint (up to checkpoint_timeout * checkpoint_completion_target).
backup_checkpoint: Enum("fast", "spread") = "fast"
# Recovery window: every point of the last N days stays restorable. Older full backups are
# removed except the newest one before the window; WAL older than the oldest kept full
# backup's start goes too; the newest full backup is never removed.
backup_retention_days: Int(1, 36500) = 7
# A full backup starts only with this multiple of the databases' total size free under
# backup_root. 1.0 is safe even for data gzip cannot shrink; what gzip saves (typically
# 50-80%) stays free for the WAL archive, which must never run out of room.
backup_free_space_factor: Real(0, 100) = 1.0
# Seconds a job waits for another backup job to finish, then fails
backup_lock_wait: Seconds(0, WEEK) = 3600
# Seconds an incremental waits for the switched segment's archiving
backup_archive_wait: Seconds(1, WEEK) = 120
# The first incremental (no previous one) reaches back this far
backup_incr_window_hours: Int(1, 24 * 366) = 24
# Verify unpacks a full backup here (its size)
backup_verify_dir: AbsolutePath() = f"{backup_root}/.verify"
# backup.log, restore.log, cron.log (owner postgres)
backup_log_dir: AbsolutePath() = "/var/log/pgcluster"
# Where the registry table pgcluster.backups lives: the maintenance database, so that
# operations data never mixes with the application's (database_name).
backup_registry_database: Identifier() = "postgres"
# cron schedules (minute hour day-of-month month day-of-week, the nodes' clock, UTC in the
# lab) for /etc/cron.d/pgcluster on every node; "" disables a job.
backup_full_schedule: Cron() = "0 2 * * 0"  # weekly full backup (seed): Sunday 02:00
# Daily incremental: the WAL archived since the last one
backup_incr_schedule: Cron() = "30 2 * * *"
backup_retention_schedule: Cron() = "0 4 * * *"  # daily expiry of backups and WAL past the window
backup_verify_schedule: Cron() = "0 5 * * *"  # daily pg_verifybackup of the newest full backup
restore_timeout: Seconds(1, WEEK) = 3600  # seconds a restore waits for recovery to reach its target

# ----------------------------------------------------------------------- Backup engine
# Who takes the backups and archives WAL. "pg_basebackup": pgcluster's own scripts and the
# seed's layout under backup_root (full/, incr/, wal_archive/). "pgbackrest": pgBackRest
# (Debian's 2.45): parallel, compressed, block-checksummed full backups and real
# differential/incremental ones, on repo1 under backup_root and, with an S3 endpoint, on
# repo2 in object storage too (docs/backups.md). Same schedules, retention window and
# commands. None: keep the engine the cluster runs (a new cluster starts with
# "pg_basebackup"). `make cluster BACKUP=pgbackrest` in the lab.
backup_engine: Optional(Enum("pg_basebackup", "pgbackrest")) = None
pgbackrest_stanza: Identifier() = "main"  # pgBackRest's name for this cluster in its repositories
# repo1: on the storage every node shares, beside the seed engine's directories
pgbackrest_repo1_path: AbsolutePath() = f"{backup_root}/pgbackrest"
# Processes for a backup, a restore and asynchronous archiving (the lab has 2 cores)
pgbackrest_process_max: Int(1, 64) = 2
# lz4 is the fastest and cheapest on CPU; zst compresses better at some CPU cost
pgbackrest_compress_type: Enum("lz4", "zst", "gz", "bz2", "none") = "lz4"
# What the daily job takes: "incr" (changed since the last backup of any kind) or "diff"
# (changed since the last full backup: larger, but a restore needs only two backups)
pgbackrest_daily_type: Enum("incr", "diff") = "incr"
# archive-push in the background, several segments at once: the archiver never waits on
# object storage. The queue lives in the spool directory and is bounded below.
pgbackrest_archive_async: Bool() = True
pgbackrest_spool_path: AbsolutePath() = "/var/spool/pgbackrest"
# When the repositories cannot take WAL for so long that this much queues up, pgBackRest
# drops it and reports success so the primary's disk never fills (point-in-time recovery
# then has a gap, and the archive alert fires). None: never drop; PostgreSQL keeps every
# segment until it is archived, and the primary's disk may fill instead.
pgbackrest_archive_push_queue_max: Optional(Size(16 * 1024**2, 1024**5, base="B")) = None
# Seconds without an answer before `backup list` and the deploy's stanza check count a
# repository as unreachable (pgbackrest info --io-timeout; it tries four times). pgBackRest's
# own 60 s would keep `backup list` four minutes on an object store that is down.
pgbackrest_info_io_timeout: Seconds(1, 600) = 5
# repo2: S3-compatible object storage (AWS S3, MinIO, SeaweedFS...). None: repo1 only. A
# DNS name, not an address: pgBackRest checks the certificate against the host name. With
# an `objectstore` inventory group (the lab's postgresql-objectstore) None means its host.
pgbackrest_s3_endpoint: Optional(Host()) = None
pgbackrest_s3_port: Int(1, 65535) = 443
pgbackrest_s3_bucket: S3_BUCKET = "pgbackrest"
pgbackrest_s3_region: S3_REGION = "us-east-1"
# "path" for most self-hosted stores (bucket in the path); "host" for AWS (virtual hosts)
pgbackrest_s3_uri_style: Enum("host", "path") = "host"
pgbackrest_s3_path: AbsolutePath() = "/pgcluster"  # inside the bucket
# CA certificates that sign the store's certificate, on the nodes. None: the system's, or
# the cluster CA when the store is the `objectstore` group's (whose certificate it issues)
pgbackrest_s3_ca_file: Optional(AbsolutePath()) = None
# Object storage is someone else's disk: repo2 is encrypted by default (the passphrase,
# pgbackrest_cipher_pass, comes from the secrets file; lose it and repo2 is unreadable)
pgbackrest_s3_cipher_type: Enum("aes-256-cbc", "none") = "aes-256-cbc"
pgbackrest_s3_key: Optional(Secret()) = secret("pgbackrest_s3_key")  # access key id
pgbackrest_s3_key_secret: Optional(Secret()) = secret("pgbackrest_s3_key_secret")
pgbackrest_cipher_pass: Optional(Secret()) = secret("pgbackrest_cipher_pass")
# The `objectstore` group's SeaweedFS (the lab's postgresql-objectstore): where it keeps
# the objects (the lab: a volume of its own, apart from the backups volume), and the size
# at which it starts a new volume file (small: the lab's disk is the laptop's).
objectstore_data_dir: AbsolutePath() = "/var/lib/seaweedfs"
objectstore_volume_size_mb: Int(8, 30000) = 256

# ------------------------------------------------------------------------------- Access
# Client networks allowed to log in (over TLS, scram-sha-256), e.g. the application
# servers' subnet. Nothing else may log in over the network; every node may reach every
# other node for replication only. Set per inventory (the lab: inventory/docker.py).
client_networks: ListOf(Cidr()) = []

# ---------------------------------------------------------------------------------- TLS
# Every network connection is encrypted and every node-to-node connection checks the
# peer's certificate (sslmode=verify-full). pgcluster makes a cluster CA and one certificate
# per node on the control machine, in tls_dir, and renews them on a re-run of the deploy.
# On the control machine: secrets/<inventory>/tls
tls_dir: AbsolutePath() = str(inventory_dir("tls"))
tls_ca_days: Int(1, 36500) = 3650  # validity of the CA pgcluster makes (10 years)
tls_cert_days: Int(1, 36500) = 365  # validity of each node's certificate
# A re-run of the deploy renews what expires within this many days
tls_renew_days: Int(1, 36500) = 30
# "ec-p256", or "rsa-3072" for clients that cannot do elliptic curves
tls_key_algorithm: Enum("ec-p256", "rsa-3072") = "ec-p256"
# ssl_min_protocol_version: no SSL 3, TLS 1.0, 1.1
tls_min_protocol_version: Enum("TLSv1.2", "TLSv1.3") = "TLSv1.2"
# Names and addresses a node's certificate carries besides its node_name and node_address
# (host data), for clients that reach it some other way (the lab: 127.0.0.1).
tls_extra_names: ListOf(Host()) = []
# Your own CA instead of pgcluster's (PEM files on the control machine): with its key,
# pgcluster issues and renews the node certificates with it; without the key, give every
# host its own certificate in host data, tls_cert_file and tls_key_file (checked before
# connecting, never renewed by pgcluster).
tls_ca_file: Optional(AbsolutePath(home=True)) = None
tls_ca_key_file: Optional(AbsolutePath(home=True)) = None
tls_cert_file: Optional(AbsolutePath(home=True)) = None  # per host, with tls_ca_file
tls_key_file: Optional(AbsolutePath(home=True)) = None  # per host, with tls_ca_file

# -------------------------------------------------------------------------------- Users
# Passwords: secret(KEY) reads PGCLUSTER_<KEY> from the environment, then the inventory's
# secrets file; there is no default here, and validation stops before connecting when one
# is missing or is one of the lab's public defaults (allow_lab_default_passwords).
admin_user: Identifier() = "admin"  # the seed's superuser for administration (not for applications)
admin_password: Optional(Secret()) = secret("admin_password")
replication_user: Identifier() = "replicator"  # REPLICATION only: streams WAL, takes base backups
replication_password: Optional(Secret()) = secret("replication_password")
# pg_rewind's role on the new primary when a failed primary rejoins: LOGIN to database
# postgres only, with EXECUTE on the four file functions pg_rewind needs; not a superuser.
rewind_user: Identifier() = "rewinder"
rewind_password: Optional(Secret()) = secret("rewind_password")
# The application's role: CONNECT to database_name, USAGE on its schema, SELECT, INSERT,
# UPDATE and DELETE on its tables (also those admin creates later); nothing else.
app_user: Identifier() = "app"
app_password: Optional(Secret()) = secret("app_password")
# Prometheus' password for the exporters on the nodes (HTTP basic auth, over TLS): only a
# monitor host holds it, so the metrics answer no one else. Needed with a `monitor` group.
monitor_password: Optional(Secret()) = secret("monitor_password")
allow_lab_default_passwords: Bool() = False  # only the Docker lab's group data turns this on

# ------------------------------------------------------------- The seed's application data
database_name: Identifier() = "proyecto_db"
database_schema: Identifier() = "proyecto"  # holds usuarios and logs_replicacion
# The five sample users created once, with the schema, when the database is first seeded.
sample_users: ListOf(Dict(nombre=Text(), email=Text())) = [
    {"nombre": "Ana García", "email": "ana.garcia@proyecto.local"},
    {"nombre": "Carlos López", "email": "carlos.lopez@proyecto.local"},
    {"nombre": "María Rodríguez", "email": "maria.rodriguez@proyecto.local"},
    {"nombre": "José Martínez", "email": "jose.martinez@proyecto.local"},
    {"nombre": "Laura Sánchez", "email": "laura.sanchez@proyecto.local"},
]

