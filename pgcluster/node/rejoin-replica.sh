#!/bin/bash
# rejoin-replica CONNINFO SLOT REWIND_CONNINFO PRIMARY_TIMELINE [--reclone] -- bring this
# node back as a streaming replica. Managed by pgcluster (pgcluster/node/).
#
# Brings this node back as a streaming replica of the primary CONNINFO names, by the
# cheapest way that works, and never deletes its data:
#   1. a running standby of another primary is re-pointed online (ALTER SYSTEM + reload);
#   2. a stopped standby is pointed at the primary and started;
#   3. otherwise (a failed old primary, or a standby that diverged) pg_rewind resynchronises
#      it from the primary (REWIND_CONNINFO: the rewind role), then it starts as a standby;
#   4. only if that fails and --reclone was given, the data directory is moved aside
#      (kept, not deleted) and the node is cloned afresh with pg_basebackup.
# A node running as a primary is refused: stop it first (that is the split-brain case).
# KEEP_SLOTS (environment, names separated by spaces): slots of its cascading replicas,
# kept when the others it holds from a time it was the primary are dropped.
#
# Before it starts as a standby, WAL archive files of timelines newer than the primary's
# (PRIMARY_TIMELINE) are moved to BACKUP_ROOT/wal_quarantine/: they can only come from a
# node promoted outside the primary's history (a split brain), and a standby with
# recovery_target_timeline = latest would otherwise try to follow that dead branch and
# stop. They are kept, never deleted.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

conninfo="$1"
slot="$2"
rewind_conninfo="$3"
primary_timeline="$4"
reclone="${5:-}"
attempt=30  # seconds a re-pointed standby gets to stream before it is rewound

log_file="$BACKUP_LOG_DIR/rejoin.log"
install -d -m 755 "$BACKUP_LOG_DIR"

finish() {
    # Slots this node kept from a time it was the primary would pin WAL here for nothing;
    # not those of its cascading replicas (KEEP_SLOTS), which may be reconnecting to it.
    sql "select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active and slot_name <> all(string_to_array(:'keep', ' '))" "keep=${KEEP_SLOTS:-}" >/dev/null || true
    log "streaming from the primary ($conninfo)"
    exit 0
}

quarantine_newer_timelines() {
    local file name tli moved=0 quarantine
    quarantine="$BACKUP_ROOT/wal_quarantine/$(date -u +%Y%m%dT%H%M%SZ)"
    for file in "$WAL_ARCHIVE_DIR"/*; do
        name=${file##*/}
        [[ "$name" =~ ^[0-9A-F]{8} ]] || continue
        tli=$((16#${name:0:8}))
        if [ "$tli" -gt "$primary_timeline" ]; then
            install -d -o postgres -g postgres -m 750 "$quarantine"
            mv -n "$file" "$quarantine/" 2>/dev/null && moved=$((moved + 1))
        fi
    done
    if [ "$moved" -gt 0 ]; then
        log "moved $moved archive file(s) of timelines after $primary_timeline (a dead branch) to $quarantine"
    fi
}

point_at_primary() {
    quarantine_newer_timelines
    # The server is stopped: write what ALTER SYSTEM would, and make it a standby.
    local auto="$DATA_DIR/postgresql.auto.conf"
    {
        grep -v -E '^[[:space:]]*(primary_conninfo|primary_slot_name|synchronous_standby_names)[[:space:]]*=' "$auto" 2>/dev/null || true
        echo "primary_conninfo = $(sql_literal "$conninfo")"
        echo "primary_slot_name = $(sql_literal "$slot")"
    } >"$auto.pgcluster"
    chown postgres:postgres "$auto.pgcluster"
    chmod 600 "$auto.pgcluster"
    mv "$auto.pgcluster" "$auto"
    install -o postgres -g postgres -m 600 /dev/null "$DATA_DIR/standby.signal"
}

if [ ! -f "$DATA_DIR/PG_VERSION" ]; then
    log "no data directory: cloning it"
    exec "$SCRIPTS_DIR/clone-replica" "$conninfo" "$slot"
fi

if server_running; then
    if [ "$(sql 'select pg_is_in_recovery()')" != t ]; then
        log "refusing: this node runs as a primary. Stop it first (pgcluster stop $NODE_NAME), then rejoin it."
        exit 2
    fi
    log "running standby: re-pointing it online"
    sql "alter system set primary_conninfo = $(sql_literal "$conninfo")" >/dev/null
    sql "alter system set primary_slot_name = $(sql_literal "$slot")" >/dev/null
    sql "select pg_reload_conf()" >/dev/null
    wait_streaming "$attempt" && finish
    log "it cannot follow the primary's timeline; stopping it to rewind"
    systemctl stop "$SERVICE"
elif [ -f "$DATA_DIR/standby.signal" ]; then
    log "stopped standby: pointing it at the primary and starting it"
    point_at_primary
    systemctl start "$SERVICE"
    wait_streaming "$attempt" && finish
    log "it cannot follow the primary's timeline; stopping it to rewind"
    systemctl stop "$SERVICE"
fi

log "pg_rewind from the primary"
# A just-promoted primary's pg_control names its new timeline only after a checkpoint.
run_psql -d "$rewind_conninfo" -c CHECKPOINT >/dev/null || true
if as_postgres "$BIN_DIR/pg_rewind" --target-pgdata="$DATA_DIR" --source-server="$rewind_conninfo" \
        --config-file="$CONF_DIR/postgresql.conf" --restore-target-wal --progress 2>&1 \
        | tee -a "$log_file" >&2; then
    log "pg_rewind done"
    point_at_primary
    systemctl start "$SERVICE"
    wait_streaming "$REPLICA_WAIT_TIMEOUT" && finish
    systemctl stop "$SERVICE" || true
fi

if [ "$reclone" = --reclone ]; then
    aside="$DATA_DIR.before-rejoin-$(date -u +%Y%m%dT%H%M%SZ)"
    log "pg_rewind could not rejoin this node; --reclone: keeping $DATA_DIR as $aside and cloning afresh"
    mv "$DATA_DIR" "$aside"
    exec "$SCRIPTS_DIR/clone-replica" "$conninfo" "$slot"
fi
log "pg_rewind could not rejoin this node. Run the rejoin again with --reclone to rebuild it from a fresh base backup (its data directory is then kept aside, not deleted)."
exit 3
