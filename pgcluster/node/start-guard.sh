#!/bin/bash
# start-guard -- ExecStartPre of this node's postgresql@ unit (templates/systemd/). Managed by
# pgcluster (pgcluster/node/).
#
# A node whose data directory would start as a primary (no standby.signal, no
# recovery.signal) must not become a second primary. Before it starts it asks every other
# node (PEERS), over a replication connection, IDENTIFY_SYSTEM and SHOW in_hot_standby:
#   - a peer of this cluster on a newer timeline: a failover happened while this node was
#     away; it stays down until `pgcluster rejoin` makes it a standby;
#   - a peer of this cluster that is a running primary: the same, whatever its timeline;
#   - a peer of another cluster (another system identifier) is no answer at all.
# It fails closed: at least one peer of this cluster must answer to confirm. It asks again
# until START_GUARD_WAIT seconds have passed (the unit's start has no timeout), then stays
# down, naming the command that starts it deliberately: `pgcluster start NODE --as-primary`,
# which leaves the one-shot file START_OVERRIDE for this guard to consume.
# Standbys, restores in progress, a data directory without pg_control (the server refuses
# it anyway) and a node without peers (a one-node cluster, such as a restore's scratch node)
# start without asking.
# shellcheck source-path=SCRIPTDIR
# Not -e: a peer that cannot be asked is an answer, not an error of the guard.
set -u
PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}
# shellcheck source=lib.sh
. "$PGCLUSTER_LIB/lib.sh"

psql_timeout=10
deliberately="pgcluster start $NODE_NAME --as-primary"

refuse() {
    echo "start-guard: $*" >&2
    exit 1
}

# The override is for one start only, whichever start comes next: left behind, it would let
# a later start skip the peers.
override=0
if [ -e "$START_OVERRIDE" ] && rm -f "$START_OVERRIDE"; then
    override=1
fi

[ -f "$DATA_DIR/standby.signal" ] && exit 0
[ -f "$DATA_DIR/recovery.signal" ] && exit 0
[ -f "$DATA_DIR/global/pg_control" ] || exit 0

if [ "$override" = 1 ]; then
    echo "start-guard: starting $NODE_NAME as a primary without its peers' confirmation, as asked ($deliberately; $START_OVERRIDE consumed)" >&2
    echo "$(now) start-as-primary $NODE_NAME started as a primary without its peers' confirmation ($deliberately)" \
        >>"$BACKUP_LOG_DIR/events.log" 2>/dev/null
    exit 0
fi

if ! control=$("$BIN_DIR/pg_controldata" "$DATA_DIR" 2>&1); then
    refuse "pg_controldata cannot read $DATA_DIR ($(tail -n 1 <<<"$control")), so nothing says whether this node may start as a primary: it stays down. Repair it, or start it deliberately: $deliberately"
fi
mine=$(sed -n "s/^Latest checkpoint's TimeLineID: *//p" <<<"$control")
system=$(sed -n 's/^Database system identifier: *//p' <<<"$control")
if ! [[ "$mine" =~ ^[0-9]+$ ]] || [ -z "$system" ]; then
    refuse "pg_controldata says no timeline or system identifier for $DATA_DIR: it stays down. Start it deliberately: $deliberately"
fi

read -ra peer_list <<<"$PEERS"
[ "${#peer_list[@]}" -gt 0 ] || exit 0

# ask PEER -- 0 when PEER is of this cluster and confirms that this node may start as its
# primary; refuses (exits) when it says the contrary; 1 when it gives no answer that counts.
ask() {
    local peer=$1 conninfo reply their_system their_timeline hot_standby
    conninfo="host=$(conninfo_value "${peer%:*}") port=${peer##*:} user=$(conninfo_value "$REPLICATION_USER") passfile=$(conninfo_value "$PGPASS") $SSL_CONNINFO dbname=replication replication=true connect_timeout=3"
    reply=$(run_psql -d "$conninfo" -c IDENTIFY_SYSTEM -c "SHOW in_hot_standby" 2>/dev/null) \
        || return 1
    { IFS='|' read -r their_system their_timeline _; read -r hot_standby; } <<<"$reply"
    [ "$their_system" = "$system" ] || return 1
    [[ "$their_timeline" =~ ^[0-9]+$ ]] || return 1
    if [ "$their_timeline" -gt "$mine" ]; then
        refuse "${peer%:*} is on timeline $their_timeline; this node stopped as a primary on timeline $mine. Not starting it as a second primary: run 'pgcluster rejoin $NODE_NAME'."
    fi
    case "$hot_standby" in
        on) return 0 ;;
        off) refuse "${peer%:*} is a running primary of this cluster (timeline $their_timeline); this node stopped as a primary on timeline $mine. Not starting it as a second primary: run 'pgcluster rejoin $NODE_NAME'." ;;
        *) return 1 ;;
    esac
}

deadline=$((SECONDS + START_GUARD_WAIT))
while :; do
    confirmed=0
    for peer in "${peer_list[@]}"; do
        ask "$peer" && confirmed=1
    done
    [ "$confirmed" = 1 ] && exit 0
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 2
done
refuse "no other node of this cluster (${PEERS// /, }) answered within ${START_GUARD_WAIT}s, so nothing confirms that none of them is the primary: $NODE_NAME stays down. If it must be the primary, start it deliberately: $deliberately"
