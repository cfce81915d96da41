#!/bin/bash
# backup-retention [--plan] [--days N] [--now TIME] -- expire old backups and the WAL no
# kept backup needs, when this node is the primary. Managed by pgcluster (pgcluster/node/).
#
# The recovery window is the last N days (default BACKUP_RETENTION_DAYS):
#   - full backups taken in the window are kept, and so is the newest one taken before it,
#     because restoring to the oldest point of the window starts from that one; older full
#     backups are removed. The newest full backup is therefore never removed, however old.
#   - archived WAL is removed only below the lowest start segment of the kept full backups
#     (compared by log/segment number, whatever the timeline, as pg_archivecleanup does);
#     timeline .history files are always kept. Every segment a kept backup needs stays.
#   - incremental directories holding only WAL older than that segment are removed.
# A backup's age is the timestamp of its directory name, full/<YYYYMMDDTHHMMSSZ>.
#
# --plan prints what would be removed and changes nothing (no database, no lock needed);
# --days overrides the window; --now evaluates it at another time (with --plan: "what
# would go on that date"). Exits 0 doing nothing on a node that is not the current primary.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"
backup_job_init
# The pgbackrest engine's jobs are pgBackRest's (backup_engine in group_data).
# pgbackrest-job runs this part too (PGCLUSTER_SEED_RETENTION=1) for the backups taken
# before a switch to pgBackRest.
if [ "${BACKUP_ENGINE:-pg_basebackup}" = pgbackrest ] && [ -z "${PGCLUSTER_SEED_RETENTION:-}" ]; then
    exec "$PGCLUSTER_LIB/pgbackrest-job" retention "$@"
fi

args=("$@")
plan=0
days=$BACKUP_RETENTION_DAYS
now_epoch=$(date -u +%s)
while [ $# -gt 0 ]; do
    case "$1" in
        --plan) plan=1 ;;
        --days) days="$2"; shift ;;
        --now) now_epoch=$(date -u -d "$2" +%s); shift ;;
        *) echo "usage: $script [--plan] [--days N] [--now TIME]" >&2; exit 64 ;;
    esac
    shift
done
[[ "$days" =~ ^[0-9]+$ ]] || die "--days wants a whole number of days, not '$days'"

if [ "$plan" = 0 ]; then
    run_as_postgres "${args[@]}"
    require_primary
    take_lock exclusive
else
    log() { echo "$*" >&2; }  # a plan only prints
fi

stamp_epoch() {
    date -u -d "${1:0:4}-${1:4:2}-${1:6:2} ${1:9:2}:${1:11:2}:${1:13:2}" +%s
}

archive=$WAL_ARCHIVE_DIR
removed_full=0 removed_wal=0 removed_wal_bytes=0 removed_incr=0
# remove KIND PATH [LABEL] -- one line per removal on stdout, then (not in a plan) remove it.
remove() {
    echo "remove $1 $2"
    [ "$plan" = 1 ] && return 0
    case "$1" in
        full)
            rm -rf "${BACKUP_FULL_DIR:?}/$2"
            removed_full=$((removed_full + 1))
            if [ -n "${3:-}" ]; then
                sql "update pgcluster.backups set removed_at = now() where kind = 'full'
                     and label = :'label' and removed_at is null" label="$3" \
                    || log "WARNING: could not mark $3 as removed in the registry"
            fi
            ;;
        incr)
            rm -rf "${BACKUP_INCR_DIR:?}/$2"
            removed_incr=$((removed_incr + 1))
            sql "update pgcluster.backups set removed_at = now() where kind = 'incr'
                 and path = :'path' and removed_at is null" path="incr/$2" \
                || log "WARNING: could not mark incr/$2 as removed in the registry"
            ;;
        wal)
            removed_wal_bytes=$((removed_wal_bytes + $(stat -c %s "$archive/$2")))
            rm -f "${archive:?}/$2"
            removed_wal=$((removed_wal + 1))
            ;;
        *) rm -rf "${BACKUP_ROOT:?}/$2" ;;
    esac
}

# --- Full backups: complete ones only (a timestamp name with its backup.info), oldest first.
cutoff=$(( now_epoch - days * 86400 ))
backups=()
for dir in "$BACKUP_FULL_DIR"/*/; do
    name=$(basename "$dir")
    if [[ "$name" =~ ^[0-9]{8}T[0-9]{6}Z$ ]] && [ -f "$dir/backup.info" ]; then
        backups+=("$name")
    fi
done
if [ "${#backups[@]}" -gt 0 ]; then
    mapfile -t backups < <(printf '%s\n' "${backups[@]}" | sort)
fi

# Interrupted runs (with the lock held no backup is running; in a plan, one might be).
for dir in "$BACKUP_FULL_DIR"/.inprogress-* "$BACKUP_INCR_DIR"/.inprogress-*; do
    [ -d "$dir" ] && remove partial "${dir#"$BACKUP_ROOT"/}"
done

if [ "${#backups[@]}" = 0 ]; then
    log "no full backup in $BACKUP_FULL_DIR: nothing expires and the whole WAL archive is kept"
    exit 0
fi

anchor=""
kept=()
older=()
for name in "${backups[@]}"; do
    if [ "$(stamp_epoch "$name")" -gt "$cutoff" ]; then
        kept+=("$name")
    else
        [ -n "$anchor" ] && older+=("$anchor")
        anchor="$name"
    fi
done
[ -n "$anchor" ] && kept=("$anchor" "${kept[@]}")
for name in "${older[@]}"; do
    remove full "$name" "$(info_get "$BACKUP_FULL_DIR/$name/backup.info" label)"
done
for name in "${kept[@]}"; do
    echo "keep full $name"
done

# The WAL boundary: the lowest start position of all kept backups, not the oldest one's.
# After a restore of the primary the cluster goes on from the restored point on a new
# timeline, so a newer backup can start below an older one (on another timeline).
oldest="${kept[0]}"
start_wal="" boundary=""
for name in "${kept[@]}"; do
    wal=$(info_get "$BACKUP_FULL_DIR/$name/backup.info" start_wal)
    if ! [[ "$wal" =~ ^[0-9A-F]{24}$ ]]; then
        die "full/$name/backup.info has no valid start_wal ('$wal'): no WAL is removed"
    fi
    if [ -z "$boundary" ] || [[ "$(segment_position "$wal")" < "$boundary" ]]; then
        start_wal=$wal
        boundary=$(segment_position "$wal")
    fi
done
echo "keep wal from $start_wal"

# --- The WAL archive: everything positioned before the boundary.
shopt -s nullglob
for path in "$archive"/*; do
    file=$(basename "$path")
    if [[ "$file" =~ ^[0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?$ ]]; then
        [[ "$(segment_position "$file")" < "$boundary" ]] && remove wal "$file"
    fi
done
# Temporary files of an archive-wal that was killed mid-copy (one day old: never a live one).
while read -r tmp; do
    remove wal "$tmp"
done < <(find "$archive" -maxdepth 1 -type f -name '.*.tmp' -mmin +1440 -printf '%f\n')

# --- Incremental directories whose newest segment is older than the boundary.
cutoff_day=$(date -u -d "@$cutoff" +%Y%m%d)
for dir in "$BACKUP_INCR_DIR"/*/; do
    day=$(basename "$dir")
    [[ "$day" =~ ^[0-9]{8}$ ]] || continue
    newest=$(find "$dir" -maxdepth 1 -type f -printf '%f\n' \
        | grep -E '^[0-9A-F]{24}(\.partial)?\.gz$' | cut -c9-24 | sort | tail -n 1 || true)
    if [ -n "$newest" ]; then
        [[ "$newest" < "$boundary" ]] && remove incr "$day"
    elif [[ "$day" < "$cutoff_day" ]]; then
        remove incr "$day"
    fi
done

if [ "$plan" = 0 ]; then
    log "done: window ${days} days; kept ${#kept[@]} full backups (oldest full/$oldest; they need WAL from $start_wal); removed $removed_full full, $removed_incr incremental, $removed_wal WAL files ($(human "$removed_wal_bytes"))"
fi
