"""Validation from inside an inventory file, before pyinfra connects to any host.

pyinfra loads group data only after the inventory file and connects right after that, so
an inventory that calls `check_inventory(globals(), __file__)` reads the same group data
files itself (group_data/all.py, then the inventory's own group files) and stops with
every problem listed before any connection is made. It also tells pgcluster.secrets which
inventory's secrets file the group data reads. The types every value is checked by are
group_data/all.py's annotations (see pgcluster.model.settings).
"""

from __future__ import annotations

import ast
import runpy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pyinfra.api.arguments import all_argument_meta
from pyinfra.api.connectors import get_all_connectors

from pgcluster import GROUP_DATA_DIR
from pgcluster.control import secrets, tls
from pgcluster.errors import ConfigError
from pgcluster.model import validation
from pgcluster.model.cluster import Cluster, HostEntry
from pgcluster.model.settings import Schema, schema_from_annotations, suggestion


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return names


def _run_group_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A group data file's values, as pyinfra reads them (imported names are not data),
    and its annotations (the types; pyinfra skips __annotations__ as it skips __file__)."""
    values = runpy.run_path(str(path))
    imported = _imported_names(path)
    data = {
        key: value
        for key, value in values.items()
        if not key.startswith("__") and key not in imported
        and not isinstance(value, ModuleType) and not callable(value)
    }
    return data, dict(values.get("__annotations__", {}))


def load_group_data(group: str, directory: Path = GROUP_DATA_DIR) -> dict[str, Any]:
    """A group data file's values, as pyinfra reads them (imported names are not data)."""
    path = directory / f"{group}.py"
    if not path.is_file():
        return {}
    return _run_group_file(path)[0]


def group_data_schema(directory: Path = GROUP_DATA_DIR) -> Schema:
    """Every tunable's type, from group_data/all.py's annotations (with all.py's values, for
    the examples in messages)."""
    data, annotations = _run_group_file(directory / "all.py")
    return schema_from_annotations(annotations, data)


@cache
def _pyinfra_keys() -> frozenset[str]:
    """Host data keys pyinfra and its connectors read (_sudo, ssh_user, docker_identifier...):
    group data may set them too."""
    keys = set(all_argument_meta)
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}))
    return frozenset(keys)


def group_file_problems(groups: Iterable[str], schema: Schema,
                        directory: Path = GROUP_DATA_DIR) -> list[str]:
    """Keys of group data files that nothing reads: a typo (max_conections = 200) must not
    be ignored silently. all.py is the list, so each of its keys needs a type there."""
    found = []
    all_data, _ = _run_group_file(directory / "all.py")
    for key in all_data:
        if schema.type_of(key) is None:
            found.append(f"group_data/all.py sets {key} without a type: declare one, e.g. "
                         f"{key}: Int(0, 100) = ... (see pgcluster/model/settings.py)")
    known = schema.known() | _pyinfra_keys()
    for group in dict.fromkeys(groups):
        path = directory / f"{group}.py"
        if group == "all" or not path.is_file():
            continue
        for key in _run_group_file(path)[0]:
            if key not in known:
                found.append(f"group_data/{group}.py sets {key}, which pgcluster does not "
                             f"know{suggestion(key, schema.known())}: every tunable is in "
                             "group_data/all.py, with its type")
    return found


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


@dataclass
class _Gathered:
    entries: list[HostEntry]
    origins: dict[tuple[str, str], str]  # (host, key) -> where its value was set
    groups: list[str]  # the group data files that apply, in order


def _gather(module_globals: Mapping[str, Any], inventory_file: str) -> _Gathered:
    groups = inventory_groups(module_globals)
    file_group = Path(inventory_file).stem
    shown_inventory = secrets.shown(Path(inventory_file).resolve())
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
    gathered = _Gathered([], {}, [])
    for name in order:
        sources = [("group_data/all.py", base)]
        for group in [*host_groups[name], file_group]:
            sources.append((f"group_data/{group}.py", load_group_data(group)))
            gathered.groups.append(group)
        sources.append((f"host data in {shown_inventory}", host_data[name]))
        merged: dict[str, Any] = {}
        for where, data in sources:
            merged.update(data)
            gathered.origins.update({(name, key): where for key in data})
        gathered.entries.append(HostEntry(name, (*host_groups[name], file_group), merged))
    return gathered


def host_entries(module_globals: Mapping[str, Any], inventory_file: str) -> list[HostEntry]:
    return _gather(module_globals, inventory_file).entries


def check_inventory(module_globals: Mapping[str, Any], inventory_file: str,
                    secrets_of: str | None = None) -> Cluster:
    """Validate the inventory and its group data. It first names the inventory for
    pgcluster.secrets, so that group data (here and when pyinfra loads it next) reads this
    inventory's secrets file and CA, or those of `secrets_of` (an inventory file) when
    its nodes belong to another inventory's cluster, as the lab's scratch node does."""
    secrets.use_inventory(secrets_of or inventory_file)
    gathered = _gather(module_globals, inventory_file)
    schema = group_data_schema()
    return validate_inventory(gathered.entries, schema,
                              origin=lambda host, key: gathered.origins.get((host, key)),
                              earlier=group_file_problems(gathered.groups, schema))


def validate_inventory(entries: Iterable[HostEntry], schema: Schema | None = None,
                       origin: validation.Origin | None = None,
                       earlier: Iterable[str] = ()) -> Cluster:
    """Every check on an inventory and its data (the model's, the secrets', the TLS files'):
    raise ConfigError listing every problem (after those found `earlier`), or return the
    validated cluster. The schema defaults to group_data/all.py's."""
    entries = list(entries)
    schema = schema or group_data_schema()
    found = [*earlier, *validation.problems(entries, schema, origin)]
    if entries:
        # Only values their types accept: a wrong one is already reported, plainly.
        usable = validation.usable_entries(entries, schema)
        cluster = Cluster.from_entries(usable)
        found += secrets.problems(usable) + tls.problems(usable, cluster)
    if found:
        raise ConfigError(found)
    return Cluster.from_entries(entries)
