#!/bin/bash
# restore-wal %f %p -- PostgreSQL's restore_command. Managed by pgcluster (pgcluster/node/).
#
# Fetches a WAL file from WAL_ARCHIVE_DIR, or else from the gzip'd copies the incremental
# backups keep in BACKUP_INCR_DIR/<date>/ (newest first). A missing file is normal (the end
# of the archive) and answered with a quiet non-zero exit, as PostgreSQL expects.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

src="$WAL_ARCHIVE_DIR/$1"
if [ -f "$src" ]; then
    cp "$src" "$2"
    exit 0
fi
shopt -s nullglob
copies=("$BACKUP_INCR_DIR"/*/"$1".gz)
[ "${#copies[@]}" -gt 0 ] || exit 1
gzip -dc "${copies[-1]}" >"$2"
