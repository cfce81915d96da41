"""Validation from inside an inventory file, before pyinfra connects to any host.

pyinfra loads group data only after the inventory file and connects right after that, so
an inventory that calls `check_inventory(globals(), __file__)` reads the same group data
files itself (group_data/all.py, then the inventory's own group files) and stops with
every problem listed before any connection is made. It also tells pgcluster.secrets which
inventory's secrets file the group data reads.
"""

from __future__ import annotations

import ast
import runpy
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pgcluster import GROUP_DATA_DIR
from pgcluster.control import secrets, tls
from pgcluster.errors import ConfigError
from pgcluster.model import validation
from pgcluster.model.cluster import Cluster, HostEntry


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return names


def load_group_data(group: str, directory: Path = GROUP_DATA_DIR) -> dict[str, Any]:
    """A group data file's values, as pyinfra reads them (imported names are not data)."""
    path = directory / f"{group}.py"
    if not path.is_file():
        return {}
    values = runpy.run_path(str(path))
    imported = _imported_names(path)
    return {
        key: value
        for key, value in values.items()
        if not key.startswith("__") and key not in imported
        and not isinstance(value, ModuleType) and not callable(value)
    }


def inventory_groups(module_globals: Mapping[str, Any]) -> dict[str, list]:
    """The host groups of an inventory module, as pyinfra reads them."""
    groups = {}
    for key, value in module_globals.items():
        if key.startswith("_"):
            continue
        hosts = value[0] if isinstance(value, tuple) else value
        if isinstance(hosts, list) and all(isinstance(h, str | tuple) for h in hosts):
            groups[key] = hosts
    return groups


def host_entries(module_globals: Mapping[str, Any], inventory_file: str) -> list[HostEntry]:
    groups = inventory_groups(module_globals)
    file_group = Path(inventory_file).stem
    base = load_group_data("all")
    order: list[str] = []
    host_data: dict[str, dict] = {}
    host_groups: dict[str, list[str]] = {}
    for group, hosts in groups.items():
        for host in hosts:
            name, data = host if isinstance(host, tuple) else (host, {})
            if name not in host_data:
                order.append(name)
                host_data[name] = {}
                host_groups[name] = []
            host_data[name].update(data)
            host_groups[name].append(group)
    entries = []
    for name in order:
        merged = dict(base)
        for group in [*host_groups[name], file_group]:
            merged.update(load_group_data(group))
        merged.update(host_data[name])
        entries.append(HostEntry(name, (*host_groups[name], file_group), merged))
    return entries


def check_inventory(module_globals: Mapping[str, Any], inventory_file: str,
                    secrets_of: str | None = None) -> Cluster:
    """Validate the inventory and its group data. It first names the inventory for
    pgcluster.secrets, so that group data (here and when pyinfra loads it next) reads this
    inventory's secrets file and CA, or those of `secrets_of` (an inventory file) when
    its nodes belong to another inventory's cluster, as the lab's scratch node does."""
    secrets.use_inventory(secrets_of or inventory_file)
    return validate_inventory(host_entries(module_globals, inventory_file))


def validate_inventory(entries: Iterable[HostEntry]) -> Cluster:
    """Every check on an inventory and its data (the model's, the secrets', the TLS files'):
    raise ConfigError listing every problem, or return the validated cluster."""
    entries = list(entries)
    found = validation.problems(entries)
    if entries:
        cluster = Cluster.from_entries(entries)
        found += secrets.problems(entries) + tls.problems(entries, cluster)
    if found:
        raise ConfigError(found)
    return Cluster.from_entries(entries)
