#!/bin/bash
# archive-wal %p %f -- PostgreSQL's archive_command. Managed by pgcluster (pgcluster/node/).
#
# Copies one WAL file into WAL_ARCHIVE_DIR atomically: to a temporary file, fsync, then a
# hard link under the final name, which fails if the name already exists, so two writers
# can never replace each other's segment. An archived file is never overwritten: re-sending
# identical content succeeds (PostgreSQL retries after a crash between copy and
# acknowledgement), different content fails loudly. Any failure exits non-zero, so
# PostgreSQL keeps the segment and retries.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

src="$1"
name="$2"
archive=$WAL_ARCHIVE_DIR
dest="$archive/$name"

same_or_refuse() {
    if cmp -s "$src" "$dest"; then
        exit 0
    fi
    echo "archive-wal: $dest already exists with different content; refusing to overwrite it" >&2
    exit 1
}

[ -e "$dest" ] && same_or_refuse

tmp="$archive/.$name.$$.tmp"
trap 'rm -f "$tmp"' EXIT
cp "$src" "$tmp"
sync "$tmp"
if ! ln "$tmp" "$dest" 2>/dev/null; then
    [ -e "$dest" ] && same_or_refuse
    echo "archive-wal: cannot create $dest" >&2
    exit 1
fi
sync "$archive"
