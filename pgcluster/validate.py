"""Checks on the inventory and its data, run before any host is touched.

Every problem is reported at once, each with what is wrong and how to fix it.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pgcluster import secrets, tls
from pgcluster.errors import ConfigError
from pgcluster.model import (
    ROLES,
    SLOT_NAME_MAX,
    Cluster,
    HostEntry,
    Node,
    is_valid_slot_name,
    role_of,
)
from pgcluster.sql import is_plain_identifier

SUPPORTED_VERSIONS = (15,)
IDENTIFIERS = ("database_name", "database_schema", "admin_user", "replication_user",
               "rewind_user", "app_user")
ROLE_KEYS = ("admin_user", "replication_user", "rewind_user", "app_user")
REQUIRED_SECRETS = {key: secrets.env_name(key) for key in secrets.SECRET_KEYS}


def problems(entries: Iterable[HostEntry]) -> list[str]:
    entries = list(entries)
    found: list[str] = []
    if not entries:
        return ["the inventory has no hosts: declare them in the groups primary, standby, readonly"]

    found += _role_problems(entries)
    cluster = Cluster.from_entries(entries)
    found += _name_problems(cluster)
    found += _port_problems(cluster)
    found += _data_problems(entries, cluster)
    found += _secret_problems(entries)
    found += _access_problems(entries)
    found += _tls_problems(entries, cluster)
    return found


def check(entries: Iterable[HostEntry]) -> Cluster:
    """Raise ConfigError listing every problem, or return the validated cluster."""
    entries = list(entries)
    found = problems(entries)
    if found:
        raise ConfigError(found)
    return Cluster.from_entries(entries)


def _role_problems(entries: list[HostEntry]) -> list[str]:
    found = []
    primaries = []
    for entry in entries:
        roles = role_of(entry)
        if not roles:
            found.append(
                f"host {entry.name} has no role: add it to exactly one of the inventory groups "
                f"{', '.join(ROLES)}"
            )
        elif len(roles) > 1:
            found.append(
                f"host {entry.name} is in several role groups ({', '.join(roles)}): "
                "keep it in exactly one"
            )
        elif roles[0] not in ROLES:
            found.append(
                f"host {entry.name} has the unknown role {roles[0]!r}: use one of "
                f"{', '.join(ROLES)}"
            )
        elif roles[0] == "primary":
            primaries.append(entry.name)
    if not primaries:
        found.append(
            "no primary: put exactly one host in the inventory group `primary` "
            "(e.g. primary = [\"db1.example.net\"])"
        )
    elif len(primaries) > 1:
        found.append(
            f"more than one primary ({', '.join(primaries)}): keep exactly one host in the "
            "group `primary`; the others belong in `standby` or `readonly`"
        )
    return found


def _name_problems(cluster: Cluster) -> list[str]:
    found = []
    by_slot: dict[str, list[str]] = defaultdict(list)
    for node in cluster.nodes:
        if not is_valid_slot_name(node.slot):
            found.append(
                f"node name {node.name!r} (host {node.host}) gives the replication slot name "
                f"{node.slot!r}, which is not valid (1 to {SLOT_NAME_MAX} characters of a-z, "
                "0-9 and _ once lower-cased, with other characters turned into _): set a "
                "shorter `node_name` for this host"
            )
        by_slot[node.slot].append(node.name)
    for slot, names in by_slot.items():
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} share the replication slot name {slot!r} once "
                "normalised: give them distinct `node_name`s"
            )
    return found


def _port_problems(cluster: Cluster) -> list[str]:
    found = []
    published: dict[int, list[str]] = defaultdict(list)
    endpoints: dict[tuple[str, int], list[str]] = defaultdict(list)
    for node in cluster.nodes:
        ports = (("postgresql_port", node.port), ("published_port", node.published_port))
        for label, port in ports:
            if port is not None and not 1 <= port <= 65535:
                found.append(f"{label} = {port} on {node.name} is not a TCP port (1-65535)")
        if node.published_port is not None:
            published[node.published_port].append(node.name)
        endpoints[(node.address, node.port)].append(node.name)
    for port, names in sorted(published.items()):
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} both publish port {port}: give each node its "
                "own `published_port`"
            )
    for (address, port), names in sorted(endpoints.items()):
        if len(names) > 1:
            found.append(
                f"nodes {' and '.join(names)} share the address {address}:{port}: each node "
                "needs its own `node_address` (or port)"
            )
    return found


def _data_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    found = []
    versions = {entry.data.get("postgresql_version") for entry in entries}
    for version in sorted(versions, key=str):
        if version not in SUPPORTED_VERSIONS:
            found.append(
                f"postgresql_version = {version!r} is not supported: Debian 12 packages "
                f"PostgreSQL {', '.join(map(str, SUPPORTED_VERSIONS))}; set postgresql_version "
                "= 15 in group_data/all.py"
            )
    if len(versions) > 1:
        found.append("all nodes must run the same postgresql_version")

    replicas = len(cluster.nodes) - 1
    for entry in entries:
        data = entry.data
        wal_level = data.get("wal_level", "replica")
        if wal_level not in ("replica", "logical"):
            found.append(
                f"wal_level = {wal_level!r} on {entry.name} cannot feed streaming replicas: "
                "use 'replica' (or 'logical')"
            )
        for key in ("max_wal_senders", "max_replication_slots"):
            value = data.get(key)
            if value is not None and int(value) < replicas + 1:
                found.append(
                    f"{key} = {value} on {entry.name} is too low for {replicas} replicas plus "
                    f"a base backup: set it to at least {replicas + 1}"
                )
        archive_mode = data.get("archive_mode", "on")
        if archive_mode not in ("on", "off", "always"):
            found.append(f"archive_mode = {archive_mode!r} on {entry.name}: use on, off or always")
    for key in IDENTIFIERS:
        for value in sorted({str(e.data.get(key)) for e in entries}):
            if not is_plain_identifier(value):
                found.append(
                    f"{key} = {value!r} is not a plain SQL identifier: use lower-case "
                    "letters, digits and _ (starting with a letter or _), at most 63"
                )
    roles = [{e.data.get(key) for e in entries} for key in ROLE_KEYS]
    if any(roles[i] & roles[j] for i in range(len(roles)) for j in range(i + 1, len(roles))):
        found.append(f"{', '.join(ROLE_KEYS[:-1])} and {ROLE_KEYS[-1]} must be different "
                     "roles")
    if "postgres" in set().union(*roles):
        found.append("the postgres role is the local superuser (peer, never over the "
                     "network): choose other names for admin_user, replication_user, "
                     "rewind_user and app_user")
    names = {n.name for n in cluster.nodes}
    for entry in entries:
        unknown = [s for s in entry.data.get("synchronous_standbys") or [] if s not in names]
        if unknown:
            found.append(
                f"synchronous_standbys on {entry.name} names {', '.join(unknown)}, not nodes "
                f"of this cluster ({', '.join(sorted(names))})"
            )
    node_names = [n.name for n in cluster.nodes]
    duplicates = sorted({n for n in node_names if node_names.count(n) > 1})
    if duplicates:
        found.append(f"node names must be unique; repeated: {', '.join(duplicates)}")
    return found


def _how_to_supply(key: str) -> str:
    return (
        f"export {REQUIRED_SECRETS[key]}=..., or put {REQUIRED_SECRETS[key]}=... in "
        f"{secrets.shown(secrets.secrets_file())} (mode 0600), or generate every missing "
        f"password once with `python -m pgcluster --inventory {secrets.inventory_file()} "
        "secrets init`"
    )


def _secret_problems(entries: list[HostEntry]) -> list[str]:
    """Every password present, none of them the lab's public defaults outside the lab, and
    none that would break the files they are written to."""
    found = []
    for key in REQUIRED_SECRETS:
        missing = sorted(e.name for e in entries if not e.data.get(key))
        if missing:
            found.append(
                f"{key} is not set for {', '.join(missing)}: {_how_to_supply(key)}. It is "
                "never given a default outside the Docker lab"
            )
        public = sorted(
            e.name for e in entries
            if e.data.get(key) and not e.data.get("allow_lab_default_passwords")
            and e.data.get(key) in secrets.LAB_DEFAULTS.values()
        )
        if public:
            found.append(
                f"{key} for {', '.join(public)} is one of the Docker lab's documented "
                "passwords, which are public and accepted only by the lab inventory: choose "
                f"your own ({_how_to_supply(key)})"
            )
        unusable = sorted(e.name for e in entries if e.data.get(key)
                          and any(ord(c) < 32 or ord(c) == 127 for c in str(e.data[key])))
        if unusable:
            found.append(f"{key} for {', '.join(unusable)} contains control characters "
                         "(a newline, a tab...): they cannot go into .pgpass; choose another")
    return found


def _access_problems(entries: list[HostEntry]) -> list[str]:
    found = []
    for entry in entries:
        networks = entry.data.get("client_networks") or []
        if isinstance(networks, str):
            found.append(f"client_networks on {entry.name} must be a list of networks, "
                         f"e.g. [{networks!r}]")
            continue
        for network in networks:
            try:
                ipaddress.ip_network(str(network), strict=False)
            except ValueError:
                found.append(f"client_networks on {entry.name}: {network!r} is not a "
                             "network in CIDR notation (e.g. 10.0.1.0/24 or 10.0.1.5/32)")
    return found


def _tls_problems(entries: list[HostEntry], cluster: Cluster) -> list[str]:
    """TLS settings that would stop the deploy half-way (or a server from starting)."""
    found = []
    for entry in entries:
        data, name = entry.data, entry.name
        algorithm = data.get("tls_key_algorithm", "ec-p256")
        if algorithm not in tls.KEY_ALGORITHMS:
            found.append(f"tls_key_algorithm = {algorithm!r} on {name}: use one of "
                         f"{', '.join(tls.KEY_ALGORITHMS)}")
        renew = int(data.get("tls_renew_days", 30))
        for key in ("tls_cert_days", "tls_ca_days"):
            if int(data.get(key, 365)) <= renew:
                found.append(f"{key} = {data.get(key)} on {name} is not longer than "
                             f"tls_renew_days = {renew}: every run would renew")
        if data.get("tls_min_protocol_version", "TLSv1.2") not in ("TLSv1.2", "TLSv1.3"):
            found.append(f"tls_min_protocol_version on {name}: use TLSv1.2 or TLSv1.3")
        found += _supplied_tls_problems(entry, cluster.node(name), renew)
    return found


def _read(entry: HostEntry, key: str, found: list[str]) -> bytes | None:
    value = entry.data.get(key)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        found.append(f"{key} = {value!r} on {entry.name}: no such file on this machine")
        return None
    return path.read_bytes()


def _supplied_tls_problems(entry: HostEntry, node: Node, renew_days: int) -> list[str]:
    found: list[str] = []
    data, name = entry.data, entry.name
    ca_file = _read(entry, "tls_ca_file", found)
    ca_key = _read(entry, "tls_ca_key_file", found)
    cert = _read(entry, "tls_cert_file", found)
    key = _read(entry, "tls_key_file", found)
    if data.get("tls_ca_key_file") and not data.get("tls_ca_file"):
        found.append(f"tls_ca_key_file on {name} needs tls_ca_file (the CA's certificate)")
    if bool(data.get("tls_cert_file")) != bool(data.get("tls_key_file")):
        found.append(f"tls_cert_file and tls_key_file on {name} go together")
    if data.get("tls_cert_file") and not data.get("tls_ca_file"):
        found.append(f"tls_cert_file on {name} needs tls_ca_file (the CA that signed it)")
    if data.get("tls_ca_file") and not data.get("tls_ca_key_file") \
            and not data.get("tls_cert_file"):
        found.append(f"tls_ca_file on {name} without tls_ca_key_file: give this host its own "
                     "tls_cert_file and tls_key_file, or the CA's key so pgcluster can issue "
                     "them")
    try:
        cas = tls.load_certs(ca_file) if ca_file else []
        if ca_file and ca_key and not tls.same_key(cas[0], tls.load_key(ca_key)):
            found.append(f"tls_ca_key_file on {name} is not the key of tls_ca_file's "
                         "(first) certificate")
        if ca_key and cas and tls.expires_within(cas[0], renew_days):
            found.append(f"the CA in tls_ca_file expires on "
                         f"{cas[0].not_valid_after_utc:%Y-%m-%d}: renew it")
        if cert and key and cas:
            names = tls.wanted_names(node.name, node.address, data.get("tls_extra_names"))
            found += [f"tls_cert_file on {name} {problem}" for problem in tls.chain_problems(
                tls.load_certs(cert)[0], tls.load_key(key), cas, names, renew_days)]
    except ValueError as exc:
        found.append(f"the TLS files of {name} cannot be read as PEM ({exc})")
    return found
