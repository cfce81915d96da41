"""Typed settings: every value is checked by its type before any host is touched, with a
message that names the value, says what is wrong and gives a value that is right; a wrong
type never escapes as a Python exception."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pgcluster.control.preflight import (
    group_data_schema,
    group_file_problems,
    load_group_data,
    validate_inventory,
)
from pgcluster.errors import ConfigError
from pgcluster.model import settings
from pgcluster.model.cluster import HostEntry
from pgcluster.model.settings import (
    HOST_DATA,
    RENDERED,
    AbsolutePath,
    Bool,
    Cron,
    Duration,
    Enum,
    Int,
    Size,
    Token,
    postgresql_settings,
)
from tests.unit.helpers import SCHEMA, three_nodes


def with_value(key: str, value: Any, hosts: tuple[str, ...] = ("db1", "db2", "db3")
               ) -> list[HostEntry]:
    """The valid three-node inventory with `key = value` on `hosts`."""
    return [HostEntry(e.name, e.groups, {**e.data, key: value}) if e.name in hosts else e
            for e in three_nodes()]


def refused(entries: list[HostEntry]) -> list[str]:
    """The problems validation reports: it must raise ConfigError, nothing else."""
    with pytest.raises(ConfigError) as caught:
        validate_inventory(entries)
    return caught.value.problems


# key, a wrong value, what the message must say about it.
BAD_VALUES = [
    ("max_connections", "lots", "max_connections = 'lots' is not a whole number: use a whole "
                                "number from 1 to 262143, e.g. max_connections = 100"),
    ("max_connections", 0, "is out of range: use a whole number from 1 to 262143"),
    ("max_connections", True, "is not a whole number"),
    ("max_connections", 100.5, "is not a whole number"),
    ("max_wal_senders", -1, "is out of range"),
    ("shared_buffers", 128, "shared_buffers = 128 has no unit (PostgreSQL would read it as 128 "
                            "x 8kB)"),
    ("shared_buffers", "128mb", "has a unit PostgreSQL does not know (case matters)"),
    ("shared_buffers", "64kB", "is out of range: use a size with a unit, kB, MB, GB or TB, "
                               "from 128kB"),
    ("shared_buffers", "lots", "e.g. shared_buffers = '128MB'"),
    ("shared_buffers", "\u0661\u0662\u0668MB", "is not a size"),  # not ASCII digits
    ("wal_keep_size", "1 GB", "has a space between the number and its unit"),
    ("max_slot_wal_keep_size", -2, "is out of range"),
    ("backup_retention_days", -1, "backup_retention_days = -1 is out of range: use a whole "
                                  "number from 1 to 36500, e.g. backup_retention_days = 7"),
    ("backup_retention_days", "7", "is not a whole number"),
    ("archive_mode", "yes", "archive_mode = 'yes' is not one of its values: use one of 'on', "
                            "'off', 'always'"),
    ("archive_mode", True, "is not one of its values"),
    ("wal_level", "hot_standby", "use one of 'replica', 'logical', 'minimal'"),
    ("synchronous_commit", "sometimes", "is not one of its values"),
    ("postgresql_version", "15", "postgresql_version = '15' is not supported: Debian 12 "
                                 "packages PostgreSQL 15"),
    ("hot_standby", "yes", "hot_standby = 'yes' is not True or False"),
    ("data_checksums", 1, "is not True or False"),
    ("archive_timeout", "1y", "is not a duration: use a duration: whole s or a string with "
                              "ms, s, min, h or d"),
    ("archive_timeout", -5, "is out of range"),
    ("archive_timeout", "60 s", "is not a duration"),
    ("replica_wait_timeout", 0, "is out of range: use a whole number of seconds from 1"),
    ("promote_timeout", "60", "is not a whole number of seconds"),
    ("failover_max_receive_age", -1, "is out of range"),
    ("start_guard_wait", None, "is not a whole number of seconds"),
    ("failover_max_lag_bytes", "16MB", "is not a whole number"),
    ("backup_root_must_be_mounted", "no", "is not True or False"),
    ("backup_free_space_factor", "1.0", "is not a number"),
    ("backup_compress_level", 10, "is out of range: use a whole number from 1 to 9"),
    ("backup_checkpoint", "slow", "use one of 'fast', 'spread'"),
    ("backup_full_schedule", "0 25 * * *", "has the hour 25, out of range (0-23)"),
    ("backup_full_schedule", "60 2 * * *", "has the minute 60, out of range (0-59)"),
    ("backup_incr_schedule", "0 2 * *", "has 4 fields, not 5"),
    ("backup_incr_schedule", "0 2 * * * *", "has 6 fields, not 5"),
    ("backup_incr_schedule", "0 2 0 * *", "has the day of month 0, out of range (1-31)"),
    ("backup_incr_schedule", "0 2 * 13 *", "has the month 13, out of range (1-12)"),
    ("backup_verify_schedule", "0 2 * * 8", "has the day of week 8, out of range (0-7)"),
    ("backup_verify_schedule", "*/0 * * * *", "has the minute step 0, not from 1 to 59"),
    ("backup_verify_schedule", "0 5-2 * * *", "has the hour range '5-2', which runs backwards"),
    ("backup_retention_schedule", "0 2 * jan,feb *",
     "has a name in a list or range, 'jan,feb' (month)"),
    ("backup_retention_schedule", "0 2 * * funday",
     "has 'funday' as its day of week, which is not a number"),
    ("backup_retention_schedule", 5, "is not a cron schedule (a string)"),
    ("backup_retention_schedule", "@reboot", "contains '@'"),
    ("database_name", "Proyecto", "database_name = 'Proyecto' is not a plain SQL identifier"),
    ("app_user", "app-user", "is not a plain SQL identifier: use a plain SQL identifier: "
                             "lower-case letters, digits and _"),
    ("database_schema", "x" * 64, "is not a plain SQL identifier"),
    ("backup_registry_database", 5, "is not a plain SQL identifier"),
    ("backup_root", "backups", "backup_root = 'backups' is not an absolute path"),
    ("backup_root", "/backups/../etc", "contains .."),
    ("backup_log_dir", "/var/log/pg cluster", "contains ' '"),
    ("tls_dir", 5, "is not a path (a string)"),
    ("tls_ca_file", "ca.pem", "is not an absolute path: use an absolute path: starting with / "
                              "(or ~/)"),
    ("client_networks", ["10.0.0.0"], "client_networks[0] = '10.0.0.0' is not a network in "
                                      "CIDR notation"),
    ("client_networks", "10.0.0.0/24", "client_networks = '10.0.0.0/24' is not a list"),
    ("client_networks", ["10.0.0.0/33"], "is not a network in CIDR notation"),
    ("client_networks", ["all"], "e.g. client_networks[0] = '10.0.1.0/24'"),
    ("tls_extra_names", ["10.0.0.0/24"], "tls_extra_names[0] = '10.0.0.0/24' is a network, "
                                         "not one host"),
    ("tls_extra_names", ["a b"], "is neither an IP address nor a DNS host name"),
    ("tls_extra_names", ["10.0.0.300"], "is neither an IP address nor a DNS host name"),
    ("synchronous_standbys", ["DB2"], "synchronous_standbys[0] = 'DB2' is not a valid node name"),
    ("tls_key_algorithm", "dsa", "use one of 'ec-p256', 'rsa-3072'"),
    ("tls_min_protocol_version", "TLSv1.1", "use one of 'TLSv1.2', 'TLSv1.3'"),
    ("tls_cert_days", "365", "is not a whole number"),
    ("timezone", "UTC; date", "timezone = 'UTC; date' is not a time zone name: use a time "
                              "zone name: letters, digits and _ + - /"),
    ("initdb_locale", "C.UTF-8 --x", "use a locale name"),
    ("initdb_encoding", "UTF-8", "use an encoding name"),
    ("postgresql_cluster", "main/x", "use a Debian cluster name"),
    ("listen_addresses", "*; x", "is not a list of listen addresses"),
    ("sample_users", [{"nombre": "x"}], "sample_users[0] = {'nombre': 'x'} has the keys 'nombre'"),
    ("sample_users", [{"nombre": 1, "email": "x@y"}], "sample_users[0]['nombre'] = 1 is not "
                                                      "text"),
    ("admin_password", 123, "admin_password = (hidden) is not text"),
    ("postgresql_settings_extra", {"wrok_mem": "4MB"},
     "postgresql_settings_extra['wrok_mem'] = '4MB' is not a PostgreSQL 15 setting (did you "
     "mean 'work_mem'?)"),
    ("postgresql_settings_extra", {"work_mem": "lots"},
     "postgresql_settings_extra['work_mem'] = 'lots' is not a number or a number with a unit: "
     "PostgreSQL 15 takes a whole number of kB (or a string with kB, MB, GB or TB), from 64 "
     "to 2147483647, e.g. postgresql_settings_extra['work_mem'] = '4MB'"),
    ("postgresql_settings_extra", {"work_mem": "64 MB"}, "is not a number or a number with a "
                                                         "unit"),
    ("postgresql_settings_extra", {"port": 5433}, "is a setting pgcluster manages: set "
                                                  "postgresql_port in group data instead"),
    ("postgresql_settings_extra", {"max_connections": 200}, "set max_connections in group data"),
    ("postgresql_settings_extra", {"ssl_ciphers": "HIGH"}, "use the tls_* settings"),
    ("postgresql_settings_extra", {"archive_command": "cp %p /x"}, "set wal_archive_dir"),
    ("postgresql_settings_extra", {"primary_conninfo": "host=x"}, "pgcluster writes it"),
    ("postgresql_settings_extra", {"recovery_target_time": "2024-01-01"},
     "`python -m pgcluster restore`"),
    ("postgresql_settings_extra", {"archive_cleanup_command": "rm x"},
     "pgcluster takes no shell commands from data"),
    ("postgresql_settings_extra", {"jit": "maybe"}, "is not on or off"),
    ("postgresql_settings_extra", {"huge_pages": "always"}, "is not one of its values: "
                                                            "PostgreSQL 15 takes one of"),
    ("postgresql_settings_extra", {"checkpoint_completion_target": 2}, "is out of range: "
                                                                       "PostgreSQL 15 takes a "
                                                                       "number from 0 to 1"),
    ("postgresql_settings_extra", {"statement_timeout": "5 minutes"}, "is not a number"),
    ("postgresql_settings_extra", {"block_size": 16384}, "is read-only"),
    ("postgresql_settings_extra", {"Bad Name": 1}, "is not a setting name"),
    ("postgresql_settings_extra", {"application_name": 5}, "is not text"),
    ("postgresql_settings_extra", ["work_mem"], "is not a dict"),
    ("published_port", 70000, "published_port = 70000 is out of range: use a whole number "
                              "from 1 to 65535"),
    ("node_address", "10.0.0.0/24", "is a network, not one host"),
    ("ssh_port", "22", "ssh_port = '22' is not a whole number"),
    ("_sudo", "yes", "_sudo = 'yes' is not True or False"),
    ("ssh_user", "Deploy", "use a login name"),
    ("ssh_strict_host_key_checking", "maybe", "use one of 'yes', 'no', 'off', 'accept-new', "
                                              "'ask'"),
]


@pytest.mark.parametrize("key,value,message", BAD_VALUES,
                         ids=[f"{key}={value!r}" for key, value, _ in BAD_VALUES])
def test_a_bad_value_is_reported_with_a_useful_message(key: str, value: Any,
                                                       message: str) -> None:
    found = refused(with_value(key, value))
    mine = [p for p in found if p.startswith(key)]
    assert any(message in p for p in mine), found
    assert all("Traceback" not in p for p in found)


def test_there_are_enough_bad_values() -> None:
    assert len(BAD_VALUES) >= 30


def test_the_message_names_the_hosts_when_not_all_have_the_value() -> None:
    found = refused(with_value("max_connections", "lots", hosts=("db3",)))
    assert found == ["max_connections = 'lots' on db3 is not a whole number: use a whole number "
                     "from 1 to 262143, e.g. max_connections = 100"]


def test_every_problem_is_listed_at_once() -> None:
    entries = [HostEntry(e.name, e.groups, {**e.data, "max_connections": "lots",
                                            "archive_mode": "yes", "shared_buffers": 128})
               for e in three_nodes()]
    found = refused(entries)
    assert [p.split(" ")[0] for p in found] == ["max_connections", "shared_buffers",
                                                "archive_mode"]


def test_a_wrong_type_never_raises_in_the_later_checks() -> None:
    # Each of these would break int(), a set of roles or a Cluster if it got that far.
    bad = {"postgresql_port": "5432x", "published_port": "x", "max_wal_senders": "ten",
           "admin_user": ["admin"], "synchronous_standbys": "db2", "tls_renew_days": "30",
           "tls_cert_days": None, "postgresql_settings_extra": "work_mem=1MB",
           "node_role": 5, "tls_extra_names": None, "client_networks": None}
    found = refused([HostEntry(e.name, e.groups, {**e.data, **bad}) for e in three_nodes()])
    assert {p.split(" ")[0] for p in found} >= set(bad) - {"node_role"}


# ------------------------------------------------------------------ hostile values

HOSTILE = ["'", '"', "$(id)", "`id`", ";", "\n", " ", "&", "|", ">", "\\"]


def _hostile(key: str, payload: str) -> Any:
    if key in ("backup_root", "wal_archive_dir", "backup_full_dir", "backup_log_dir",
               "backup_verify_dir", "tls_dir", "ssh_key", "tls_ca_file", "etcd_data_dir"):
        return f"/srv/x{payload}y"
    if key == "patroni_namespace":
        return f"/pg{payload}x/"
    if key.endswith("_schedule"):
        return f"0 2 * * *{payload}x"
    if key in ("client_networks",):
        return [f"10.0.0.0/24{payload}"]
    if key in ("tls_extra_names", "synchronous_standbys"):
        return [f"db{payload}2"]
    return f"db{payload}2"


HOSTILE_KEYS = ["node_name", "node_address", "ssh_hostname", "backup_root", "wal_archive_dir",
                "backup_full_dir", "backup_log_dir", "backup_verify_dir", "tls_dir", "ssh_key",
                "tls_ca_file", "database_name", "database_schema", "admin_user", "app_user",
                "backup_registry_database", "backup_full_schedule", "backup_incr_schedule",
                "timezone", "initdb_locale", "initdb_encoding", "listen_addresses",
                "postgresql_cluster", "client_networks", "tls_extra_names",
                "synchronous_standbys", "ssh_user", "docker_identifier", "patroni_scope",
                "patroni_namespace", "patroni_rest_user", "etcd_data_dir"]


@pytest.mark.parametrize("payload", HOSTILE)
@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_values_are_refused(key: str, payload: str) -> None:
    found = refused(with_value(key, _hostile(key, payload), hosts=("db2",)))
    assert any(p.startswith(key) for p in found), found


@pytest.mark.parametrize("payload", ["'", '"', "$(id)", "${HOME}", "`id`", ";", "\n", "\\"])
def test_hostile_text_in_settings_extra_is_refused(payload: str) -> None:
    found = refused(with_value("postgresql_settings_extra",
                               {"application_name": f"x{payload}y"}))
    assert any("refuses in settings" in p for p in found), found


@pytest.mark.parametrize("value", ["64MB; x", "64MB\n", "64 MB", "$(id)"])
def test_hostile_numbers_in_settings_extra_are_refused(value: str) -> None:
    found = refused(with_value("postgresql_settings_extra", {"work_mem": value}))
    assert any("postgresql_settings_extra['work_mem']" in p for p in found), found


def test_a_secret_is_never_shown() -> None:
    found = refused(with_value("replication_password", ["s3cret-list"]))
    assert found and not any("s3cret" in p for p in found)


# ----------------------------------------------------------------- cross-node rules

def test_a_standby_needs_at_least_the_primary_s_max_connections() -> None:
    found = refused(with_value("max_connections", 50, hosts=("db3",)))
    assert found == [
        "max_connections = 50 on db3 is lower than 100 on the primary db1: a hot standby "
        "refuses to start with less than its primary has; set max_connections to at least 100 "
        "on db3 (in its host data; the same on every node is simplest)"]


def test_settings_extra_and_postgresql_defaults_count_too() -> None:
    # max_worker_processes is 8 by default on the primary and the standby.
    found = refused(with_value("postgresql_settings_extra", {"max_worker_processes": "4"},
                               hosts=("db3",)))
    assert len(found) == 1
    assert "max_worker_processes = 4 on db3 is lower than 8 on the primary db1" in found[0]
    assert "postgresql_settings_extra" in found[0]


def test_a_promotable_standby_with_more_needs_every_node_to_have_as_much() -> None:
    found = refused(with_value("postgresql_settings_extra", {"max_locks_per_transaction": 128},
                               hosts=("db2",)))
    assert [p.split(" on ")[1].split(" ")[0] for p in found] == ["db1", "db3"]
    assert all("which a failover may promote" in p for p in found)


def test_replicas_may_have_more_than_the_primary() -> None:
    validate_inventory(with_value("postgresql_settings_extra",
                                  {"max_prepared_transactions": 10}, hosts=("db3",)))
    validate_inventory(with_value("max_connections", 200, hosts=("db3",)))
    validate_inventory(with_value("max_connections", 200))


# ------------------------------------------------------------------ the type classes

@pytest.mark.parametrize("kind,value", [
    (Int(1, 10), 1), (Int(1, 10), 10), (Int(0), 10**12), (Bool(), False),
    (Enum(15), 15), (Size(16, 1073741823, "8kB"), "128kB"), (Size(-1, 100, "MB"), -1),
    (Size(0, 100, "MB"), 0), (Duration(0, 100), "1min"), (Duration(0, 100), "500ms"),
    (Duration(0, 100), 100), (Cron(), ""), (Cron(), "@daily"), (Cron(), "*/15 8-18 * * 1-5"),
    (Cron(), "0 2 * * SUN"), (Cron(), "0 2 1,15 jan *"), (Cron(), "0 2 * * 7"),
    (Cron(), "0-30/10 * * * *"), (AbsolutePath(), "/var/lib/pg+x@y_z.d-1"),
    (AbsolutePath(home=True), "~/.ssh/id_ed25519"),
    (Token(r"[a-z]+", "a word", "x"), "abc"),
])
def test_good_values_pass(kind: settings.SettingType, value: Any) -> None:
    assert kind.problems(value) == []


@pytest.mark.parametrize("value", ["10.0.1.5", "::1", "fe80::1", "db1", "db1.example.net",
                                   "localhost", "x-1.y"])
def test_hosts(value: str) -> None:
    assert settings.Host().check(value) is None


@pytest.mark.parametrize("value", ["db_1", "-db", "db-", "10.0.1.5/32", "a..b", "", "x" * 64,
                                   "db1.", "1.2.3.999", "fe80::1%eth0"])
def test_not_hosts(value: str) -> None:
    assert settings.Host().check(value) is not None


def test_postgresql_settings_table_is_postgresql_15_s() -> None:
    table = postgresql_settings()
    assert len(table) > 300
    assert table["max_connections"].min == 1 and table["max_connections"].max == 262143
    assert table["shared_buffers"].unit == "8kB"
    assert table["wal_level"].enumvals == ("minimal", "replica", "logical")
    assert table["block_size"].context == "internal"
    assert "PostgreSQL 15.20" in settings.SETTINGS_TABLE.read_text()


@pytest.mark.parametrize("key", sorted(RENDERED))
def test_group_data_types_agree_with_postgresql(key: str) -> None:
    """A group data key rendered into postgresql.conf accepts nothing PostgreSQL refuses."""
    kind, pg = SCHEMA.types[key], postgresql_settings()[RENDERED[key]]
    assert not pg.check(SCHEMA.defaults[key]), "all.py's own value"
    if isinstance(kind, Int):
        assert pg.vartype == "integer" and pg.unit == ""
        assert kind.min is not None and kind.max is not None
        assert pg.min <= kind.min and kind.max <= pg.max
    elif isinstance(kind, Size | Duration):
        assert pg.vartype == "integer" and kind.base == pg.unit
        assert pg.min <= kind.min and kind.max <= pg.max
    elif isinstance(kind, Enum):
        assert pg.vartype == "enum"
        assert {c.lower() for c in kind.choices} <= {v.lower() for v in pg.enumvals}
    elif isinstance(kind, Bool):
        assert pg.vartype == "bool"
    else:
        assert isinstance(kind, Token) and pg.vartype == "string"


def test_settings_pgcluster_renders_are_refused_in_settings_extra() -> None:
    for setting in RENDERED.values():
        assert settings.managed_reason(setting)
    template = (Path(settings.__file__).parents[2] / "templates" / "postgresql"
                / "postgresql.conf.j2").read_text()
    for setting in ("data_directory", "hba_file", "ident_file", "external_pid_file", "port",
                    "unix_socket_directories", "password_encryption", "ssl", "ssl_cert_file",
                    "archive_command", "restore_command", "synchronous_standby_names",
                    "cluster_name"):
        assert f"\n{setting} = " in template and settings.managed_reason(setting), setting


# ------------------------------------------------------------------- the group data

def test_every_tunable_of_all_py_has_a_type() -> None:
    values = load_group_data("all")
    untyped = sorted(set(values) - set(SCHEMA.types))
    assert not untyped, f"group_data/all.py: give these a type annotation: {untyped}"
    assert set(SCHEMA.types) == set(values)


def test_the_shipped_group_data_is_valid() -> None:
    for group in ("all", "docker"):
        for key, value in load_group_data(group).items():
            assert SCHEMA.type_of(key).problems(value) == [], (group, key, value)
    assert group_file_problems(["docker"], group_data_schema()) == []


def test_host_data_keys_are_not_all_py_s() -> None:
    assert not set(HOST_DATA) & set(SCHEMA.types)


def _group_dir(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def test_a_mistyped_key_in_a_group_file_is_refused(tmp_path: Path) -> None:
    directory = _group_dir(tmp_path, all="from pgcluster.model.settings import Int\n"
                                         "max_connections: Int(1, 262143) = 100\n",
                           production="max_conections = 200\nssh_user = 'deploy'\n"
                                      "_sudo = True\nnode_address = '10.0.0.1'\n")
    schema = group_data_schema(directory)
    assert group_file_problems(["primary", "production"], schema, directory) == [
        "group_data/production.py sets max_conections, which pgcluster does not know (did you "
        "mean 'max_connections'?): every tunable is in group_data/all.py, with its type"]


def test_an_untyped_key_in_all_py_is_refused(tmp_path: Path) -> None:
    directory = _group_dir(tmp_path, all="from pgcluster.model.settings import Int\n"
                                         "max_connections: Int(1, 262143) = 100\n"
                                         "max_fun = 3\n")
    found = group_file_problems([], group_data_schema(directory), directory)
    assert len(found) == 1 and "group_data/all.py sets max_fun without a type" in found[0]


# ------------------------------------------------------- docs/configuration.md is true

DOC = Path(settings.__file__).parents[2] / "docs" / "configuration.md"


def _tables(heading: str) -> list[list[str]]:
    """The rows of the tables under `## heading`, as cells (header rows left out)."""
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in row] for row in rows
            if row[0].strip() not in ("Setting", "Host data key", "What", "Check", "Type")]


def _code(cell: str) -> str:
    return cell.strip("`").strip()


def _unescape(text: str) -> str:
    return text.replace("\\*", "*").replace("\\_", "_")


def test_the_docs_list_every_type() -> None:
    documented = {_code(row[0]).split("(")[0] for row in _tables("Types")}
    assert documented == {kind.__name__ for kind in settings.TYPES}


def test_the_docs_give_every_key_its_type_and_rule() -> None:
    import ast

    tree = ast.parse((DOC.parents[1] / "group_data" / "all.py").read_text())
    annotations = {node.target.id: ast.unparse(node.annotation) for node in tree.body
                   if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    seen = set()
    for keys, annotation, rule, _ in _tables("Group data"):
        for key in (_code(k) for k in keys.split(", ")):
            seen.add(key)
            assert annotations[key] == _code(annotation), key
            assert SCHEMA.types[key].rule() == _unescape(rule), key
    assert seen == set(SCHEMA.types)
    host_rows = {_code(key): _unescape(rule) for key, rule, _ in _tables("Host data")}
    assert host_rows == {key: kind.rule() for key, kind in HOST_DATA.items()}


_MESSAGE = re.compile(r"(?P<key>\w+)(?P<path>(?:\[[^\]]+\])?) = (?P<value>.+?)"
                      r"(?: on (?P<hosts>db\d(?:, db\d)*))? (?:is|has|contains|cannot) ")


def _messages_of(entries: list[HostEntry]) -> list[str]:
    try:
        validate_inventory(entries)
    except ConfigError as error:
        return error.problems
    return []


def _scenario(message: str) -> list[HostEntry] | None:
    """The inventory that gives a documented `KEY = VALUE [on HOSTS] ...` message."""
    match = _MESSAGE.match(message)
    if not match:
        return None
    import ast

    key, path, text = match["key"], match["path"], match["value"]
    value: Any = 5 if text == "(hidden)" else ast.literal_eval(text)
    if path:
        inner = ast.literal_eval(path[1:-1])
        value = [value] if isinstance(inner, int) else {inner: value}
    hosts = tuple(match["hosts"].split(", ")) if match["hosts"] else ("db1", "db2", "db3")
    if key not in SCHEMA.types and key not in HOST_DATA:  # a hot-standby minimum
        key, value = "postgresql_settings_extra", {key: value}
    return with_value(key, value, hosts)


def _other_scenarios() -> list[list[HostEntry]]:
    from tests.unit.helpers import entry

    nodes = three_nodes()
    renamed = [*nodes[:1], entry("db2", "standby", node_address="10.0.0.2",
                                 node_name="pg-replica"),
               entry("db3", "readonly", node_address="10.0.0.3", node_name="pg_replica")]
    lab = {k: v for k, v in entry("x", "readonly").data.items() if k != "node_address"}
    patroni = {"ha_engine": "patroni"}
    return [
        [entry("db2", "standby"), entry("db3", "readonly")],
        [entry("db1", "primary"), entry("db2", "primary")],
        [*nodes[:2], entry("db3", None, node_address="10.0.0.3", node_role="witness")],
        [*nodes[:2], entry("db3.example.net", "readonly", node_address="10.0.0.3")],
        [*nodes[:2], HostEntry("@lab/db3", ("readonly",), lab)],
        renamed,
        [entry("db1", "primary", node_address="10.0.0.1", published_port=5432),
         entry("db2", "standby", node_address="10.0.0.2", published_port=5432)],
        [entry("db1", "primary", node_address="10.0.0.1"),
         entry("db2", "standby", node_address="10.0.0.1")],
        with_value("app_user", "admin"),
        with_value("synchronous_standbys", ["db9"]),
        # Cascading replicas (docs/replicas.md)
        with_value("upstream", "db9", hosts=("db3",)),
        with_value("upstream", "db3", hosts=("db3",)),
        with_value("upstream", "db2", hosts=("db1",)),
        with_value("upstream", "db3", hosts=("db2",)),
        [*nodes[:2], entry("db3", "readonly", node_address="10.0.0.3", upstream="db4"),
         entry("db4", "readonly", node_address="10.0.0.4", upstream="db3")],
        [*three_nodes(synchronous_standbys=["db3"])[:2],
         entry("db3", "readonly", node_address="10.0.0.3", upstream="db2",
               synchronous_standbys=["db3"])],
        with_value("admin_password", None),
        # High availability (pgcluster.model.patroni)
        three_nodes(patroni_loop_wait=10, patroni_retry_timeout=10),
        three_nodes(patroni_loop_wait=14, patroni_retry_timeout=3),
        three_nodes(patroni_rest_port=5432),
        with_value("patroni_ttl", 30, hosts=("db3",)),
        [entry("db1", "primary", node_address="10.0.0.1", **patroni),
         entry("db2", "standby", node_address="10.0.0.2", **patroni)],
        [*three_nodes(**patroni)[:2],
         entry("db3", "readonly", node_address="db3.example.net", hot_standby=False,
               max_connections=200, **patroni)],
        three_nodes(max_connections=20, **patroni),
        # The `etcd` group
        [*three_nodes(**patroni), entry("e1", "etcd", node_address="10.0.0.1", **patroni),
         entry("e2", "etcd", node_address="10.0.1.2", **patroni)],
        [*nodes, *(entry(f"e{i}", "etcd", node_address=f"10.0.1.{i}") for i in (1, 2, 3))],
        # The endpoints
        [*three_nodes(proxy_ro_port=5000), entry("px", "proxy", node_address="10.0.2.1",
                                                   proxy_ro_port=5000)],
        [*three_nodes(pgbouncer_port=8008), entry("px", "proxy", node_address="10.0.2.1")],
        [*three_nodes(max_connections=40), entry("px", "proxy", node_address="10.0.2.1")],
    ]


def test_the_docs_example_messages_are_the_code_s() -> None:
    examples = [_code(row[-1]).removesuffix("…").strip()
                for heading in ("Group data", "Host data", "`postgresql_settings_extra`",
                                "Across values and nodes")
                for row in _tables(heading)]
    assert len(examples) > 60
    others = [m for entries in _other_scenarios() for m in _messages_of(entries)]
    for example in examples:
        entries = _scenario(example)
        produced = _messages_of(entries) if entries is not None else others
        assert any(m.startswith(example) for m in produced), (example, produced)
