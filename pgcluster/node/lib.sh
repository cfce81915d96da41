# shellcheck shell=bash
# lib.sh -- what every pgcluster node script shares. Managed by pgcluster (pgcluster/node/).
#
# Sourced, never run: by the scripts installed next to it in /usr/local/lib/pgcluster (and,
# in the unit tests, from the source tree). It reads the node's settings from one file,
# /etc/pgcluster/node.env, rendered by the deploy (PGCLUSTER_ENV names another one), and
# defines the helpers the scripts have in common. Sourcing it writes nothing and runs
# nothing but basename: archive_command and restore_command source it for every WAL
# segment.

PGCLUSTER_ENV=${PGCLUSTER_ENV:-/etc/pgcluster/node.env}
if [ ! -r "$PGCLUSTER_ENV" ]; then
    echo "$(basename "$0"): cannot read $PGCLUSTER_ENV: run the cluster deploy" >&2
    exit 1
fi
# Rendered per node by the deploy from templates/node/node.env.j2: nothing for shellcheck to
# follow here.
# shellcheck source=/dev/null
. "$PGCLUSTER_ENV"

# A node.env from an older deploy would otherwise fail later, half-way through, on whichever
# setting it lacks ("unbound variable"). An empty value is a value (PEERS of a lone node).
for _setting in NODE_NAME PG_VERSION PG_CLUSTER PG_PORT DATA_DIR BIN_DIR CONF_DIR SERVICE \
    PG_LOG_FILE SOCKET_DIR PGPASS SCRIPTS_DIR REPLICATION_USER SSL_CONNINFO \
    REPLICA_WAIT_TIMEOUT PEERS START_GUARD_WAIT START_OVERRIDE BACKUP_ROOT BACKUP_FULL_DIR \
    BACKUP_INCR_DIR WAL_ARCHIVE_DIR BACKUP_VERIFY_DIR BACKUP_LOG_DIR REGISTRY_DB \
    BACKUP_LOCK_WAIT BACKUP_COMPRESS_LEVEL BACKUP_CHECKPOINT BACKUP_RETENTION_DAYS \
    BACKUP_INCR_WINDOW_HOURS BACKUP_ARCHIVE_WAIT BACKUP_FREE_SPACE_FACTOR RESTORE_TIMEOUT; do
    if [ -z "${!_setting+set}" ]; then
        echo "$(basename "$0"): $PGCLUSTER_ENV has no $_setting: run the cluster deploy" >&2
        exit 1
    fi
done
unset _setting

script=$(basename "$0")

# ------------------------------------------------------------------------------- logging

# The script's own log under BACKUP_LOG_DIR (backup.log, rejoin.log, ...); empty for a
# script whose caller keeps what it says (clone-replica: the deploy, or rejoin-replica).
log_file=""

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# log MESSAGE -- to stderr, for the caller (cron's log, the deploy's output, the journal),
# and to log_file. A line that is kept in a file carries its time.
log() {
    local line="${script}[${NODE_NAME}]: $*"
    if [ -n "$log_file" ]; then
        line="$(now) $line"
        echo "$line" >>"$log_file" 2>/dev/null || true
    fi
    echo "$line" >&2
}

# note MESSAGE -- to log_file only: a job that quietly has nothing to do on this node.
note() {
    [ -n "$log_file" ] || return 0
    echo "$(now) ${script}[${NODE_NAME}]: $*" >>"$log_file" 2>/dev/null || true
}

die() {
    log "ERROR: $*"
    exit 1
}

# ------------------------------------------------------------------ the postgres OS user

# as_postgres COMMAND... -- COMMAND as postgres, who owns the data directory, the archive
# and the backups. Root switches from /: runuser keeps the working directory, which
# postgres may not be allowed to enter.
as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    else
        (cd / && runuser -u postgres -- "$@")
    fi
}

# run_as_postgres "$@" -- backup jobs are postgres' (cron runs them as postgres); root may
# run one by hand and is switched to postgres, the script started again from the top.
run_as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        cd /
        exec runuser -u postgres -- "$0" "$@"
    fi
    if [ "$(id -un)" != postgres ]; then
        echo "$script: run me as postgres or root" >&2
        exit 1
    fi
}

# ---------------------------------------------------------------------------------- psql

# Seconds a psql session may take before it is killed; empty: as long as it needs. A peer
# that accepts a connection and then hangs must not hold start-guard forever, while a
# CHECKPOINT on a busy primary may rightly take minutes.
psql_timeout=""

# run_psql ARG... -- psql as postgres, the way a script reads it: no ~/.psqlrc, bare
# unaligned values, no chatter, and the first error is an error (exit status 3).
run_psql() {
    local bounded=()
    if [ -n "$psql_timeout" ]; then
        bounded=(timeout "$psql_timeout")
    fi
    as_postgres "${bounded[@]}" psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"
}

# sql QUERY [name=value ...] -- one statement on this node's server, over the local socket,
# in the registry database (the maintenance database). Values go in as psql variables,
# :'name' in QUERY, which psql quotes safely; psql interpolates them only in what it reads,
# not in -c, hence the query on stdin.
sql() {
    local query="$1" vars=() pair
    shift
    for pair in "$@"; do
        vars+=(-v "$pair")
    done
    run_psql -h "$SOCKET_DIR" -p "$PG_PORT" -d "$REGISTRY_DB" "${vars[@]}" <<<"$query"
}

# ------------------------------------------------------------------------ the server here

# server_running -- whether this node's cluster is up, as pg_ctlcluster sees it.
server_running() {
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1
}

# data_dir_in_use -- whether a server runs on DATA_DIR now: its postmaster.pid, and a live
# server (a pid file left behind by a crash alone does not count).
data_dir_in_use() {
    [ -f "$DATA_DIR/postmaster.pid" ] && server_running
}

# wait_streaming SECONDS [HINT] -- wait until this standby's WAL receiver streams; after
# SECONDS say what it was doing instead (and HINT) and fail.
wait_streaming() {
    local status="" _
    for _ in $(seq "$1"); do
        status=$(sql "select status from pg_stat_wal_receiver" 2>/dev/null || true)
        if [ "$status" = streaming ]; then
            return 0
        fi
        sleep 1
    done
    log "not streaming after ${1}s (wal receiver: ${status:-none})${2:+; $2}"
    return 1
}

# --------------------------------------------------------------------------------- quoting

# sql_literal VALUE -- VALUE as an SQL string literal (standard_conforming_strings), which is
# also how postgresql.conf quotes a value.
sql_literal() {
    printf "'%s'" "${1//\'/\'\'}"
}

# conninfo_value VALUE -- VALUE as one value of a libpq key=value connection string, quoted
# only when it must be (as pgcluster.model.conninfo.quote does).
conninfo_value() {
    local value
    case "$1" in
        '' | *[\ \'\\]*)
            value=${1//\\/\\\\}
            value=${value//\'/\\\'}
            printf "'%s'" "$value"
            ;;
        *) printf '%s' "$1" ;;
    esac
}

# ---------------------------------------------------------------------------- WAL positions

# LSN "X/Y" <-> integer.
lsn_int() { echo $(( (16#${1%/*} << 32) | 16#${1#*/} )); }
int_lsn() { printf '%X/%X' $(( $1 >> 32 )) $(( $1 & 0xFFFFFFFF )); }

# wal_name TIMELINE LSN SEGMENT_SIZE -- the name of the segment file holding LSN.
wal_name() {
    local seg=$(( $(lsn_int "$2") / $3 )) per=$(( 0x100000000 / $3 ))
    printf '%08X%08X%08X' "$1" $(( seg / per )) $(( seg % per ))
}

# segment_number NAME SEGMENT_SIZE -- a segment file's number, counted from the start of WAL
# whatever the timeline.
segment_number() {
    local per=$(( 0x100000000 / $2 ))
    echo $(( 16#${1:8:8} * per + 16#${1:16:8} ))
}

# segment_name TIMELINE NUMBER SEGMENT_SIZE -- the name of segment NUMBER on TIMELINE.
segment_name() {
    local per=$(( 0x100000000 / $3 ))
    printf '%08X%08X%08X' "$1" $(( $2 / per )) $(( $2 % per ))
}

# segment_lsn NAME SEGMENT_SIZE [end] -- where a segment file starts (or ends).
segment_lsn() {
    local seg
    seg=$(segment_number "$1" "$2")
    [ "${3:-}" = end ] && seg=$(( seg + 1 ))
    int_lsn $(( seg * $2 ))
}

# segment_position NAME -- the position part of a WAL file name (log and segment, without
# the timeline): names of different timelines compare by it, as pg_archivecleanup does.
segment_position() { echo "${1:8:16}"; }

# ----------------------------------------------------------------------------- small things

# free_bytes PATH -- free bytes on the filesystem holding PATH.
free_bytes() { df -P -B1 "$1" | awk 'NR == 2 { print $4 }'; }

human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }

# info_get FILE KEY -- one value of a backup.info (key=value lines, never sourced).
info_get() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# ------------------------------------------------------------------ the backup repository

# backup_job_init -- what every script that reads or writes the repository starts with: UTC
# names and times, files for postgres' eyes only (backups hold every row of every database),
# and backup.log.
backup_job_init() {
    export TZ=UTC
    umask 077
    log_file="$BACKUP_LOG_DIR/backup.log"
    lock_file="$BACKUP_ROOT/.pgcluster-backup.lock"
}

# backup_name NAME -- the directory name under BACKUP_FULL_DIR of the full backup NAME names:
# latest, YYYYMMDDTHHMMSSZ, full/YYYYMMDDTHHMMSSZ or its label pgcluster-full-YYYYMMDDTHHMMSSZ
# (as backup-full names them). Anything else exits 64: a name becomes a path, and a path
# with .. or / in it must never reach rm, tar or mv.
backup_name() {
    local name=$1
    case "$name" in
        latest) echo latest; return 0 ;;
        full/*) name=${name#full/} ;;
        pgcluster-full-*) name=${name#pgcluster-full-} ;;
    esac
    if ! [[ "$name" =~ ^[0-9]{8}T[0-9]{6}Z$ ]]; then
        echo "$script: backup '$1' names no full backup: use latest, YYYYMMDDTHHMMSSZ," \
            "full/YYYYMMDDTHHMMSSZ or pgcluster-full-YYYYMMDDTHHMMSSZ" >&2
        exit 64
    fi
    echo "$name"
}

# newest_backup -- the directory name of the newest full backup (nothing when there is none).
newest_backup() {
    find "$BACKUP_FULL_DIR" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
        -regex '.*/[0-9]{8}T[0-9]{6}Z' -printf '%f\n' | sort | tail -n 1
}

# require_primary -- a backup job runs on the current primary, decided now (not when cron
# was installed), so that backups follow a failover. Elsewhere it exits quietly, with a line
# in backup.log.
require_primary() {
    local in_recovery
    in_recovery=$(sql "select pg_is_in_recovery()" 2>/dev/null) || in_recovery=down
    case "$in_recovery" in
        f) return 0 ;;
        t) note "not the primary (in recovery): nothing to do"; exit 0 ;;
        *) note "WARNING: PostgreSQL is not running here, so this is not the primary: nothing to do"
           exit 0 ;;
    esac
}

# take_lock exclusive|shared -- one job at a time on the repository, which every node shares:
# verify and restore only read it and share the lock; the others change it and hold it
# alone. The lock file belongs to postgres even when root (a restore) comes first. It is
# opened for writing (appending nothing): on NFSv4 flock is emulated with fcntl locks, and
# those need a file open for writing, even for a shared lock.
take_lock() {
    local mode=()
    [ "$1" = shared ] && mode=(--shared)
    if [ ! -e "$lock_file" ]; then
        install -m 0600 -o postgres -g postgres /dev/null "$lock_file" 2>/dev/null \
            || : >>"$lock_file"
    fi
    exec 9>>"$lock_file"
    if ! flock "${mode[@]}" --wait "$BACKUP_LOCK_WAIT" 9; then
        die "another backup job has held $lock_file for more than ${BACKUP_LOCK_WAIT}s"
    fi
}

# archiver_failure -- nothing while the archiver is healthy; otherwise what failed and when
# (pg_stat_archiver).
archiver_failure() {
    sql "select last_failed_wal || ' at ' || last_failed_time || ' (' || failed_count
         || ' failures, last success: ' || coalesce(last_archived_wal || ' at '
         || last_archived_time, 'never') || ')'
         from pg_stat_archiver
         where last_failed_time is not null
           and (last_archived_time is null or last_failed_time > last_archived_time)"
}

# --- The registry row of a backup job (pgcluster.backups) and its exit trap, for
# backup-full and backup-incr. A registry that cannot be written never stops a backup: the
# backup on disk is what counts; the registry says what happened to it.
registry_id=""
job_kind=""
job_temp=()       # removed when the job exits, whatever happened
job_partial=""    # removed when the job fails: what it was writing
job_finished=0
failure="interrupted"

# registry_start KIND LABEL PATH -- the job's row, 'running'.
registry_start() {
    job_kind=$1
    registry_id=$(sql "insert into pgcluster.backups (kind, label, node, path, status)
                       values (:'kind', :'label', :'node', :'path', 'running') returning id" \
                      kind="$1" label="$2" node="$NODE_NAME" path="$3") \
        || log "WARNING: could not record the backup in the registry (pgcluster.backups); going on"
}

# registry_ok SIZE TIMELINE START_LSN STOP_LSN START_WAL STOP_WAL [DETAIL] -- the job's row,
# 'ok' with what the backup covers (an incremental without new WAL covers nothing: empty).
registry_ok() {
    local what="the backup"
    [ "$job_kind" = incr ] && what="the incremental"
    [ -n "$registry_id" ] || return 0
    sql "update pgcluster.backups set status = 'ok', finished_at = now(), size_bytes = :'size',
         timeline = nullif(:'tli', '')::int, start_lsn = nullif(:'start', '')::pg_lsn,
         stop_lsn = nullif(:'stop', '')::pg_lsn, start_wal = nullif(:'swal', ''),
         stop_wal = nullif(:'ewal', ''), detail = nullif(:'detail', '') where id = :'id'" \
        id="$registry_id" size="$1" tli="$2" start="$3" stop="$4" swal="$5" ewal="$6" \
        detail="${7:-}" \
        || log "WARNING: $what is complete but its registry row $registry_id was not updated"
}

# backup_job_exit -- the EXIT trap of a backup job: a job that did not finish leaves nothing
# half-written, exits non-zero, says why (failure) and marks its row 'failed'.
backup_job_exit() {
    local rc=$?
    rm -f -- "${job_temp[@]}"
    if [ "$job_finished" != 1 ]; then
        if [ -n "$job_partial" ]; then
            rm -rf -- "$job_partial"
        fi
        [ "$rc" = 0 ] && rc=1
        log "FAILED: $failure"
        if [ -n "$registry_id" ]; then
            sql "update pgcluster.backups set status = 'failed', finished_at = now(),
                 detail = :'detail' where id = :'id'" id="$registry_id" detail="$failure" \
                || log "could not record the failure in the registry"
        fi
    fi
    exit "$rc"
}
