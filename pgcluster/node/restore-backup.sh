#!/bin/bash
# restore-backup BACKUP [--time T | --lsn L | --name N] [--timeline latest|current|ID]
#                [--action promote|pause] [--force] -- restore a full backup onto this node.
# Managed by pgcluster (pgcluster/node/).
#
# Restores the full backup BACKUP (latest, its timestamp, full/<timestamp> or its label) into
# this node's data directory and rolls it forward with the WAL archive (WAL_ARCHIVE_DIR, then the incremental copies) to the
# latest WAL there, or to a time, an LSN or a named restore point.
#   - A running server is refused; --force (the user named this node) stops it first.
#   - The existing data directory is never deleted: it is moved aside to
#     DATA_DIR.before-restore-<timestamp>.
#   - Recovery settings go into postgresql.auto.conf with recovery.signal; once the node is
#     promoted they are reset, so a later restart or a standby.signal cannot reuse them.
#   - "latest" is proved: recovery targets the last record of the WAL there is (pg_waldump
#     on the newest segment of the timeline it recovers to), so a missing or damaged segment
#     before it is a failed restore, never a node promoted early.
# At the end it says which point was reached (LSN, timeline, last replayed transaction, and
# PostgreSQL's own "recovery stopping ..." line), on stdout, in restore.log and in
# BACKUP_LOG_DIR/last-restore. A failure puts the previous data directory back. Runs as root
# (it starts and stops the service).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"
backup_job_init

data=$DATA_DIR
restore_log="$BACKUP_LOG_DIR/restore.log"
report_file="$BACKUP_LOG_DIR/last-restore"

usage() {
    echo "usage: $script BACKUP [--time T | --lsn L | --name N] [--timeline latest|current|ID] [--action promote|pause] [--force]" >&2
    exit 64
}
[ "$(id -u)" = 0 ] || { echo "$script: run me as root" >&2; exit 1; }
cd /
[ $# -ge 1 ] || usage
# With the pgbackrest engine a backup is pgBackRest's (latest, its label, or repo<N>/<label>);
# the seed engine's backups taken before a switch keep their own names and are restored
# as before, from full/ and the WAL archive.
engine=seed repo="" set_label=""
pgbackrest_name='^((repo([0-9]+))/)?([0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?|latest)$'
if [ "${BACKUP_ENGINE:-pg_basebackup}" = pgbackrest ] && [[ "$1" =~ $pgbackrest_name ]]; then
    engine=pgbackrest repo=${BASH_REMATCH[3]} name=${BASH_REMATCH[4]}
    [ "$name" = latest ] || set_label=$name
else
    name=$(backup_name "$1") || exit
fi
shift
target_kind=latest target="" timeline=latest action=promote force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --time|--lsn|--name)
            [ "$target_kind" = latest ] || { echo "$script: one recovery target only" >&2; exit 64; }
            target_kind="${1#--}" target="$2"; shift ;;
        --timeline) timeline="$2"; shift ;;
        --action) action="$2"; shift ;;
        --repo)
            [[ "$2" =~ ^[0-9]+$ ]] || { echo "$script: --repo takes a repository number" >&2; exit 64; }
            repo=$2; shift ;;
        --force) force=1 ;;
        *) usage ;;
    esac
    shift
done
[ -z "$repo" ] || [ "$engine" = pgbackrest ] || { echo "$script: --repo is for pgBackRest's backups" >&2; exit 64; }
case "$action" in promote|pause) ;; *) echo "$script: --action promote or pause" >&2; exit 64 ;; esac
[[ "$timeline" =~ ^(latest|current|[0-9]+)$ ]] || { echo "$script: bad --timeline $timeline" >&2; exit 64; }
if [ "$target_kind" = lsn ] && ! [[ "$target" =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]]; then
    echo "$script: bad LSN '$target' (like 0/5000060)" >&2
    exit 64
fi

rlog() {
    log "$@"
    echo "$(now) ${script}[${NODE_NAME}]: $*" >>"$restore_log" 2>/dev/null || true
}
mkdir -p "$BACKUP_LOG_DIR"

if [ "$engine" = pgbackrest ]; then
    label=${set_label:-latest}
    shown="${repo:+repo$repo/}$label"
    backup_path="${repo:+repo$repo/}$label"
else
    if [ "$name" = latest ]; then
        name=$(newest_backup)
        [ -n "$name" ] || die "no full backup in $BACKUP_FULL_DIR to restore"
    fi
    backup="$BACKUP_FULL_DIR/$name"
    for f in base.tar.gz pg_wal.tar.gz backup.info; do
        [ -s "$backup/$f" ] || die "$backup is not a complete backup: $f is missing"
    done
    label=$(info_get "$backup/backup.info" label)
    shown="full/$name ($label)"
    backup_path="full/$name"
fi
take_lock shared

running=0
if data_dir_in_use; then
    running=1
fi
if [ "$running" = 1 ] && [ "$force" != 1 ]; then
    log "refusing: $data holds a running server on $NODE_NAME. Name this node explicitly (pgcluster restore --force-node $NODE_NAME) to stop it and restore; its data directory is moved aside, never deleted."
    exit 2
fi
if mountpoint -q "$data"; then
    die "$data is a mount point and cannot be moved aside: restore into a fresh node, or mount the volume one level up"
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
started=$(date +%s)
target_text="latest (end of the archive)"
[ "$target_kind" != latest ] && target_text="$target_kind '$target'"
rlog "restoring $shown onto $NODE_NAME, target $target_text, timeline $timeline, then $action"
if [ "$running" = 1 ]; then
    rlog "stopping the running server ($SERVICE), as requested by name"
    systemctl stop "$SERVICE"
fi

# A failed restore puts things back as they were: the attempt is kept aside as
# main.failed-restore-<timestamp>, the previous data directory returns (and its server is
# started again if it was running). Nothing is deleted either way.
aside=""
done_ok=0
rollback() {
    local rc=$?
    [ "$done_ok" = 1 ] && exit "$rc"
    [ "$rc" = 0 ] && rc=1
    systemctl stop "$SERVICE" 2>/dev/null || true
    if [ -e "$data" ]; then
        mv "$data" "$data.failed-restore-$stamp" \
            && rlog "the failed attempt is kept in $data.failed-restore-$stamp"
    fi
    if [ -n "$aside" ] && mv "$aside" "$data"; then
        rlog "restore FAILED: the previous data directory is back in $data"
        if [ "$running" = 1 ]; then
            systemctl start "$SERVICE" && rlog "its server is running again"
        fi
    else
        rlog "restore FAILED: $data is empty${aside:+ (the previous data directory is in $aside)}"
    fi
    exit "$rc"
}
trap rollback EXIT
if [ -e "$data" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
    aside="$data.before-restore-$stamp"
    mv "$data" "$aside"
    rlog "moved the previous data directory aside to $aside (never deleted; remove it yourself when done)"
fi
[ -d "$data" ] && rmdir "$data"
install -d -o postgres -g postgres -m 0700 "$data"
if [ "$engine" = pgbackrest ]; then
    # pgBackRest copies the backup (and the backups it builds on) in parallel, writes the
    # recovery settings into postgresql.auto.conf with recovery.signal, and recovery
    # fetches the WAL with archive-get from the same repositories.
    restore_args=(--stanza="$PGBACKREST_STANZA" --pg1-path="$data" --target-timeline="$timeline")
    [ -n "$repo" ] && restore_args+=(--repo="$repo")
    [ -n "$set_label" ] && restore_args+=(--set="$set_label")
    if [ "$target_kind" = latest ]; then
        restore_args+=(--type=default)
    else
        restore_args+=(--type="$target_kind" --target="$target" --target-action="$action")
    fi
    rlog "pgbackrest restore ${restore_args[*]}"
    pgbr_err=$(mktemp)
    if ! as_postgres pgbackrest --log-level-console=warn --log-level-stderr=warn \
            "${restore_args[@]}" restore 2>"$pgbr_err"; then
        rlog "FAILED: pgbackrest restore: $(grep -E 'ERROR|WARN' "$pgbr_err" | tail -n 3 | tr '\n' ' ')"
        rm -f "$pgbr_err"
        exit 1
    fi
    rm -f "$pgbr_err"
    rm -f "$data/standby.signal" "$data/postmaster.pid"
    # A default (latest) restore ends where the archive does, and promotes there.
    [ "$target_kind" = latest ] && [ "$action" = pause ] \
        && echo "recovery_target_action = 'pause'" >>"$data/postgresql.auto.conf"
else
    as_postgres tar -xzf "$backup/base.tar.gz" -C "$data"
    as_postgres mkdir -p "$data/pg_wal"
    as_postgres tar -xzf "$backup/pg_wal.tar.gz" -C "$data/pg_wal"
    rm -f "$data/standby.signal" "$data/recovery.signal" "$data/postmaster.pid"
fi
unpacked=$(date +%s)

# --- "latest" is a target too: the last record of the WAL this restore can read, on the
# timeline it recovers to. Without a target, a missing or damaged segment would simply end
# recovery early and the node would be promoted there, reporting success; with this one,
# PostgreSQL stops with "recovery ended before configured recovery target was reached".
seg_size="" backup_tli="" backup_end=""
if [ "$engine" = seed ]; then
    seg_size=$(info_get "$backup/backup.info" wal_segment_size)
    backup_tli=$(info_get "$backup/backup.info" timeline)
    backup_end=$(info_get "$backup/backup.info" stop_lsn)
    backup_end=${backup_end:-$(info_get "$backup/backup.info" start_lsn)}
fi
seg_size=${seg_size:-16777216}  # backups of pgcluster all say; PostgreSQL's default otherwise

history_file() { printf '%s/%08X.history' "$WAL_ARCHIVE_DIR" "$1"; }

# descends TLI -- whether timeline TLI's history goes through the backup's timeline after the
# backup's end, so that recovering to TLI replays the backup's WAL.
descends() {
    local switch
    switch=$(awk -v t="$backup_tli" '$1 == t { print $2; exit }' "$(history_file "$1")")
    [ -n "$switch" ] && [ "$(lsn_int "$switch")" -ge "$(lsn_int "$backup_end")" ]
}

# recovery_timeline -- the timeline recovery ends on: for latest the newest one in the
# archive that descends from the backup's. It is written down as a number: PostgreSQL's own
# "latest" would take the newest history file whatever its ancestry, or one archived after
# the end was proved.
recovery_timeline() {
    local newest=$backup_tli file name tli
    case "$timeline" in
        current) echo "$backup_tli"; return ;;
        latest) ;;
        *) echo "$timeline"; return ;;
    esac
    for file in "$WAL_ARCHIVE_DIR"/*.history; do
        name=${file##*/}
        [[ "$name" =~ ^[0-9A-F]{8}\.history$ ]] || continue
        tli=$((16#${name:0:8}))
        if [ "$tli" -gt "$newest" ] && descends "$tli"; then
            newest=$tli
        fi
    done
    echo "$newest"
}

# wal_end TLI [BEFORE] -- the last record of the newest segment of timeline TLI there is (in
# the archive, else in the backup's own pg_wal), below the LSN BEFORE when given: sets
# end_lsn, end_segment and end_tli. A timeline without segments yet (just promoted: its
# history file is archived first) ends where its parent's WAL ends, before it branched off.
wal_end() {
    local tli=$1 before=${2:-} prefix below="" newest path out lsn parent switch
    prefix=$(printf '%08X' "$tli")
    if [ -n "$before" ]; then
        below=$(wal_name "$tli" "$(int_lsn $(( $(lsn_int "$before") - 1 )))" "$seg_size")
    fi
    newest=$(find "$WAL_ARCHIVE_DIR" "$data/pg_wal" -maxdepth 1 -type f -name "$prefix*" \
        -printf '%f\n' | grep -E '^[0-9A-F]{24}$' | sort -u \
        | awk -v below="$below" 'below == "" || $0 <= below' | tail -n 1 || true)
    if [ -z "$newest" ]; then
        if [ ! -f "$(history_file "$tli")" ]; then
            end_problem="the archive holds no WAL and no history of timeline $tli"
            return 1
        fi
        read -r parent switch _ < <(grep -E '^[0-9]+[[:space:]]' "$(history_file "$tli")" | tail -n 1)
        if ! [[ "${parent:-}" =~ ^[0-9]+$ ]] || [ "$parent" -ge "$tli" ]; then
            end_problem="$(history_file "$tli") names no parent timeline"
            return 1
        fi
        wal_end "$parent" "$switch"
        return
    fi
    path="$WAL_ARCHIVE_DIR/$newest"
    [ -f "$path" ] || path="$data/pg_wal/$newest"
    # pg_waldump fails at the end of what it can read (the next segment is not there): its
    # records up to there are the answer.
    out=$(as_postgres "$BIN_DIR/pg_waldump" ${before:+"--end=$before"} "$path" 2>/dev/null || true)
    lsn=$(sed -n 's/.* lsn: \([0-9A-F]*\/[0-9A-F]*\), prev .*/\1/p' <<<"$out" | tail -n 1)
    if [ -z "$lsn" ]; then
        end_problem="pg_waldump reads no record in $path"
        return 1
    fi
    end_lsn=$(int_lsn "$(lsn_int "$lsn")")
    end_segment=$newest
    end_tli=$tli
}

recovery_tli=$timeline
if [ "$engine" = pgbackrest ]; then
    [ "$target_kind" = latest ] && target_text="latest (the end of pgBackRest's archive)"
elif [ "$target_kind" = latest ]; then
    end_problem="" end_lsn="" end_segment="" end_tli=""
    [ -n "$backup_tli" ] && recovery_tli=$(recovery_timeline)
    if [ -z "$backup_tli" ] || [ -z "$backup_end" ] || ! wal_end "$recovery_tli"; then
        rlog "FAILED: the end of the archive cannot be proved: ${end_problem:-backup.info has no timeline or WAL position}. Restore to an explicit --lsn or --time instead."
        exit 1
    fi
    target_text="latest (end of the archive: LSN $end_lsn, the last record of $end_segment on timeline $end_tli)"
    rlog "the end of the archive is LSN $end_lsn, the last record of $end_segment on timeline $end_tli: recovery to timeline $recovery_tli must reach it"
fi

[ "$engine" = pgbackrest ] || {
    echo "# pgcluster restore of full/$name ($stamp): reset when the node is promoted"
    echo "restore_command = $(sql_literal "$SCRIPTS_DIR/restore-wal %f %p")"
    echo "recovery_target_timeline = $(sql_literal "$recovery_tli")"
    if [ "$target_kind" = latest ]; then
        echo "recovery_target_lsn = $(sql_literal "$end_lsn")"
        echo "recovery_target_inclusive = 'on'"
    else
        echo "recovery_target_$target_kind = $(sql_literal "$target")"
    fi
    echo "recovery_target_action = $(sql_literal "$action")"
} >>"$data/postgresql.auto.conf"
[ "$engine" = pgbackrest ] || as_postgres touch "$data/recovery.signal"
chown postgres:postgres "$data/postgresql.auto.conf"

log_offset=$(stat -c %s "$PG_LOG_FILE" 2>/dev/null || echo 0)
systemctl enable --quiet "$SERVICE" 2>/dev/null || true
systemctl start "$SERVICE" || true

new_log() { tail -c +$((log_offset + 1)) "$PG_LOG_FILE" 2>/dev/null || true; }

# short_of_target -- why recovery ended before its target, from PostgreSQL's log: where it
# stopped, and the segment it could not read when the log says which.
short_of_target() {
    local log stopped last bad segment why
    log=$(new_log)
    stopped=$(sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' <<<"$log" | tail -n 1)
    last=$(sed -n 's/.*restored log file "\([0-9A-F]\{24\}\)" from archive.*/\1/p' <<<"$log" \
        | tail -n 1)
    bad=$(grep -E 'LOG:  (invalid|incorrect|unexpected|missing contrecord|record with|there is no contrecord)' \
        <<<"$log" | tail -n 1 | sed 's/^.*LOG:  //' || true)
    if [[ "$bad" =~ log\ segment\ ([0-9A-F]{24}) ]]; then
        segment=${BASH_REMATCH[1]}
    elif [[ "$bad" =~ \ at\ ([0-9A-F]+/[0-9A-F]+) ]] && [ -n "$last" ]; then
        segment=$(wal_name $((16#${last:0:8})) "${BASH_REMATCH[1]}" "$seg_size")
    elif [ -n "$last" ]; then
        segment=$(segment_name $((16#${last:0:8})) $(( $(segment_number "$last" "$seg_size") + 1 )) "$seg_size")
    fi
    if [ -n "${segment:-}" ] && [ -n "$bad" ]; then
        why="segment $segment is missing or unreadable (PostgreSQL: $bad)"
    elif [ -n "${segment:-}" ]; then
        why="segment $segment is missing or unreadable (the last one restored was $last)"
    else
        why="no segment after the backup's own WAL could be restored"
    fi
    if [ "$target_kind" = latest ]; then
        echo "recovery ended at LSN ${stopped:-?}, before the end of the archive (LSN $end_lsn, the last record of $end_segment on timeline $end_tli): $why"
    else
        echo "recovery ended at LSN ${stopped:-?}, before reaching the target $target_text: the archive holds no WAL up to it ($why)"
    fi
}
state="" down=0
for _ in $(seq "$RESTORE_TIMEOUT"); do
    state=$(sql "select case when pg_is_in_recovery() then 'recovery:' || pg_get_wal_replay_pause_state() else 'primary' end" 2>/dev/null || true)
    if [ "$state" = primary ] || { [ "$action" = pause ] && [ "$state" = "recovery:paused" ]; }; then
        break
    fi
    # A server that is not up after 15 s, or that logged FATAL/PANIC and is down, has failed.
    if [ -z "$state" ] && ! server_running; then
        down=$((down + 1))
        if [ "$down" -ge 15 ] || new_log | grep -E 'FATAL|PANIC' >/dev/null; then
            new_log | grep -E 'FATAL|PANIC|ERROR|LOG:  (recovery|redo|starting|consistent)' | tail -n 8 >&2 || true
            if new_log | grep -q 'recovery ended before configured recovery target was reached'; then
                rlog "FAILED: $(short_of_target)"
            else
                rlog "FAILED: the server is not running: recovery stopped with an error (above; full log: $PG_LOG_FILE)"
            fi
            exit 1
        fi
    else
        down=0
    fi
    sleep 1
done
if [ "$state" != primary ] && [ "$state" != "recovery:paused" ]; then
    rlog "FAILED: recovery did not reach its target within ${RESTORE_TIMEOUT}s (state: ${state:-down}); see $PG_LOG_FILE"
    exit 1
fi

# Which point was reached, in PostgreSQL's own words too.
# The last record replayed: PostgreSQL's "redo done at" (after a promotion the replay LSN
# can point at the new timeline's first segment), else pg_last_wal_replay_lsn().
reached=$(sql "select coalesce(pg_last_wal_replay_lsn()::text, ''), coalesce(pg_last_xact_replay_timestamp()::text, '')")
reached_lsn=$(new_log | sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' | tail -n 1)
reached_lsn=${reached_lsn:-${reached%%|*}}
last_xact=${reached#*|}
if [ "$state" = primary ]; then
    tli=$(sql "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
else
    tli=$(sql "select timeline_id from pg_control_checkpoint()")
fi
stop_line=$(new_log | grep -E 'recovery stopping|recovery has paused|redo done at' | head -n 1 \
    | sed -e 's/^.*LOG:  //' -e 's/ system usage:.*//' || true)
finished=$(date +%s)

done_ok=1  # from here on the restored node stays, whatever happens
if [ "$state" = primary ]; then
    sql "alter system reset recovery_target_time" >/dev/null
    for setting in recovery_target_lsn recovery_target_name recovery_target_action \
        recovery_target_inclusive recovery_target_timeline restore_command; do
        sql "alter system reset $setting" >/dev/null
    done
    # No reload: these only act at a start in recovery, and a reload would leave them
    # "pending restart" (which the deploy's apply_config would act on).
    outcome="promoted: a primary on timeline $tli"
    sql "update pgcluster.backups set status = 'ok' where label = :'label' and status = 'running';
         insert into pgcluster.backups (kind, label, node, path, status, started_at, finished_at,
             timeline, stop_lsn, detail)
         values ('restore', :'label', :'node', :'path', 'ok', to_timestamp(:'t0'::double precision), now(),
             :'tli', nullif(:'lsn', '')::pg_lsn, :'detail')" \
        label="$label" node="$NODE_NAME" path="$backup_path" t0="$started" tli="$tli" lsn="$reached_lsn" \
        detail="restored to $target_text: ${stop_line:-end of archive}" >/dev/null 2>&1 \
        || log "WARNING: could not record the restore in pgcluster.backups on $NODE_NAME"
else
    outcome="paused at the target, still in recovery on timeline $tli: inspect it, then promote with select pg_wal_replay_resume() (or pg_promote()); the recovery settings stay in postgresql.auto.conf until then"
fi

cat >"$report_file" <<REPORT
node=$NODE_NAME
backup=$backup_path
label=$label
target=$target_text
timeline_requested=$timeline
action=$action
reached_lsn=$reached_lsn
reached_timeline=$tli
last_transaction=$last_xact
postgresql_says=$stop_line
outcome=$outcome
previous_data=$aside
unpack_seconds=$((unpacked - started))
recovery_seconds=$((finished - unpacked))
total_seconds=$((finished - started))
finished_at=$(now)
REPORT
rlog "reached LSN ${reached_lsn:-?} on timeline $tli, last replayed transaction ${last_xact:-none}; target $target_text; PostgreSQL: ${stop_line:-n/a}"
rlog "done in $((finished - started))s (unpack $((unpacked - started))s, recovery $((finished - unpacked))s): $outcome"
cat "$report_file"
