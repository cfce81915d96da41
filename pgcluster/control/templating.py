"""Render the files pgcluster writes on nodes, from templates/ and the host's data.

Deploys and unit tests use the same function, so what the tests read is what the nodes
get. Rendering is deterministic (no timestamps), so an unchanged input is no change.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from collections.abc import Mapping
from functools import partial
from typing import Any

import jinja2

from pgcluster import TEMPLATES_DIR
from pgcluster.model import pgbackrest
from pgcluster.model.cluster import Cluster, Node
from pgcluster.model.conninfo import ssl_conninfo
from pgcluster.model.endpoints import lookup_context, pgbouncer_context
from pgcluster.model.layout import PGPASS, SCRIPTS_DIR, SOCKET_DIR, START_OVERRIDE, Layout
from pgcluster.model.patroni import etcd_environment, patroni_config
from pgcluster.model.sql import literal, name


class UnsafeValue(ValueError):
    """A value that cannot be written into a file safely: validation refuses such values
    before rendering, so this is the last line of defence, never the first."""


def onoff(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def pgvalue(value: Any) -> str:
    """A Python value as a postgresql.conf value: booleans on/off, numbers as they are,
    strings quoted, with PostgreSQL's own escapes (GUC_scanstr: a quote doubled, \\ \\n \\r
    \\t), so no value can end its line or its quotes. The one quoting of postgresql.conf."""
    if isinstance(value, bool):
        return onoff(value)
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    for char, escaped in (("\\", "\\\\"), ("'", "''"), ("\n", "\\n"), ("\r", "\\r"),
                          ("\t", "\\t")):
        text = text.replace(char, escaped)
    if _has_control(text):
        raise UnsafeValue(f"{value!r} holds a control character: not a postgresql.conf value")
    return f"'{text}'"


_BARE = re.compile(r"-?\d+(\.\d+)?[A-Za-z]*|[A-Za-z_][A-Za-z0-9_]*")


def pgtoken(value: Any) -> str:
    """A postgresql.conf value written bare (a number with its unit, an enum word):
    anything else is refused, since only pgvalue may quote."""
    text = onoff(value)
    if not _BARE.fullmatch(text):
        raise UnsafeValue(f"{value!r} is not a bare postgresql.conf value (a number, a size "
                          "or a word)")
    return text


def setting_name(value: Any) -> str:
    """A postgresql.conf setting name (extensions' names have a dot)."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", text):
        raise UnsafeValue(f"{value!r} is not a setting name")
    return text


def _has_control(text: str) -> bool:
    """A control character (a newline, a tab...): it would end or split a line."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def hba_name(value: Any) -> str:
    """A database or role name as a pg_hba.conf field: bare when it is a plain name,
    otherwise double-quoted (a quote doubled); never a line break."""
    text = str(value)
    if _has_control(text):
        raise UnsafeValue(f"{value!r} holds a control character: not a pg_hba.conf field")
    if re.fullmatch(r"[a-z_][a-z0-9_]*", text) and text not in ("all", "sameuser",
                                                                "samerole", "replication"):
        return text
    return '"' + text.replace('"', '""') + '"'


def hba_address(address: str) -> str:
    """An IP becomes a single-host CIDR, a network stays one, and a host name is left for
    pg_hba.conf to resolve; anything else (spaces, quotes, several words) is refused."""
    text = str(address)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return f"{ip}/{ip.max_prefixlen}"
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        return text
    raise UnsafeValue(f"{address!r} is not an address, a network or a host name")


def pgpass_field(value: Any) -> str:
    text = str(value)
    if _has_control(text):
        raise UnsafeValue("a .pgpass field cannot hold a control character (a newline...)")
    return text.replace("\\", "\\\\").replace(":", "\\:")


def shell(value: Any) -> str:
    """A value as one shell word, for files that bash sources (templates/node/node.env.j2)."""
    return shlex.quote(str(value))


def shell_line(value: Any) -> str:
    """A value as one shell word on one line, for env files read line by line as well as
    by bash (pgcluster/node/health-check.py): a control character is refused."""
    text = str(value)
    if _has_control(text):
        raise UnsafeValue(f"{value!r} holds a control character: not one line of an env file")
    return shlex.quote(text)


def oneline(value: Any) -> str:
    """A value shown inside a comment: control characters (a newline would end the
    comment and start a line of configuration or SQL) become '?'."""
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in str(value))


def word(value: Any) -> str:
    """One bare word of haproxy.cfg or pgbouncer.ini: a name, an address, a path (letters,
    digits and . _ - : / [ ]); anything that could split or end a line is refused."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9._:/\[\]-]+", text):
        raise UnsafeValue(f"{value!r} is not one plain word (a name, an address or a path)")
    return text


def quoted(value: Any) -> str:
    """A double-quoted field with its quotes doubled (PgBouncer's auth_file)."""
    text = str(value)
    if _has_control(text):
        raise UnsafeValue(f"{value!r} holds a control character: not a quoted field")
    return '"' + text.replace('"', '""') + '"'


def safe_path(value: Any) -> str:
    """A path written bare (logrotate, cron): absolute, letters, digits and ._/- only."""
    text = str(value)
    if not re.fullmatch(r"/[A-Za-z0-9._/-]*", text):
        raise UnsafeValue(f"{value!r} is not a plain absolute path")
    return text


def cron_schedule(value: Any) -> str:
    """Five cron fields of digits, names, * , - / (validation checked each in range)."""
    text = str(value)
    if len(text.split()) != 5 or not re.fullmatch(r"[0-9A-Za-z*,/ -]+", text):
        raise UnsafeValue(f"{value!r} is not a cron schedule")
    return text


def yaml_scalar(value: Any) -> str:
    """A value as one YAML scalar (Patroni's configuration): null, true/false and numbers
    bare, every string single-quoted (a quote doubled, YAML's only escape there), so that no
    string is read as a number, a boolean (off, yes) or more YAML. A string with a control
    or other non-printable character (a line break would fold inside the quotes) is refused."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeValue(f"{value!r} is not a number YAML readers agree on")
        return repr(value)
    text = str(value)
    if not text.isprintable():
        raise UnsafeValue(f"{value!r} holds a control or non-printable character: not a YAML "
                          "string pgcluster writes")
    return "'" + text.replace("'", "''") + "'"


_YAML_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# YAML 1.1 (PyYAML, so Patroni) reads these bare words as booleans or null.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def yaml_key(value: Any) -> str:
    """A mapping key (a setting, tag or slot name, an initdb option): bare when it is a
    plain name YAML reads as a string, else quoted as yaml_scalar quotes (a node may be
    called "on", and its slot too)."""
    text = str(value)
    if _YAML_KEY.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return yaml_scalar(text)


_ENV_VALUE = re.compile(r"[A-Za-z0-9_.,:/=@+\[\]-]+")


def env_value(value: Any) -> str:
    """A value of a systemd EnvironmentFile (/etc/default/etcd), written bare: names,
    numbers, paths and URLs only. Quotes, backslashes, $ and spaces, which systemd would
    interpret, are refused (validation lets none of them through)."""
    text = str(value)
    if not _ENV_VALUE.fullmatch(text):
        raise UnsafeValue(f"{value!r} is not a plain EnvironmentFile value")
    return text


def synchronous_names(names: list[str]) -> str:
    """synchronous_standby_names for these standbys, each a double-quoted name."""
    quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    return f"FIRST 1 ({quoted})" if names else ""


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_env.filters.update(onoff=onoff, pgvalue=pgvalue, pgtoken=pgtoken, hba_name=hba_name,
                    hba_address=hba_address, pgpass=pgpass_field, shell=shell,
                    sql=literal, ident=name, synchronous_names=synchronous_names,
                    oneline=oneline, path=safe_path, cron=cron_schedule,
                    setting=setting_name, yaml=yaml_scalar, yamlkey=yaml_key,
                    envvalue=env_value, word=word, quoted=quoted,
                    shellline=shell_line)


def template_context(data: Mapping[str, Any], node: Node, cluster: Cluster,
                     engine: str = "manual", backup_engine: str = "pg_basebackup"
                     ) -> dict[str, Any]:
    s3 = pgbackrest.s3_repository(data, [o.name for o in cluster.objectstore_hosts],
                                  Layout.from_data(data).tls_ca_file)
    return {
        "pg": dict(data),
        # Who starts PostgreSQL and fails it over: "manual" (Debian's unit, pgcluster's
        # commands) or "patroni" (pgcluster.steps.live.engine).
        "engine": engine,
        # Who takes the backups and archives WAL (Topology.backup_engine), and pgBackRest's
        # repositories (pgcluster.model.pgbackrest): repo2 in object storage, or None.
        "backup_engine": backup_engine,
        "s3": s3,
        "pgbackrest_repos": pgbackrest.repositories(s3),
        "pgbackrest_log_dir": pgbackrest.LOG_DIR,
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
        # Patroni's and etcd's files as data (pgcluster.model.patroni), built only by the
        # templates that call them: templates/patroni/patroni.yml.j2, templates/etcd/etcd.j2.
        "patroni_config": partial(patroni_config, data, node, cluster),
        "etcd_environment": partial(etcd_environment, data, node, cluster),
        # PgBouncer's files and its verifier lookup (pgcluster.model.endpoints).
        "pgbouncer": pgbouncer_context(data),
        "lookup": lookup_context(data),
    }


def render_template(template: str, ctx: Mapping[str, Any]) -> str:
    return _env.get_template(template).render(**ctx)
