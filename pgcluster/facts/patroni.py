"""What the high-availability engine on a node is right now: Patroni's and etcd's services,
Debian's PostgreSQL unit, and the cluster as Patroni reports it."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase

from pgcluster import NODE_DIR
from pgcluster.facts.postgres import query_command, query_rows
from pgcluster.model.layout import PATRONI_CONFIG
from pgcluster.model.patroni import PatroniOutputError, PatroniView, parse_members, patronictl

_NONE = "__pgcluster_no_patroni__"
PENDING_SETTINGS = "select name from pg_settings where pending_restart order by name"
BACKPORT = NODE_DIR / "patroni-backport.py"


class HaServices(FactBase):
    """For patroni, etcd and the node's PostgreSQL unit: active? enabled? And whether
    Patroni's configuration is there."""

    def command(self, postgresql_service: str) -> str:
        units = " ".join(shlex.quote(u) for u in ("patroni", "etcd", postgresql_service))
        return (
            f"for u in {units}; do a=$(systemctl is-active \"$u\" 2>/dev/null); "
            "e=$(systemctl is-enabled \"$u\" 2>/dev/null); "
            "echo \"$u ${a:-none} ${e:-none}\"; done; "
            f"[ -f {PATRONI_CONFIG} ] && echo 'config yes' || echo 'config no'"
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for line in output:
            name, _, rest = line.partition(" ")
            if name == "config":
                state["patroni_config"] = rest.strip() == "yes"
                continue
            active, _, enabled = rest.partition(" ")
            key = name if name in ("patroni", "etcd") else "postgresql"
            state[key] = {"active": active == "active", "enabled": enabled == "enabled"}
        return state

    def default(self) -> dict[str, Any]:
        return {}


class PatroniMembers(FactBase):
    """The cluster as Patroni reports it on this node (patronictl list, read from etcd):
    a PatroniView, or None where Patroni is not configured or etcd does not answer."""

    def command(self) -> str:
        return (f"if [ -f {PATRONI_CONFIG} ]; then {patronictl('list', '-f', 'json')} "
                f"2>/dev/null || echo {_NONE}; else echo {_NONE}; fi")

    def process(self, output: list[str]) -> PatroniView | None:
        text = "\n".join(output)
        if _NONE in text:
            return None
        try:
            return parse_members(text)
        except PatroniOutputError:
            return None

    def default(self) -> None:
        return None


class EtcdHealth(FactBase):
    """Whether the etcd cluster answers this host at `endpoints` (comma-separated client
    URLs) with the client certificate `tls` (CA, certificate, key): a linearizable read,
    which needs a quorum. A member asks itself at its own client URL, the one its
    certificate names; a node outside the `etcd` group asks every member, as its Patroni
    does."""

    def command(self, endpoints: str, tls: tuple[str, str, str]) -> str:
        ca, cert, key = (shlex.quote(path) for path in tls)
        return (f"ETCDCTL_API=3 etcdctl --endpoints={shlex.quote(endpoints)} --cacert={ca} "
                f"--cert={cert} --key={key} --command-timeout=3s "
                "get --keys-only --limit=1 pgcluster-probe >/dev/null 2>&1 "
                "&& echo yes || echo no")

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "yes"


class PendingSettings(FactBase):
    """The settings this node's PostgreSQL waits for a restart to take (pg_settings'
    pending_restart after a reload of postgresql.conf): names, empty when none or when
    the server is down. Patroni flags only what it changed itself (the DCS's parameters),
    so pgcluster's own file is checked here."""

    def command(self, port: int = 5432) -> str:
        return query_command(PENDING_SETTINGS, port=port)

    def process(self, output: list[str]) -> list[str]:
        rows = query_rows(output) or []
        return [row[0] for row in rows if row and row[0]]

    def default(self) -> list[str]:
        return []


class PatroniBackport(FactBase):
    """Whether Patroni's etcd3 leader-key renewal is fixed on this node
    (pgcluster/node/patroni-backport.py --check): "fixed", "unfixed" (Patroni 3.0.2's
    code) or "unknown" (another version, or Patroni not installed)."""

    def command(self) -> str:
        return (f"python3 -c {shlex.quote(BACKPORT.read_text())} --check 2>/dev/null "
                "|| echo unknown")

    def process(self, output: list[str]) -> str:
        return output[-1].strip() if output else "unknown"

    def default(self) -> str:
        return "unknown"
