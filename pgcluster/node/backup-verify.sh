#!/bin/bash
# backup-verify [latest|TIMESTAMP|full/TIMESTAMP|LABEL] -- prove a full backup restores, when
# this node is the primary. Managed by pgcluster (pgcluster/node/).
#
# Unpacks base.tar.gz and pg_wal.tar.gz into a temporary directory under BACKUP_VERIFY_DIR
# (gzip's CRC catches a damaged archive), runs pg_verifybackup against the backup's manifest
# (every file's size and checksum, and the WAL the backup needs, parsed with pg_waldump),
# and checks that the WAL archive holds every segment from the backup's start on, without
# gaps, so it can be rolled forward. The result is recorded on the backup's row in
# pgcluster.backups (verified_at, verify_status).
#
# Exits 0 when the backup is good (or, doing nothing, on a node that is not the current
# primary); 1 when it is not.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"
backup_job_init
# The pgbackrest engine's jobs are pgBackRest's (backup_engine in group_data).
if [ "${BACKUP_ENGINE:-pg_basebackup}" = pgbackrest ]; then
    exec "$PGCLUSTER_LIB/pgbackrest-job" verify "$@"
fi

which=$(backup_name "${1-latest}") || exit
run_as_postgres "$@"
require_primary
take_lock shared

archive=$WAL_ARCHIVE_DIR
if [ "$which" = latest ]; then
    which=$(newest_backup)
    [ -n "$which" ] || die "no full backup in $BACKUP_FULL_DIR to verify"
fi
backup="$BACKUP_FULL_DIR/$which"
[ -d "$backup" ] || die "no backup $backup"
info="$backup/backup.info"
label=$(info_get "$info" label 2>/dev/null || true)
label="${label:-pgcluster-full-$which}"
work=""
problems=()

on_exit() {
    local rc=$?
    [ -n "$work" ] && rm -rf "$work"
    exit "$rc"
}
trap on_exit EXIT

record() {
    sql "update pgcluster.backups set verified_at = now(), verify_status = :'st'
         where kind = 'full' and label = :'label'" st="$1" label="$label" \
        || log "WARNING: could not record the verification of $label in the registry"
}

for f in base.tar.gz pg_wal.tar.gz backup_manifest backup.info; do
    [ -s "$backup/$f" ] || problems+=("$f is missing or empty")
done

if [ "${#problems[@]}" = 0 ]; then
    need=$(grep -o '"Size": [0-9]*' "$backup/backup_manifest" | awk '{ s += $2 } END { print s + 0 }')
    mkdir -p "$BACKUP_VERIFY_DIR"
    have=$(free_bytes "$BACKUP_VERIFY_DIR")
    if [ "$have" -lt "$need" ]; then
        die "not enough free space in $BACKUP_VERIFY_DIR to unpack full/$which: $(human "$have") free, $(human "$need") needed"
    fi
    work=$(mktemp -d "$BACKUP_VERIFY_DIR/verify-XXXXXX")
    log "verifying full/$which ($label): unpacking $(human "$need")"
    if ! out=$(tar -xzf "$backup/base.tar.gz" -C "$work" 2>&1); then
        problems+=("base.tar.gz does not unpack: $(tail -n 2 <<<"$out" | tr '\n' ' ')")
    fi
    mkdir -p "$work/pg_wal"
    if ! out=$(tar -xzf "$backup/pg_wal.tar.gz" -C "$work/pg_wal" 2>&1); then
        problems+=("pg_wal.tar.gz does not unpack: $(tail -n 2 <<<"$out" | tr '\n' ' ')")
    fi
    if [ "${#problems[@]}" = 0 ]; then
        if ! out=$("$BIN_DIR/pg_verifybackup" --manifest-path="$backup/backup_manifest" "$work" 2>&1); then
            problems+=("pg_verifybackup: $(grep -v '^$' <<<"$out" | head -n 5 | tr '\n' ' ')")
        fi
    fi
fi

# Roll-forward: every segment position from the backup's start to the newest archived one
# is in the archive, on some timeline (a failover continues the same position on a new one).
start_wal=$(info_get "$info" start_wal 2>/dev/null || true)
if [[ "$start_wal" =~ ^[0-9A-F]{24}$ ]]; then
    seg_size=$(info_get "$info" wal_segment_size)
    per=$(( 0x100000000 / seg_size ))
    expect=$(segment_number "$start_wal" "$seg_size")
    gaps=()
    while read -r position; do
        n=$(( 16#${position:0:8} * per + 16#${position:8:8} ))
        if [ "$n" -gt "$expect" ]; then
            gaps+=("$(printf '%08X%08X' $(( expect / per )) $(( expect % per )))..$(printf '%08X%08X' $(( (n - 1) / per )) $(( (n - 1) % per )))")
        fi
        [ "$n" -ge "$expect" ] && expect=$(( n + 1 ))
    done < <(find "$archive" -maxdepth 1 -type f -printf '%f\n' | grep -E '^[0-9A-F]{24}$' \
        | cut -c9-24 | sort -u)
    # Right after a backup its start segment may still be on its way to the archive.
    waited=0
    while [ "$(find "$archive" -maxdepth 1 -type f -name "*${start_wal:8:16}" | wc -l)" = 0 ]; do
        if [ "$waited" -ge "$BACKUP_ARCHIVE_WAIT" ]; then
            problems+=("the archive lacks the backup's start segment $start_wal")
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    if [ "${#gaps[@]}" -gt 0 ]; then
        problems+=("the WAL archive has gaps after this backup (segment positions ${gaps[*]}): recovery cannot roll forward past them")
    fi
else
    problems+=("backup.info has no valid start_wal")
fi

if [ "${#problems[@]}" -gt 0 ]; then
    record failed
    for p in "${problems[@]}"; do log "FAILED: full/$which: $p"; done
    echo "full/$which FAILED verification"
    exit 1
fi
record ok
log "ok: full/$which ($label) verified: files, checksums and WAL match its manifest; archive continuous from $start_wal"
echo "full/$which verified"
