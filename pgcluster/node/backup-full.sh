#!/bin/bash
# backup-full -- a full base backup of this node, when it is the primary. Managed by pgcluster
# (pgcluster/node/).
#
# pg_basebackup in tar format, gzip level BACKUP_COMPRESS_LEVEL, with its manifest and the
# WAL it needs streamed into the backup (pg_wal.tar.gz), so the backup restores on its own.
# It is written into BACKUP_FULL_DIR/.inprogress-<timestamp> and renamed to
# BACKUP_FULL_DIR/<timestamp>/ only when complete: a directory with a timestamp name is
# always a finished backup. Each run is recorded in REGISTRY_DB.pgcluster.backups.
#
# Exits 0 doing nothing on a node that is not the current primary; non-zero on any failure,
# when space is short (before writing anything), and when WAL archiving is failing (the
# backup is then good, but point-in-time recovery past it needs a working archive).
# PGCLUSTER_BACKUP_SPACE_FACTOR overrides BACKUP_FREE_SPACE_FACTOR for one run.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"
backup_job_init
# The pgbackrest engine's jobs are pgBackRest's (backup_engine in group_data).
if [ "${BACKUP_ENGINE:-pg_basebackup}" = pgbackrest ]; then
    exec "$PGCLUSTER_LIB/pgbackrest-job" full "$@"
fi

run_as_postgres "$@"
require_primary
take_lock exclusive

stamp=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$BACKUP_FULL_DIR/$stamp" ]; do  # a backup per second at most: names are unique
    sleep 1
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
done
label="pgcluster-full-$stamp"
final="$BACKUP_FULL_DIR/$stamp"
work="$BACKUP_FULL_DIR/.inprogress-$stamp"
started=$(now)
err=$(mktemp)
job_temp=("$err")
job_partial=$work
trap backup_job_exit EXIT

[ -d "$BACKUP_FULL_DIR" ] || { failure="$BACKUP_FULL_DIR does not exist (run the cluster deploy)"; exit 1; }
registry_start full "$label" "full/$stamp"

# Free space: refuse before writing anything, so a full volume never takes the room the
# WAL archive needs (archiving would then fail and WAL pile up on the primary).
factor=${PGCLUSTER_BACKUP_SPACE_FACTOR:-$BACKUP_FREE_SPACE_FACTOR}
db_bytes=$(sql "select sum(pg_database_size(oid))::bigint from pg_database")
need=$(awk -v s="$db_bytes" -v f="$factor" 'BEGIN { printf "%.0f", s * f }')
have=$(free_bytes "$BACKUP_FULL_DIR")
if [ "$have" -lt "$need" ]; then
    failure="not enough free space in $BACKUP_ROOT: $(human "$have") free, a full backup of $(human "$db_bytes") of databases needs $(human "$need") (backup_free_space_factor $factor); free space or remove old backups (backup-retention), WAL archiving needs room too"
    exit 1
fi

log "starting $label ($(human "$db_bytes") of databases, $(human "$have") free)"
status=0
"$BIN_DIR/pg_basebackup" --host="$SOCKET_DIR" --port="$PG_PORT" --username=postgres --no-password \
    --pgdata="$work" --format=tar --compress="gzip:$BACKUP_COMPRESS_LEVEL" --wal-method=stream \
    --checkpoint="$BACKUP_CHECKPOINT" --label="$label" --manifest-checksums=CRC32C \
    --verbose 2>"$err" || status=$?
cat "$err" >>"$log_file" 2>/dev/null || true
if [ "$status" != 0 ]; then
    reason=$(grep -iE 'error|fatal|could not|no space' "$err" | tail -n 3 | tr '\n' ' ')
    failure="pg_basebackup failed (exit $status): ${reason:-$(tail -n 2 "$err" | tr '\n' ' ')}"
    exit 1
fi
manifest="$work/backup_manifest"
for f in base.tar.gz pg_wal.tar.gz backup_manifest; do
    [ -s "$work/$f" ] || { failure="pg_basebackup left no $f"; exit 1; }
done

# The WAL range the backup needs, from its manifest (the last range: the timeline it ended on).
range=$(grep -o '"Timeline": [0-9]*, "Start-LSN": "[0-9A-F/]*", "End-LSN": "[0-9A-F/]*"' \
    "$manifest" | tail -n 1 || true)  # none: said below, not "interrupted"
range_re='"Timeline": ([0-9]+), "Start-LSN": "([0-9A-F/]+)", "End-LSN": "([0-9A-F/]*)"'
if ! [[ "$range" =~ $range_re ]]; then
    failure="no WAL-Ranges in $manifest"
    exit 1
fi
timeline=${BASH_REMATCH[1]}
start_lsn=${BASH_REMATCH[2]}
stop_lsn=${BASH_REMATCH[3]}
seg_size=$(sql "select setting from pg_settings where name = 'wal_segment_size'")
start_wal=$(wal_name "$timeline" "$start_lsn" "$seg_size")
stop_wal=$(wal_name "$timeline" "$stop_lsn" "$seg_size")
size=$(du -sb "$work" | cut -f1)
system_id=$(sql "select system_identifier from pg_control_system()")
finished_at=$(now)

cat >"$work/backup.info" <<INFO
kind=full
label=$label
node=$NODE_NAME
started_at=$started
finished_at=$finished_at
timeline=$timeline
start_lsn=$start_lsn
stop_lsn=$stop_lsn
start_wal=$start_wal
stop_wal=$stop_wal
wal_segment_size=$seg_size
size_bytes=$size
database_bytes=$db_bytes
system_identifier=$system_id
postgresql_version=$PG_VERSION
compression=gzip:$BACKUP_COMPRESS_LEVEL
INFO
sync "$work/backup.info"
mv "$work" "$final"
sync "$BACKUP_FULL_DIR"
job_finished=1

registry_ok "$size" "$timeline" "$start_lsn" "$stop_lsn" "$start_wal" "$stop_wal"
log "done: full/$stamp ($label) $(human "$size"), WAL $start_lsn - $stop_lsn on timeline $timeline (from $start_wal)"
echo "full/$stamp"

failing=$(archiver_failure || true)
if [ -n "$failing" ]; then
    log "ERROR: WAL archiving is failing: $failing. The backup is complete, but nothing after it can be restored until archiving works again (see pg_stat_archiver and $PG_LOG_FILE)"
    exit 2
fi
