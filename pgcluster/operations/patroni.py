"""Operations of the Patroni engine: hand PostgreSQL over from Debian's unit to Patroni,
wait for etcd and for the leader, and keep the DCS's configuration as group_data says.

Like the other operations, each reads facts when it executes and yields nothing when the
node is already right, so a re-run changes nothing."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import yaml
from pyinfra import host
from pyinfra.api import FactBase, operation

from pgcluster.facts.patroni import (
    BACKPORT,
    PENDING_SETTINGS,
    EtcdHealth,
    HaServices,
    PatroniBackport,
    PatroniMembers,
    PendingSettings,
)
from pgcluster.facts.postgres import node_state, psql_command
from pgcluster.model.layout import UPLOAD_DIR, Layout
from pgcluster.model.patroni import (
    PatroniMember,
    PatroniView,
    dcs_patch,
    list_command,
    patronictl,
    restart_candidate,
    switchover_command,
)
from pgcluster.operations.files import private_upload
from pgcluster.operations.postgres import wait_for_replicas


class DcsConfig(FactBase):
    """The cluster's dynamic configuration in the DCS (patronictl show-config), or None
    before Patroni has initialised the cluster (or when etcd does not answer)."""

    def command(self) -> str:
        return f"{patronictl('show-config')} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, Any] | None:
        try:
            found = yaml.safe_load("\n".join(output))
        except yaml.YAMLError:
            return None
        return found if isinstance(found, dict) else None

    def default(self) -> None:
        return None


@operation()
def hand_over_from_debian(layout: Layout, port: int = 5432):
    """Debian's postgresql@ unit stops and stays off: from now on Patroni starts and stops
    PostgreSQL itself (pg_ctl), and two managers must never race for one data directory.
    A synchronous_standby_names that a manual failover set with ALTER SYSTEM is reset
    first: postgresql.auto.conf would win over Patroni's own choice."""
    unit = host.get_fact(HaServices, postgresql_service=layout.service).get("postgresql", {})
    if not (unit.get("active") or unit.get("enabled")):
        host.noop(f"{layout.service} is stopped and disabled: Patroni manages PostgreSQL")
        return
    live = node_state(host)
    if live.get("running") and not live.get("in_recovery"):
        yield psql_command("ALTER SYSTEM RESET synchronous_standby_names", port=port)
    if unit.get("active"):
        yield f"systemctl stop {layout.service}"
    if unit.get("enabled"):
        yield f"systemctl disable --quiet {layout.service}"


@operation()
def wait_for_etcd(endpoints: str, tls: tuple[str, str, str], timeout: int = 90):
    """Until the etcd cluster at `endpoints` answers this host over TLS (a member: once the
    members have found each other; facts EtcdHealth)."""
    if host.get_fact(EtcdHealth, endpoints=endpoints, tls=tls):
        host.noop("etcd answers")
        return
    problem = (f"etcd does not answer at {endpoints} (after {int(timeout)}s): "
               "see journalctl -u etcd on its hosts")
    yield "\n".join([
        f"for _ in $(seq {int(timeout)}); do",
        f"  {EtcdHealth().command(endpoints=endpoints, tls=tls)} | grep -qx yes && exit 0",
        "  sleep 1",
        "done",
        f"echo {shlex.quote(problem)} >&2",
        "exit 1",
    ])


@operation()
def wait_for_leader(member: str, timeout: int = 120):
    """Until Patroni reports `member` as the leader: a new cluster bootstrapped, or
    a running primary taken over."""
    view = host.get_fact(PatroniMembers)
    if view is not None and view.leader == member:
        host.noop(f"{member} is the leader")
        return
    is_leader = ("import json, sys; rows = json.load(sys.stdin); "
                 f"sys.exit(0 if any(r.get('Member') == {member!r} and r.get('Role') == 'Leader' "
                 "for r in rows) else 1)")
    yield "\n".join([
        f"for _ in $(seq {int(timeout)}); do",
        f"  {list_command()} 2>/dev/null | python3 -c {shlex.quote(is_leader)} && exit 0",
        "  sleep 1",
        "done",
        f'echo "{member} is not the leader after {int(timeout)}s: see journalctl -u patroni" >&2',
        "exit 1",
    ])


@operation()
def dcs_configuration(wanted: Mapping[str, Any]):
    """The DCS's dynamic configuration holds what group_data says (bootstrap.dcs is read
    once, when the cluster is initialised): the difference, applied with patronictl
    edit-config, which writes the DCS directly and needs no REST API password."""
    current = host.get_fact(DcsConfig)
    if current is None:
        host.noop("no configuration in the DCS yet")
        return
    patch = dcs_patch(current, wanted)
    if not patch:
        host.noop("the DCS's configuration is as group_data says")
        return
    path = f"{UPLOAD_DIR}/patroni-dcs-patch.yml"
    yield from private_upload(yaml.safe_dump(patch, default_flow_style=False), path)
    yield (f"{patronictl('edit-config', '--apply', path, '--force', '--quiet')}; "
           f"rc=$?; rm -f {path}; exit $rc")


@operation()
def patronictl_change(command: str, what: str):
    """Run a patronictl switchover, failover or reinit and fail when it did not do it:
    3.0.2 exits 0 even when the REST API refused, so its words are checked
    (model.patroni.command_result); the next step checks the leader in the DCS."""
    yield "\n".join([
        f"out=$({command} 2>&1); rc=$?",
        'printf "%s\\n" "$out"',
        '[ "$rc" -eq 0 ] || exit "$rc"',
        "if printf '%s\\n' \"$out\" | grep -Eq 'failed, details:|falling back to DCS|"
        "status unknown|Error:|is not the leader|not a member'; then",
        f'  echo {shlex.quote(f"patronictl did not {what}")}": $out" >&2',
        "  exit 1",
        "fi",
    ])


@operation()
def member_service(layout: Layout, running: bool):
    """Start or stop Patroni on this node (it starts or stops PostgreSQL with it)."""
    services = host.get_fact(HaServices, postgresql_service=layout.service)
    active = bool(services.get("patroni", {}).get("active"))
    if active == running:
        host.noop(f"Patroni is {'running' if running else 'stopped'}")
        return
    yield f"systemctl {'start' if running else 'stop'} patroni"


# ------------------------------------------------------------- restarts, one node at a time
# A setting PostgreSQL takes only at a restart (Patroni's pending_restart flag for the DCS's
# parameters, pg_settings' for pgcluster's own postgresql.conf) is applied replicas first,
# one at a time, each streaming again before the next; then the leader hands over by a
# switchover and restarts as a replica. Writes pause for one switchover, never for a
# restart, and never more than one member is down.


def _pending(member: PatroniMember, port: int) -> list[str]:
    """Why this node's member waits for a restart; empty when it does not."""
    why = [f"setting {name}" for name in host.get_fact(PendingSettings, port=port)]
    if member.pending_restart:
        why.append("Patroni's pending restart")
    return why


def _waiting(member: str, port: int, leader: bool
             ) -> tuple[PatroniView, list[str]] | None:
    """Patroni's view and why this node's member waits for a restart, when it is in the
    role asked (the leader, or a replica) and something waits; else None, said as a no-op."""
    view = host.get_fact(PatroniMembers)
    me = next((m for m in view.members if m.name == member), None) if view else None
    if view is None or me is None or me.is_leader != leader:
        host.noop(f"{member} is not {'the leader' if leader else 'a replica Patroni reports'}")
        return None
    why = _pending(me, port)
    if not why:
        host.noop(f"{member} waits for no restart")
        return None
    return view, why


def _member_test(member: str, condition: str) -> str:
    """A shell test on `member`'s row of patronictl list (r: {} when it is not listed)."""
    test = ("import json, sys; rows = [r for r in json.load(sys.stdin) "
            f"if r.get('Member') == {member!r}]; r = rows[0] if rows else {{}}; "
            f"sys.exit(0 if ({condition}) else 1)")
    return f"{list_command()} 2>/dev/null | python3 -c {shlex.quote(test)}"


RUNNING = "r.get('State') in ('running', 'streaming') and r.get('TL') is not None"
# Running and (a replica) streaming: patronictl shows its lag.
STREAMING = (f"{RUNNING} and (r.get('Role') == 'Leader' "
             "or isinstance(r.get('Lag in MB'), (int, float)))")
# ... with no restart pending.
READY = f"{STREAMING} and not r.get('Pending restart')"
LEADS = "r.get('Role') == 'Leader'"


def _wait(test: str, what: str, timeout: int) -> str:
    return "\n".join([
        f"for _ in $(seq {int(timeout)}); do",
        f"  {test} && exit 0",
        "  sleep 1",
        "done",
        f'echo "{what}: not after {int(timeout)}s; see patronictl list and journalctl -u '
        'patroni" >&2',
        "exit 1",
    ])


def _restart_command(scope: str, member: str) -> str:
    """patronictl restart, through the REST API; 3.0.2 exits 0 even when it failed, so its
    words are checked."""
    command = patronictl("restart", scope, member, "--force")
    return "\n".join([
        f"out=$({command} 2>&1); rc=$?",
        'printf "%s\\n" "$out"',
        f"if [ \"$rc\" -ne 0 ] || ! printf '%s\\n' \"$out\" | grep -q 'Success: restart on "
        f"member {member}'; then",
        f'  echo "patronictl did not restart {member}: $out" >&2',
        "  exit 1",
        "fi",
    ])


def _say(text: str) -> str:
    return f"echo {shlex.quote(text)}"


@operation()
def settle(seconds: int):
    """Give every Patroni one HA loop to act on a changed configuration (its own file, or
    the DCS's), so that the pending restarts it then flags are seen."""
    yield f"sleep {int(seconds)}"


@operation()
def restart_replica_if_pending(scope: str, member: str, port: int = 5432, timeout: int = 180,
                               final: bool = False):
    """This node's member, a replica, restarted by Patroni if a setting waits for it; it
    streams again before the operation ends, so the next replica's restart never overlaps.
    `final`: the last pass, after the primary's restart: nothing may wait any more (before
    it, a replica may keep a lowered max_connections & co. pending: Patroni starts it with
    the primary's higher value, which a hot standby needs)."""
    waiting = _waiting(member, port, leader=False)
    if waiting is None:
        return
    yield _say(f"restarting {member} for: {', '.join(waiting[1])}")
    yield _restart_command(scope, member)
    yield _wait(_member_test(member, STREAMING), f"{member} streaming", timeout)
    if not final:
        return
    # Patroni read the replica's pg_control before it started, where the primary's old,
    # higher max_connections & co. stay until the replica replays the primary's parameter
    # change: once caught up, a second restart takes the lowered values.
    flagged = _member_test(member, "r.get('Pending restart')")
    caught_up = _member_test(member, f"{STREAMING} and r.get('Lag in MB') == 0")
    restart = _restart_command(scope, member).replace("\n", "\n  ")
    yield "\n".join([
        f"if {flagged}; then",
        f"  for _ in $(seq {int(timeout)}); do {caught_up} && break; sleep 1; done",
        f"  {restart}",
        "fi",
    ])
    yield _wait(_member_test(member, READY), f"{member} streaming with nothing pending",
                timeout)


@operation()
def hand_over_and_restart_if_pending(scope: str, member: str, port: int = 5432,
                                     timeout: int = 180):
    """This node's member, the leader, if a setting waits for a restart: a switchover to
    the best replica (model.patroni.restart_candidate), after which Patroni starts the old
    leader again as a replica, with the new settings; a restart then only if anything still
    waits. With no replica able to take over it restarts in place, a short write outage,
    and says so."""
    waiting = _waiting(member, port, leader=True)
    if waiting is None:
        return
    view, why = waiting[0], ", ".join(waiting[1])
    candidate = restart_candidate(view)
    if candidate is None:
        yield _say(f"no replica can take over from {member}: restarting it in place for: "
                   f"{why}") + " >&2"
        yield _restart_command(scope, member)
        yield _wait(_member_test(member, READY), f"{member} back", timeout)
        return
    target = candidate.name
    yield _say(f"{member} hands over to {target}, then restarts as a replica, for: {why}")
    yield from patronictl_change._inner(  # type: ignore[attr-defined]
        command=switchover_command(member, target),
        what=f"switch over from {member} to {target}")
    yield _wait(_member_test(target, LEADS), f"{target} the leader", timeout)
    yield _wait(_member_test(member, RUNNING), f"{member} running as a replica", timeout)
    flagged = _member_test(member, "r.get('Pending restart')")
    pending_here = psql_command(PENDING_SETTINGS, port=port)
    restart = _restart_command(scope, member).replace("\n", "\n  ")
    yield "\n".join([
        f'if {flagged} || [ -n "$({pending_here} 2>/dev/null)" ]; then',
        f"  {restart}",
        "fi",
    ])
    yield _wait(_member_test(member, STREAMING), f"{member} streaming from {target}", timeout)


@operation()
def restart_leader_if_pending(scope: str, member: str, port: int = 5432, timeout: int = 180):
    """This node's member, if it leads now and a setting still waits: restarted in place.
    After the switchover that happens only when a setting was lowered that a replica must
    hold at least at the primary's value (max_connections, max_worker_processes,
    max_wal_senders, max_prepared_transactions, max_locks_per_transaction): the new leader
    ran with the higher one, and only its restart lowers it (Patroni's own advice: the
    primary first, then the replicas)."""
    waiting = _waiting(member, port, leader=True)
    if waiting is None:
        return
    yield _say(f"restarting the leader {member} in place for: {', '.join(waiting[1])}")
    yield _restart_command(scope, member)
    yield _wait(_member_test(member, READY), f"{member} leading with nothing pending", timeout)


@operation()
def followers_stream_if_leader(member: str, names: list[str], port: int = 5432,
                               timeout: int = 180):
    """If this node's member leads now (a rolling restart may have moved the leader): wait
    until every other member streams from it, as pg_stat_replication shows (Patroni's lag
    figure is known before a restarted replica streams again). Nothing elsewhere."""
    view = host.get_fact(PatroniMembers)
    if view is None or view.leader != member:
        host.noop(f"{member} does not lead")
        return
    yield from wait_for_replicas._inner(  # type: ignore[attr-defined]
        application_names=[n for n in names if n != member], timeout=timeout, port=port,
        explain=list_command())


@operation()
def forget_cluster(scope: str):
    """patronictl remove: the cluster's keys in the DCS (leader, members, last position,
    history, configuration) deleted, for a restored node to start a new history. 3.0.2 asks
    for the name and "Yes I am aware", and for the leader's name when one holds the lock:
    that last answer is never given, so a cluster with a leader is never removed."""
    yield (f"printf '%s\\n%s\\n' {shlex.quote(scope)} 'Yes I am aware' | "
           f"{patronictl('remove', scope)}")


@operation()
def backport_etcd3_fix():
    """Patroni 3.0.2's etcd3 leader-key renewal made 3.0.3's (pgcluster/node/
    patroni-backport.py): a leader back from a partition longer than ttl must never
    overwrite the key another member won meanwhile. Another Patroni version is left alone."""
    found = host.get_fact(PatroniBackport)
    if found != "unfixed":
        host.noop("Patroni's etcd3 leader-key renewal is fixed" if found == "fixed" else
                  "Patroni is not 3.0.2: its own etcd3 code is used")
        return
    yield f"python3 -c {shlex.quote(BACKPORT.read_text())} --apply"


@operation()
def maintenance(paused: bool):
    """patronictl pause or resume, waiting until every member has seen it. Paused, Patroni
    changes nothing and a Patroni that stops leaves PostgreSQL running."""
    yield patronictl("pause" if paused else "resume", "--wait")
