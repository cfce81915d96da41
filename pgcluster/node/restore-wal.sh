#!/bin/bash
# restore-wal %f %p -- PostgreSQL's restore_command. Managed by pgcluster (pgcluster/node/).
#
# Fetches a WAL file from WAL_ARCHIVE_DIR, or else from the gzip'd copies the incremental
# backups keep in BACKUP_INCR_DIR/<date>/ (newest first). A missing file is normal (the end
# of the archive) and answered with a quiet non-zero exit, as PostgreSQL expects.
#
# A standby is not given a segment of a timeline that the newest timeline's history says was
# left before the segment's end. Such WAL was archived by a primary that was lost after it
# had sent it to nobody who was promoted: it is in no surviving history. PostgreSQL asks for
# it when it has not read the new timeline's history yet; a standby that replays it can
# follow nobody, and Patroni, which judged it by its replay position a moment earlier, never
# rewinds it. Refused, PostgreSQL reads the history and asks for the new timeline's copy.
# Only for a running standby's recovery: a restore may be aimed at another branch on purpose,
# and pg_rewind (the server stopped) needs the diverged node's own WAL past the fork.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

# orphaned NAME SEGMENT_SIZE -- true if NAME is a segment past the point where the newest
# timeline's history says its timeline ended (prints why).
orphaned() {
    local name=$1 seg_size=$2 newest timeline parent switch _
    if ! [[ $name =~ ^[0-9A-F]{24}$ ]] || [ ! -f "$DATA_DIR/standby.signal" ] \
            || [ ! -f "$DATA_DIR/postmaster.pid" ]; then
        return 1
    fi
    newest=$(find "$WAL_ARCHIVE_DIR" -maxdepth 1 -name '????????.history' -printf '%f\n' \
        | sort | tail -n 1)
    [ -n "$newest" ] || return 1
    timeline=$(( 16#${name:0:8} ))
    while read -r parent switch _; do
        if ! [[ $parent =~ ^[0-9]+$ ]] || [ "$parent" -ne "$timeline" ]; then
            continue
        fi
        if (( ($(segment_number "$name" "$seg_size") + 1) * seg_size > $(lsn_int "$switch") )); then
            echo "restore-wal: not restoring $name: $newest says timeline $timeline ended at $switch" >&2
            return 0
        fi
        return 1
    done <"$WAL_ARCHIVE_DIR/$newest"
    return 1
}

src="$WAL_ARCHIVE_DIR/$1"
seg_size=16777216  # PostgreSQL's default; an archived segment's own size says better
[ -f "$src" ] && seg_size=$(stat -c %s "$src")
if orphaned "$1" "$seg_size"; then
    exit 1
fi
if [ -f "$src" ]; then
    cp "$src" "$2"
    exit 0
fi
shopt -s nullglob
copies=("$BACKUP_INCR_DIR"/*/"$1".gz)
[ "${#copies[@]}" -gt 0 ] || exit 1
gzip -dc "${copies[-1]}" >"$2"
