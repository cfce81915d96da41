"""Render the files pgcluster writes on nodes, from templates/ and the host's data.

Deploys and unit tests use the same function, so what the tests read is what the nodes
get. Rendering is deterministic (no timestamps), so an unchanged input is no change.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping
from typing import Any

import jinja2

from pgcluster import TEMPLATES_DIR
from pgcluster.model.cluster import Cluster, Node
from pgcluster.model.conninfo import ssl_conninfo
from pgcluster.model.layout import PGPASS, SCRIPTS_DIR, SOCKET_DIR, START_OVERRIDE, Layout


def onoff(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def pgvalue(value: Any) -> str:
    """A Python value as a postgresql.conf value: booleans on/off, strings quoted."""
    if isinstance(value, bool):
        return onoff(value)
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def hba_address(address: str) -> str:
    """An IP becomes a single-host CIDR; a host name is left for pg_hba.conf to resolve."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"{ip}/{ip.max_prefixlen}"


def pgpass_field(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


def shell(value: Any) -> str:
    """A value as one shell word, for files that bash sources (templates/node/node.env.j2)."""
    return shlex.quote(str(value))


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_env.filters.update(onoff=onoff, pgvalue=pgvalue, hba_address=hba_address, pgpass=pgpass_field,
                    shell=shell)


def template_context(data: Mapping[str, Any], node: Node, cluster: Cluster) -> dict[str, Any]:
    return {
        "pg": dict(data),
        "node": node,
        "cluster": cluster,
        "layout": Layout.from_data(data),
        "scripts_dir": SCRIPTS_DIR,
        "socket_dir": SOCKET_DIR,
        "pgpass": PGPASS,
        "start_override": START_OVERRIDE,
        # libpq options of every node-to-node connection (TLS, verify-full).
        "ssl_conninfo": ssl_conninfo(data),
        # Every other node, address:port, as the start guard asks them.
        "peers": " ".join(f"{m.address}:{m.port}" for m in cluster.nodes if m.name != node.name),
    }


def render_template(template: str, ctx: Mapping[str, Any]) -> str:
    return _env.get_template(template).render(**ctx)
