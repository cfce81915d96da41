#!/bin/bash
# start-guard -- ExecStartPre of this node's postgresql@ unit (templates/systemd/). Managed by
# pgcluster (pgcluster/node/).
#
# A node whose data directory would start as a primary (no standby.signal) asks every other
# node for its timeline (IDENTIFY_SYSTEM over a replication connection). If one of them is
# on a newer timeline of the same cluster, a failover happened while this node was away:
# starting it would give two primaries. It stays down until `pgcluster rejoin` makes it a
# standby. Standbys, restores in progress and unreachable peers never block a start.
# shellcheck source-path=SCRIPTDIR
# Not -e: a peer that cannot be asked is an answer, not an error of the guard.
set -u
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

psql_timeout=10

[ -f "$DATA_DIR/standby.signal" ] && exit 0
[ -f "$DATA_DIR/recovery.signal" ] && exit 0
[ -f "$DATA_DIR/global/pg_control" ] || exit 0

control=$("$BIN_DIR/pg_controldata" "$DATA_DIR" 2>/dev/null) || exit 0
mine=$(sed -n "s/^Latest checkpoint's TimeLineID: *//p" <<<"$control")
system=$(sed -n 's/^Database system identifier: *//p' <<<"$control")

read -ra peer_list <<<"$PEERS"
for peer in "${peer_list[@]}"; do
    peer_conninfo="host=$(conninfo_value "${peer%:*}") port=${peer##*:} user=$(conninfo_value "$REPLICATION_USER") passfile=$(conninfo_value "$PGPASS") $SSL_CONNINFO dbname=replication replication=true connect_timeout=3"
    reply=$(run_psql -d "$peer_conninfo" -c IDENTIFY_SYSTEM 2>/dev/null) || continue
    IFS='|' read -r their_system their_timeline _ <<<"$reply"
    if [ "$their_system" = "$system" ] && [ "$their_timeline" -gt "$mine" ]; then
        echo "start-guard: ${peer%:*} is on timeline $their_timeline; this node stopped as a primary on timeline $mine. Not starting it as a second primary: run 'pgcluster rejoin $NODE_NAME'." >&2
        exit 1
    fi
done
exit 0
