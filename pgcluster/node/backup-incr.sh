#!/bin/bash
# backup-incr -- the daily incremental backup, when this node is the primary. Managed by
# pgcluster (pgcluster/node/).
#
# Closes the current WAL segment (pg_switch_wal), waits until the archive has it, then
# copies every file archived since the previous incremental (the first one: the last
# BACKUP_INCR_WINDOW_HOURS hours) from WAL_ARCHIVE_DIR into BACKUP_INCR_DIR/<date>/ as
# <file>.gz, with a SHA256SUMS of the originals. Each copy is written to a temporary name
# and renamed, so a file there is always complete. restore-wal falls back to these copies
# when a file is missing from the archive. Each run is recorded in pgcluster.backups.
#
# Exits 0 doing nothing on a node that is not the current primary; non-zero on any failure,
# and when WAL archiving is failing (the incremental would silently miss WAL).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"
backup_job_init
# The pgbackrest engine's jobs are pgBackRest's (backup_engine in group_data).
if [ "${BACKUP_ENGINE:-pg_basebackup}" = pgbackrest ]; then
    exec "$PGCLUSTER_LIB/pgbackrest-job" incr "$@"
fi

run_as_postgres "$@"
require_primary
take_lock exclusive

archive=$WAL_ARCHIVE_DIR
stamp=$(date -u +%Y%m%dT%H%M%SZ)
day=${stamp%T*}
label="pgcluster-incr-$stamp"
dest="$BACKUP_INCR_DIR/$day"
marker="$BACKUP_INCR_DIR/.last-incremental"
next_marker="$BACKUP_INCR_DIR/.last-incremental.next"
list=$(mktemp)
job_temp=("$list" "$next_marker")
trap backup_job_exit EXIT

[ -d "$BACKUP_INCR_DIR" ] || { failure="$BACKUP_INCR_DIR does not exist (run the cluster deploy)"; exit 1; }
registry_start incr "$label" "incr/$day"

# Close the segment being written so the incremental reaches "now", and wait for the archive.
: >"$next_marker"  # files archived from here on belong to the next incremental
segment=$(sql "select pg_walfile_name(pg_switch_wal())")
waited=0
until [ -f "$archive/$segment" ]; do
    failing=$(archiver_failure || true)
    if [ -n "$failing" ] || [ "$waited" -ge "$BACKUP_ARCHIVE_WAIT" ]; then
        failure="WAL archiving is failing or stuck: $segment is not in $archive after ${waited}s${failing:+ (last failure: $failing)}; see pg_stat_archiver and $PG_LOG_FILE"
        exit 1
    fi
    sleep 1
    waited=$((waited + 1))
done

# Everything archived since the previous incremental (by modification time: archive-wal
# writes each file once and never rewrites it). The marker is set before the switch, so
# nothing falls between two incrementals; the switched segment may appear in both.
if [ -f "$marker" ]; then
    find "$archive" -maxdepth 1 -type f -newer "$marker" ! -name '.*' -printf '%f\n' | sort >"$list"
else
    find "$archive" -maxdepth 1 -type f -mmin -$(( BACKUP_INCR_WINDOW_HOURS * 60 )) ! -name '.*' \
        -printf '%f\n' | sort >"$list"
fi
count=$(wc -l <"$list")
need=$(sed "s|^|$archive/|" "$list" | xargs -r stat -c %s | awk '{ s += $1 } END { print s + 0 }')
have=$(free_bytes "$BACKUP_INCR_DIR")
if [ "$have" -lt "$need" ]; then
    failure="not enough free space in $BACKUP_ROOT for the incremental: $(human "$have") free, up to $(human "$need") needed"
    exit 1
fi

mkdir -p "$dest"
copied=0
while read -r file; do
    [ -f "$dest/$file.gz" ] && continue
    gzip -"$BACKUP_COMPRESS_LEVEL" -c "$archive/$file" >"$dest/.$file.gz.tmp"
    sync "$dest/.$file.gz.tmp"
    mv "$dest/.$file.gz.tmp" "$dest/$file.gz"
    (cd "$archive" && sha256sum "$file") >>"$dest/SHA256SUMS"
    copied=$((copied + 1))
done <"$list"
sync "$dest"
mv "$next_marker" "$marker"

# The WAL range covered: from the start of the oldest segment to the end of the newest.
segments=$(grep -E '^[0-9A-F]{24}$' "$list" || true)
first=$(head -n 1 <<<"$segments")
last=$(tail -n 1 <<<"$segments")
size=$(du -sb "$dest" | cut -f1)
job_finished=1
if [ -n "$first" ]; then
    seg_size=$(sql "select setting from pg_settings where name = 'wal_segment_size'")
    start_lsn=$(segment_lsn "$first" "$seg_size")
    stop_lsn=$(segment_lsn "$last" "$seg_size" end)
    timeline=$((16#${last:0:8}))
    detail="$copied new files of $count ($first .. $last)"
    range="WAL $start_lsn - $stop_lsn"
else
    start_lsn="" stop_lsn="" timeline="" detail="no WAL archived since the previous incremental" range="no new WAL"
fi
registry_ok "$size" "$timeline" "$start_lsn" "$stop_lsn" "$first" "$last" "$detail"
log "done: incr/$day ($label): $detail, $range"
echo "incr/$day"
