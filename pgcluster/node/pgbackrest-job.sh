#!/bin/bash
# pgbackrest-job full|incr|verify|retention -- a backup job of the pgbackrest engine
# (backup_engine = "pgbackrest"), when this node is the primary. Managed by pgcluster
# (pgcluster/node/).
#
# backup-full, backup-incr, backup-verify and backup-retention hand over to this script
# when node.env says BACKUP_ENGINE=pgbackrest, so cron, `pgcluster backup ...` and the
# deploys run the same commands whichever engine takes the backups. Every repository of
# PGBACKREST_REPOS (repo1 under backup_root; repo2 in object storage when configured) gets
# its own backup, one after the other, and its own row in REGISTRY_DB.pgcluster.backups
# (path repo<N>/<pgBackRest's label>), so the loss of either still leaves the other.
#   full       pgbackrest backup --type=full
#   incr       pgbackrest backup --type=PGBACKREST_DAILY_TYPE (incr or diff)
#   verify     pgbackrest verify of every repository (the WAL archive and every backup's
#              files against their checksums)
#   retention  pgbackrest expire (the recovery window of BACKUP_RETENTION_DAYS), then marks
#              the rows of the backups it removed
# Exits 0 doing nothing on a node that is not the current primary; non-zero on any failure:
# a job that fails on one repository still runs on the others, and says which failed.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"
backup_job_init

kind=${1:-}
case "$kind" in
    full|incr|verify|retention) ;;
    *) echo "usage: $script full|incr|verify|retention" >&2; exit 64 ;;
esac
shift
# backup-verify may name a backup; pgBackRest verifies them all (they share the archive).
[ $# -le 1 ] || { echo "usage: $script $kind" >&2; exit 64; }

stanza=${PGBACKREST_STANZA:?node.env has no PGBACKREST_STANZA: run the cluster deploy}
read -r -a repos <<<"${PGBACKREST_REPOS:?node.env has no PGBACKREST_REPOS: run the cluster deploy}"

run_as_postgres "$kind" "$@"
require_primary
if [ "$kind" = verify ]; then
    take_lock shared
else
    take_lock exclusive
fi

err=$(mktemp)
job_temp=("$err")
trap backup_job_exit EXIT

pgbackrest_run() {
    pgbackrest --stanza="$stanza" --log-level-console=warn --log-level-stderr=warn "$@"
}

# why FILE -- the last lines pgBackRest wrote about an error, on one line.
why() {
    grep -E 'ERROR|WARN' "$1" | tail -n 3 | sed -e 's/^[^A-Z]*//' | tr '\n' ' ' \
        || tail -n 2 "$1" | tr '\n' ' '
}

# newest_in REPO -- the newest backup in REPO, from `pgbackrest info --output=json`, as
# one line of label, type, size in the repository, start and stop LSN, first and last WAL
# segment: tab-separated (an empty line when the repository has none).
newest_in() {
    pgbackrest_run --repo="$1" --output=json info | jq -r '(.[0].backup // [])[-1] // empty
        | [.label, .type, .info.repository.delta, .lsn.start, .lsn.stop, .archive.start,
           .archive.stop] | @tsv'
}

# labels REPO -- every backup label REPO holds, one per line.
labels() {
    pgbackrest_run --repo="$1" --output=json info | jq -r '.[].backup[]?.label'
}

failed=()

backup_to() {
    local repo=$1 type=$2 stamp label size start_lsn stop_lsn start_wal stop_wal rc=0 line
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    registry_id=""
    registry_start "$kind" "pgbackrest-$type-$stamp" "repo$repo"
    log "starting a $type backup to repo$repo (stanza $stanza)"
    pgbackrest_run --repo="$repo" --type="$type" backup 2>"$err" || rc=$?
    cat "$err" >>"$log_file" 2>/dev/null || true
    if [ "$rc" != 0 ]; then
        failure="pgbackrest backup --type=$type to repo$repo failed (exit $rc): $(why "$err")"
        log "FAILED: $failure"
        registry_failed "$failure"
        failed+=("repo$repo")
        return 0
    fi
    line=$(newest_in "$repo")
    IFS=$'\t' read -r label type size start_lsn stop_lsn start_wal stop_wal <<<"$line"
    if [ -z "$label" ]; then
        failure="pgbackrest reports no backup in repo$repo after a successful run"
        registry_failed "$failure"
        failed+=("repo$repo")
        return 0
    fi
    if [ -n "$registry_id" ]; then
        sql "update pgcluster.backups set label = :'label', path = :'path' where id = :'id'" \
            id="$registry_id" label="$label" path="repo$repo/$label" >/dev/null \
            || log "WARNING: could not record the label of $label in the registry"
    fi
    registry_ok "$size" "$((16#${start_wal:0:8}))" "$start_lsn" "$stop_lsn" "$start_wal" \
        "$stop_wal" "pgbackrest $type backup"
    log "done: repo$repo/$label ($type) $(human "$size"), WAL $start_lsn - $stop_lsn (from $start_wal)"
    echo "repo$repo/$label"
}

# registry_failed WHY -- the current row failed (the job goes on with the next repository).
registry_failed() {
    [ -n "$registry_id" ] || return 0
    sql "update pgcluster.backups set status = 'failed', finished_at = now(), detail = :'detail'
         where id = :'id'" id="$registry_id" detail="$1" >/dev/null \
        || log "could not record the failure in the registry"
}

case "$kind" in
    full|incr)
        type=full
        [ "$kind" = incr ] && type=$PGBACKREST_DAILY_TYPE
        for repo in "${repos[@]}"; do
            backup_to "$repo" "$type"
        done
        ;;
    verify)
        for repo in "${repos[@]}"; do
            rc=0
            log "verifying repo$repo (stanza $stanza): the archive and every backup"
            # verify's exit status says nothing of what it found (2.45 exits 0 on "No
            # usable backup.info file"): its report does.
            pgbackrest_run --repo="$repo" --output=text --verbose verify >"$err" 2>&1 || rc=$?
            cat "$err" >>"$log_file" 2>/dev/null || true
            if [ "$rc" = 0 ] && grep -q '^ *status: ok' "$err" \
                    && ! grep -qE 'status: (error|invalid)|(missing|invalid|other): [1-9]|No usable' "$err"; then
                status=ok
                log "verified repo$repo: ok"
            else
                status=failed
                log "FAILED: verify of repo$repo (exit $rc): $(grep -E 'status: [^o]|[1-9][0-9]*$|No usable|ERROR' "$err" | head -n 4 | tr '\n' ' ')"
                failed+=("repo$repo")
            fi
            sql "update pgcluster.backups set verified_at = now(), verify_status = :'status'
                 where path like :'prefix' and status = 'ok' and removed_at is null" \
                status="$status" prefix="repo$repo/%" >/dev/null \
                || log "WARNING: could not record the verification in the registry"
        done
        ;;
    retention)
        for repo in "${repos[@]}"; do
            rc=0
            log "expiring repo$repo past the ${BACKUP_RETENTION_DAYS}-day recovery window"
            pgbackrest_run --repo="$repo" expire 2>"$err" || rc=$?
            cat "$err" >>"$log_file" 2>/dev/null || true
            if [ "$rc" != 0 ]; then
                log "FAILED: expire of repo$repo (exit $rc): $(why "$err")"
                failed+=("repo$repo")
                continue
            fi
            kept=$(labels "$repo" | paste -sd, -)
            sql "update pgcluster.backups set removed_at = now()
                 where path like :'prefix' and status = 'ok' and removed_at is null
                   and not (label = any (string_to_array(:'kept', ',')))" \
                prefix="repo$repo/%" kept="$kept" >/dev/null \
                || log "WARNING: could not record the expiry in the registry"
            log "repo$repo keeps: ${kept:-nothing}"
        done
        # The seed engine's backups from before a switch expire by its own rules (the
        # newest of them stays until removed by hand). It takes the lock itself.
        if [ -n "$(find "$BACKUP_FULL_DIR" -mindepth 1 -maxdepth 1 -type d -name '*Z' 2>/dev/null)" ]; then
            exec 9>&-
            PGCLUSTER_SEED_RETENTION=1 "$PGCLUSTER_LIB/backup-retention" \
                || failed+=("the seed engine's backups")
        fi
        ;;
esac

job_finished=1
if [ "${#failed[@]}" -gt 0 ]; then
    log "FAILED: $kind on ${failed[*]}"
    exit 1
fi
failing=$(archiver_failure || true)
if [ -n "$failing" ] && [ "$kind" != verify ]; then
    log "ERROR: WAL archiving is failing: $failing. See pg_stat_archiver, $PG_LOG_FILE and /var/log/pgbackrest"
    exit 2
fi
