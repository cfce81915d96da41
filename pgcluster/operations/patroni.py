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

from pgcluster.facts.patroni import EtcdHealth, HaServices, PatroniMembers
from pgcluster.facts.postgres import node_state, psql_command
from pgcluster.model.layout import UPLOAD_DIR, Layout
from pgcluster.model.patroni import dcs_patch, list_command, patronictl
from pgcluster.operations.files import private_upload


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
def wait_for_etcd(port: int = 2379, timeout: int = 90):
    """Until this node's etcd member answers over TLS (the members find each other)."""
    if host.get_fact(EtcdHealth, port=port):
        host.noop("etcd answers")
        return
    yield "\n".join([
        f"for _ in $(seq {int(timeout)}); do",
        f"  {EtcdHealth().command(port=port)} | grep -qx yes && exit 0",
        "  sleep 1",
        "done",
        f'echo "etcd does not answer on 127.0.0.1:{int(port)} after {int(timeout)}s: '
        'see journalctl -u etcd" >&2',
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
