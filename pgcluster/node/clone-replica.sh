#!/bin/bash
# clone-replica CONNINFO SLOT -- make this node a streaming replica of a primary. Managed by
# pgcluster (pgcluster/node/). CONNINFO is the replica's primary_conninfo
# (pgcluster.model.conninfo.primary_conninfo).
#
# Clones the primary with pg_basebackup, then starts the server and waits until it streams.
# It never destroys data: it refuses a data directory that holds a running server, a
# primary, or a standby of another cluster, and clones into a temporary directory that only
# replaces an absent (or empty) data directory; a data directory that is a mount point, and
# empty, is cloned into directly.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

conninfo="$1"
slot="$2"

primary_system_id() {
    run_psql -d "$conninfo dbname=replication replication=true" -c IDENTIFY_SYSTEM \
        | cut -d'|' -f1
}

if [ -f "$DATA_DIR/PG_VERSION" ]; then
    if data_dir_in_use; then
        log "refusing: $DATA_DIR holds a running server. Stop it first, or use 'pgcluster rejoin'."
        exit 2
    fi
    if [ ! -f "$DATA_DIR/standby.signal" ]; then
        log "refusing: $DATA_DIR holds a primary's data (no standby.signal); it is never wiped."
        log "Move it away yourself if it is really disposable, then deploy again."
        exit 2
    fi
    local_id=$("$BIN_DIR/pg_controldata" "$DATA_DIR" | sed -n 's/^Database system identifier: *//p')
    remote_id=$(primary_system_id)
    if [ "$local_id" != "$remote_id" ]; then
        log "refusing: $DATA_DIR is a standby of another cluster (system $local_id, primary has $remote_id)."
        exit 2
    fi
    log "$DATA_DIR already holds a standby of this primary; starting it"
    systemctl start "$SERVICE"
    wait_streaming "$REPLICA_WAIT_TIMEOUT" "see $PG_LOG_FILE"
    log "streaming ($conninfo)"
    exit 0
fi

if [ -d "$DATA_DIR" ] && [ -n "$(ls -A "$DATA_DIR")" ]; then
    log "refusing: $DATA_DIR is not empty but holds no PostgreSQL data directory; inspect it."
    exit 2
fi

basebackup() {
    as_postgres "$BIN_DIR/pg_basebackup" --pgdata="$1" --dbname="$conninfo" \
        --write-recovery-conf --wal-method=stream --slot="$slot" --checkpoint=fast --no-password
    test -f "$1/standby.signal"
}

if mountpoint -q "$DATA_DIR"; then
    # A volume mounted on the data directory cannot be swapped for another directory (the
    # clone would land inside it): pg_basebackup writes into it, empty as checked above,
    # and cleans up after itself if it fails. A fresh filesystem's root belongs to root.
    chown postgres:postgres "$DATA_DIR"
    chmod 700 "$DATA_DIR"
    log "pg_basebackup ($conninfo) with slot $slot, into the mount point $DATA_DIR"
    basebackup "$DATA_DIR"
else
    clone="$DATA_DIR.pgcluster-clone"
    # Only a clone interrupted before its swap can be here; it never served anything.
    rm -rf "$clone"
    log "pg_basebackup ($conninfo) with slot $slot"
    basebackup "$clone"
    rmdir "$DATA_DIR" 2>/dev/null || true
    mv "$clone" "$DATA_DIR"
fi
systemctl start "$SERVICE"
wait_streaming "$REPLICA_WAIT_TIMEOUT" "see $PG_LOG_FILE"
log "streaming ($conninfo)"
