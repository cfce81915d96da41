"""Every tunable of the cluster, with the reason for its value.

pyinfra loads this file for every host of every inventory; a file named after an inventory
(group_data/docker.py for inventory/docker.py) or after a group overrides it. Host data in
the inventory (addresses, node names) overrides both.

Secrets are never written here: they come from the environment, from the inventory's
git-ignored secrets file (secrets/<inventory>.env, mode 0600) or are generated once into it
(`python -m pgcluster --inventory INVENTORY secrets init`); see pgcluster/secrets.py. Only
the Docker lab has documented defaults, in group_data/docker.py.
"""

from pgcluster.control.secrets import inventory_dir, secret

# --------------------------------------------------------------------------- PostgreSQL
postgresql_version = 15  # Debian 12 packages PostgreSQL 15; the only supported version
postgresql_cluster = "main"  # Debian cluster name: /etc/postgresql/15/main, postgresql@15-main
postgresql_port = 5432  # port on every node (the lab publishes 5432-5434 on the host)
listen_addresses = "*"  # pg_hba.conf, not the listener, decides who may connect
max_connections = 100  # as in the seed; standbys must have at least the primary's value
shared_buffers = "128MB"  # small-VM default; ~25% of RAM on a dedicated server
timezone = "UTC"  # log and now() time zone; UTC keeps nodes in different zones comparable
initdb_encoding = "UTF8"  # the seed's data is Spanish text
initdb_locale = "C.UTF-8"  # present on every Debian system, no locales package needed
data_checksums = True  # initdb --data-checksums: detect storage corruption on read
# Any other postgresql.conf setting, name -> value (strings are quoted for you).
postgresql_settings_extra: dict = {}

# -------------------------------------------------------------------------- Replication
wal_level = "replica"  # enough WAL for streaming replicas and base backups
max_wal_senders = 10  # as in the seed; replicas + base backups + pg_receivewal
max_replication_slots = 10  # one slot per replica, with room for rebuilds
wal_keep_size = "512MB"  # as in the seed: a replica without its slot can still catch up
# Slots keep WAL for a replica that is down; this caps it so a dead replica cannot fill the
# primary's disk (the replica then catches up from the archive, or is rebuilt).
max_slot_wal_keep_size = "2GB"
hot_standby = True  # replicas answer read-only queries
hot_standby_feedback = True  # long reads on replicas are not cancelled by vacuum on primary
wal_log_hints = True  # lets pg_rewind rejoin a failed primary instead of a full rebuild
# Replicas fetch WAL from the archive when streaming cannot serve it (lab: shared volume).
restore_from_archive = True
replica_wait_timeout = 180  # seconds the deploy waits for a new replica to stream
# Synchronous replication, off by default as in the seed. List the node names that may
# confirm a commit (e.g. ["postgresql-standby", "postgresql-primary"]: the promotable
# nodes); each node then waits for the first of the others that streams. Zero committed
# rows are lost on failover, at the price of writes waiting for that standby. A failover
# that leaves no such standby suspends it (ALTER SYSTEM) until `pgcluster rejoin`.
synchronous_standbys: list = []
synchronous_commit = "on"  # with synchronous_standbys: on = flushed on the standby

# ----------------------------------------------------------------- Failover, switchover
switchover_max_lag_bytes = 16 * 1024 * 1024  # switchover refuses a target further behind
switchover_max_xact_seconds = 60  # ... or a primary with transactions open this long
promote_timeout = 60  # seconds pg_promote() may take to finish recovery
# A failover refuses (without --force) a target that lags more than this behind the most
# advanced position known (another replica's, or the end of the WAL archive) ...
failover_max_lag_bytes = 16 * 1024 * 1024
# ... or that last received WAL longer ago than this many seconds: it may be missing what
# the old primary wrote since, or the old primary may still be alive on the far side of a
# partition. Check that it really is dead, then decide with --force.
failover_max_receive_age = 1800
# A node that would start as a primary first asks its peers whether another node is on a
# newer timeline or already primary; when no peer answers within this many seconds it
# stays down (pgcluster start NODE --as-primary starts it anyway, deliberately).
start_guard_wait = 60
status_max_lag_bytes = 64 * 1024 * 1024  # status: a replica further behind is unhealthy
status_max_backup_age_hours = 8 * 24  # status: an older newest full backup is unhealthy

# ------------------------------------------------------------------------ WAL archiving
archive_mode = "on"  # archives on the primary; a promoted standby takes over archiving
archive_timeout = 60  # seconds: bounds the data an archive-only restore can lose
backup_root = "/backups"  # full/, incr/, wal_archive/ live here (lab: a shared volume)
# The deploy refuses to create the repository when backup_root is not a mount point, so an
# NFS share that failed to mount never splits the archive across local disks. Turn it off
# only for a deliberately local repository (the Vagrant VMs: a directory on each VM).
backup_root_must_be_mounted = True
wal_archive_dir = f"{backup_root}/wal_archive"  # the seed's /backups/wal_archive

# ------------------------------------------------------------------------------ Backups
# Every node must see the same backup_root (the lab: one Docker volume; VMs and bare metal:
# one shared filesystem such as an NFS export mounted there on every node), so that the
# archive survives the primary and a promoted standby keeps archiving into the same place.
backup_full_dir = f"{backup_root}/full"  # full/<YYYYMMDDTHHMMSSZ>/: pg_basebackup, tar + gzip
backup_incr_dir = f"{backup_root}/incr"  # incr/<YYYYMMDD>/: the day's archived WAL, gzip'd
backup_compress_level = 6  # gzip level of full backups and incrementals (the seed's 6)
# pg_basebackup --checkpoint: "fast" starts the backup at once (an I/O burst); "spread"
# waits for a paced checkpoint (up to checkpoint_timeout * checkpoint_completion_target).
backup_checkpoint = "fast"
# Recovery window: every point of the last N days stays restorable. Older full backups are
# removed except the newest one before the window; WAL older than the oldest kept full
# backup's start goes too; the newest full backup is never removed.
backup_retention_days = 7
# A full backup starts only with this multiple of the databases' total size free under
# backup_root. 1.0 is safe even for data gzip cannot shrink; what gzip saves (typically
# 50-80%) stays free for the WAL archive, which must never run out of room.
backup_free_space_factor = 1.0
backup_lock_wait = 3600  # seconds a job waits for another backup job to finish, then fails
backup_archive_wait = 120  # seconds an incremental waits for the switched segment's archiving
backup_incr_window_hours = 24  # the first incremental (no previous one) reaches back this far
backup_verify_dir = f"{backup_root}/.verify"  # verify unpacks a full backup here (its size)
backup_log_dir = "/var/log/pgcluster"  # backup.log, restore.log, cron.log (owner postgres)
# Where the registry table pgcluster.backups lives: the maintenance database, so that
# operations data never mixes with the application's (database_name).
backup_registry_database = "postgres"
# cron schedules (minute hour day-of-month month day-of-week, the nodes' clock, UTC in the
# lab) for /etc/cron.d/pgcluster on every node; "" disables a job.
backup_full_schedule = "0 2 * * 0"  # weekly full backup (seed): Sunday 02:00
backup_incr_schedule = "30 2 * * *"  # daily incremental: the WAL archived since the last one
backup_retention_schedule = "0 4 * * *"  # daily expiry of backups and WAL past the window
backup_verify_schedule = "0 5 * * *"  # daily pg_verifybackup of the newest full backup
restore_timeout = 3600  # seconds a restore waits for recovery to reach its target

# ------------------------------------------------------------------------------- Access
# Client networks allowed to log in (over TLS, scram-sha-256), e.g. the application
# servers' subnet. Nothing else may log in over the network; every node may reach every
# other node for replication only. Set per inventory (the lab: inventory/docker.py).
client_networks: list = []

# ---------------------------------------------------------------------------------- TLS
# Every network connection is encrypted and every node-to-node connection checks the
# peer's certificate (sslmode=verify-full). pgcluster makes a cluster CA and one certificate
# per node on the control machine, in tls_dir, and renews them on a re-run of the deploy.
tls_dir = str(inventory_dir("tls"))  # on the control machine: secrets/<inventory>/tls
tls_ca_days = 3650  # validity of the CA pgcluster makes (10 years)
tls_cert_days = 365  # validity of each node's certificate
tls_renew_days = 30  # a re-run of the deploy renews what expires within this many days
tls_key_algorithm = "ec-p256"  # or "rsa-3072" for clients that cannot do elliptic curves
tls_min_protocol_version = "TLSv1.2"  # ssl_min_protocol_version: no SSL 3, TLS 1.0, 1.1
# Names and addresses a node's certificate carries besides its node_name and node_address
# (host data), for clients that reach it some other way (the lab: 127.0.0.1).
tls_extra_names: list = []
# Your own CA instead of pgcluster's (PEM files on the control machine): with its key,
# pgcluster issues and renews the node certificates with it; without the key, give every
# host its own certificate in host data, tls_cert_file and tls_key_file (checked before
# connecting, never renewed by pgcluster).
tls_ca_file = None
tls_ca_key_file = None
tls_cert_file = None  # per host, with tls_ca_file
tls_key_file = None  # per host, with tls_ca_file

# -------------------------------------------------------------------------------- Users
# Passwords: secret(KEY) reads PGCLUSTER_<KEY> from the environment, then the inventory's
# secrets file; there is no default here, and validation stops before connecting when one
# is missing or is one of the lab's public defaults (allow_lab_default_passwords).
admin_user = "admin"  # the seed's superuser for administration (not for applications)
admin_password = secret("admin_password")
replication_user = "replicator"  # REPLICATION only: streams WAL, takes base backups
replication_password = secret("replication_password")
# pg_rewind's role on the new primary when a failed primary rejoins: LOGIN to database
# postgres only, with EXECUTE on the four file functions pg_rewind needs; not a superuser.
rewind_user = "rewinder"
rewind_password = secret("rewind_password")
# The application's role: CONNECT to database_name, USAGE on its schema, SELECT, INSERT,
# UPDATE and DELETE on its tables (also those admin creates later); nothing else.
app_user = "app"
app_password = secret("app_password")
allow_lab_default_passwords = False  # only the Docker lab's group data turns this on

# ------------------------------------------------------------- The seed's application data
database_name = "proyecto_db"
database_schema = "proyecto"  # holds usuarios and logs_replicacion
# The five sample users created once, with the schema, when the database is first seeded.
sample_users = [
    {"nombre": "Ana García", "email": "ana.garcia@proyecto.local"},
    {"nombre": "Carlos López", "email": "carlos.lopez@proyecto.local"},
    {"nombre": "María Rodríguez", "email": "maria.rodriguez@proyecto.local"},
    {"nombre": "José Martínez", "email": "jose.martinez@proyecto.local"},
    {"nombre": "Laura Sánchez", "email": "laura.sanchez@proyecto.local"},
]
