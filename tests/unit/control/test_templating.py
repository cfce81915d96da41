"""Templates render what PostgreSQL, cron, logrotate, systemd and bash expect, from the
group data, deterministically; and no value, however hostile, escapes its quoting."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgcluster import TEMPLATES_DIR
from pgcluster.control.templating import (
    UnsafeValue,
    cron_schedule,
    env_value,
    hba_address,
    hba_name,
    pgtoken,
    pgvalue,
    render_template,
    safe_path,
    shell,
    template_context,
    yaml_key,
    yaml_scalar,
)
from pgcluster.model import monitoring, scrape
from pgcluster.model.backups import FullBackup
from pgcluster.model.cluster import Cluster, ServiceHost
from pgcluster.model.endpoints import haproxy_context
from pgcluster.model.patroni import etcd_environment, patroni_config
from pgcluster.steps import objectstore
from tests.unit.helpers import ALL, SECRETS, cluster, entry


def test_cron_runs_every_job_as_postgres_on_its_schedule() -> None:
    text = rendered("cron/pgcluster.j2")
    entries = [line.split() for line in text.splitlines()
               if line and line[0].isdigit()]
    assert [(e[:5], e[5], e[6]) for e in entries] == [
        (["0", "2", "*", "*", "0"], "postgres", "/usr/local/lib/pgcluster/backup-full"),
        (["30", "2", "*", "*", "*"], "postgres", "/usr/local/lib/pgcluster/backup-incr"),
        (["0", "4", "*", "*", "*"], "postgres", "/usr/local/lib/pgcluster/backup-retention"),
        (["0", "5", "*", "*", "*"], "postgres", "/usr/local/lib/pgcluster/backup-verify"),
    ]
    text = rendered("cron/pgcluster.j2", backup_verify_schedule="",
                    backup_full_schedule="5 1 * * 6")
    assert "# backup-verify: disabled" in text
    assert "5 1 * * 6           postgres  /usr/local/lib/pgcluster/backup-full" in text


def test_registry_sql_creates_only_what_is_missing() -> None:
    c = cluster()
    sql = render_template("sql/backups.sql.j2", {**template_context(ALL, c.node("db1"), c),
                                        "registry_version": "v-test"})
    assert "CREATE SCHEMA IF NOT EXISTS pgcluster" in sql
    assert "CREATE TABLE IF NOT EXISTS pgcluster.backups" in sql
    assert "COMMENT ON TABLE pgcluster.backups IS 'v-test'" in sql
    # Nothing that loses a row: the one DROP widens the kind check in place (v2, 'drill').
    widened = "DROP CONSTRAINT IF EXISTS backups_kind_check"
    assert sql.count(widened) == 1 and "CHECK (kind IN ('full', 'incr', 'restore', 'drill'))" \
        in sql
    assert "DROP" not in sql.replace(widened, "").upper() and "DELETE" not in sql.upper()
    assert "TRUNCATE" not in sql.upper()


def seg(position: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{position:08X}"


def backup(name: str, finished: str, stop_lsn: str, label: str = "") -> FullBackup:
    return FullBackup(name, 1, {"label": label or f"pgcluster-full-{name}",
                                "start_wal": seg(1), "finished_at": finished,
                                "stop_lsn": stop_lsn})


def conf_for(node: str, **data) -> str:
    c = cluster(**data)
    return render_template("postgresql/postgresql.conf.j2",
                  template_context({**ALL, **SECRETS, **data}, c.node(node), c))


def test_synchronous_replication_is_off_by_default() -> None:
    assert "synchronous_standby_names = ''" in conf_for("db1")


def test_synchronous_standbys_exclude_the_node_itself() -> None:
    data = {"synchronous_standbys": ["db2", "db1"]}
    assert "synchronous_standby_names = 'FIRST 1 (\"db2\")'" in conf_for("db1", **data)
    assert "synchronous_standby_names = 'FIRST 1 (\"db1\")'" in conf_for("db2", **data)
    assert "synchronous_commit = on" in conf_for("db1", **data)


def rendered(template: str, node: str = "db1", engine: str = "manual", **data) -> str:
    c = cluster(**data)
    entry_data = {**ALL, **data, "admin_password": "a", "replication_password": "r:p\\w",
                  "rewind_password": "rw", "app_password": "ap"}
    return render_template(template, template_context(entry_data, c.node(node), c, engine))


def settings(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([a-z_]+)\s*=\s*(.*?)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_postgresql_conf_has_the_seed_settings() -> None:
    conf = settings(rendered("postgresql/postgresql.conf.j2"))
    assert conf["listen_addresses"] == "'*'"
    assert conf["port"] == "5432"
    assert conf["max_connections"] == "100"
    assert conf["wal_level"] == "replica"
    assert conf["max_wal_senders"] == "10"
    assert conf["wal_keep_size"] == "512MB"
    assert conf["hot_standby"] == "on"
    assert conf["archive_mode"] == "on"
    assert conf["archive_command"] == "'/usr/local/lib/pgcluster/archive-wal %p %f'"
    assert conf["archive_timeout"] == "60"
    assert conf["wal_log_hints"] == "on"
    assert conf["max_slot_wal_keep_size"] == "2GB"
    assert conf["password_encryption"] == "scram-sha-256"
    assert conf["cluster_name"] == "'db1'"
    assert conf["data_directory"] == "'/var/lib/postgresql/15/main'"
    assert conf["hba_file"] == "'/etc/postgresql/15/main/pg_hba.conf'"


def test_postgresql_conf_lines_are_all_valid_assignments() -> None:
    for line in rendered("postgresql/postgresql.conf.j2").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert re.match(r"^[a-z_]+ = ('([^']|'')*'|[\w.*-]+)$", stripped), line


def test_extra_settings_are_rendered_and_quoted() -> None:
    conf = settings(rendered("postgresql/postgresql.conf.j2",
                             postgresql_settings_extra={"work_mem": "8MB", "jit": False,
                                                        "random_page_cost": 1.1}))
    assert conf["work_mem"] == "'8MB'" and conf["jit"] == "off"
    assert conf["random_page_cost"] == "1.1"


def test_rendering_is_deterministic() -> None:
    for template in ("postgresql/postgresql.conf.j2", "postgresql/pg_hba.conf.j2",
                     "node/node.env.j2", "cron/pgcluster.j2", "sql/seed.sql.j2",
                     "systemd/postgresql-guard.conf.j2", "sql/privileges.sql.j2",
                     "patroni/patroni.yml.j2", "etcd/etcd.j2"):
        assert rendered(template) == rendered(template)


def test_shell_quotes_one_word() -> None:
    assert shell("plain/path-1.0") == "plain/path-1.0"
    assert shell(5432) == "5432"
    assert shell("it's a b") == "'it'\"'\"'s a b'"
    assert shell("") == "''"


def node_env(node: str = "db1", **data) -> dict[str, str]:
    """node.env as bash reads it (each setting once)."""
    text = rendered("node/node.env.j2", node, **data)
    names = re.findall(r"^([A-Z_]+)=", text, re.M)
    assert len(names) == len(set(names))
    dump = f'{text}\nfor n in {" ".join(names)}; do printf "%s\\0%s\\0" "$n" "${{!n}}"; done'
    out = subprocess.run(["bash", "-euc", dump], capture_output=True, text=True,
                         check=True).stdout.split("\0")[:-1]
    return dict(zip(out[::2], out[1::2], strict=True))


def test_node_env_reads_like_the_file_it_is() -> None:
    text = rendered("node/node.env.j2", "db2")
    for line in text.splitlines():
        assert not line or line.startswith("#") or re.match(
            r"^[A-Z_]+=('[^']*'|[^\s']+)$", line), line
    env = node_env("db2")
    assert env["NODE_NAME"] == "db2" and env["PG_PORT"] == "5432"
    assert env["DATA_DIR"] == "/var/lib/postgresql/15/main"
    assert env["SERVICE"] == "postgresql@15-main"
    assert env["PEERS"] == "10.0.0.1:5432 10.0.0.3:5432"
    assert env["SSL_CONNINFO"] == ("sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/"
                                   "ca.crt channel_binding=require")
    assert env["BACKUP_LOG_DIR"] == "/var/log/pgcluster" and env["START_GUARD_WAIT"] == "60"
    assert env["BACKUP_FREE_SPACE_FACTOR"] == "1.0" and env["REGISTRY_DB"] == "postgres"


def test_node_env_quotes_every_value_for_the_shell() -> None:
    env = node_env(backup_root="/srv/my backups", backup_checkpoint="fa'st; rm -rf /")
    assert env["BACKUP_ROOT"] == "/srv/my backups"
    assert env["BACKUP_CHECKPOINT"] == "fa'st; rm -rf /"


def test_node_env_holds_no_secret() -> None:
    c = cluster()
    text = render_template("node/node.env.j2",
                           template_context({**ALL, **SECRETS}, c.node("db1"), c))
    for secret in SECRETS.values():
        assert secret not in text
    assert "PASSWORD" not in text.upper().replace("PASSWORDS STAY", "")


def hba_rules(engine: str = "manual", **data) -> list[list[str]]:
    text = rendered("postgresql/pg_hba.conf.j2", engine=engine, **data)
    return [r for r in (line.split("#")[0].split() for line in text.splitlines()) if r]


def test_pg_hba_tls_and_scram_only_replication_from_nodes_no_trust() -> None:
    rules = hba_rules(client_networks=["192.168.10.0/24"])
    assert all("trust" not in r for r in rules)
    assert rules[:2] == [["local", "all", "postgres", "peer"],
                         ["local", "replication", "postgres", "peer"]]
    # Over the network: TLS with scram-sha-256, or a refusal; nothing else.
    network = [r for r in rules if r[0] != "local"]
    assert {r[0] for r in network} == {"hostssl", "hostnossl", "host"}
    assert {r[-1] for r in network if r[0] == "hostssl"} == {"scram-sha-256"}
    assert {r[-1] for r in network if r[0] in ("hostnossl", "host")} == {"reject"}
    # Plain text is refused before any rule could accept it (first match wins).
    first_accept = min(i for i, r in enumerate(rules) if r[0] == "hostssl")
    nossl = [i for i, r in enumerate(rules) if r[0] == "hostnossl"]
    assert len(nossl) == 4 and max(nossl) < first_accept
    assert {(r[1], r[3]) for r in rules if r[0] == "hostnossl"} == {
        ("all", "0.0.0.0/0"), ("all", "::/0"), ("replication", "0.0.0.0/0"),
        ("replication", "::/0")}
    replication = [r for r in rules if r[1] == "replication" and r[0] == "hostssl"]
    assert replication == [["hostssl", "replication", "replicator", f"10.0.0.{i}/32",
                            "scram-sha-256"] for i in (1, 2, 3)]
    client = ["hostssl", "all", "all", "192.168.10.0/24", "scram-sha-256"]
    for user in ("replicator", "rewinder", "postgres"):
        # the role is refused everywhere else, before any client network could let it in
        assert rules.index(["host", "all", user, "all", "reject"]) < rules.index(client)


def test_pg_hba_without_client_networks_lets_no_password_login_in_over_the_network() -> None:
    rules = hba_rules(client_networks=[])
    accepted = [r for r in rules if r[0] == "hostssl"]
    assert {r[2] for r in accepted} == {"all", "replicator", "rewinder"}
    assert {r[3] for r in accepted if r[2] == "all"} == {"127.0.0.1/32", "::1/128"}


def test_under_patroni_the_replication_role_may_also_come_from_localhost() -> None:
    """Patroni reads its own server's timeline over a replication connection to localhost
    before it decides how a replica rejoins: refused, a diverged replica never rejoins."""
    local = [["hostssl", "replication", "replicator", address, "scram-sha-256"]
             for address in ("127.0.0.1/32", "::1/128")]
    patroni = hba_rules(engine="patroni")
    assert all(rule in patroni for rule in local)
    # before the replication role's refusal everywhere else (first match wins)
    assert max(patroni.index(r) for r in local) < patroni.index(
        ["host", "all", "replicator", "all", "reject"])
    assert not any(rule in hba_rules() for rule in local)


def test_postgresql_conf_turns_tls_on() -> None:
    conf = settings(rendered("postgresql/postgresql.conf.j2"))
    assert conf["ssl"] == "on"
    assert conf["ssl_cert_file"] == "'/etc/postgresql/15/main/tls/server.crt'"
    assert conf["ssl_key_file"] == "'/etc/postgresql/15/main/tls/server.key'"
    assert conf["ssl_ca_file"] == "'/etc/postgresql/15/main/tls/ca.crt'"
    assert conf["ssl_min_protocol_version"] == "'TLSv1.2'"
    assert conf["log_statement"] == "'none'"


def test_privileges_sql_grants_the_application_role_dml_only() -> None:
    sql = rendered("sql/privileges.sql.j2")
    assert "REVOKE ALL ON DATABASE proyecto_db FROM PUBLIC;" in sql
    assert "GRANT CONNECT ON DATABASE proyecto_db TO app;" in sql
    assert "GRANT USAGE ON SCHEMA proyecto TO app;" in sql
    assert ("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA proyecto TO app;"
            in sql)
    assert "ALTER DEFAULT PRIVILEGES FOR ROLE admin IN SCHEMA proyecto" in sql
    statements = " ".join(line for line in sql.splitlines() if not line.startswith("--"))
    grants = re.findall(r"GRANT ([A-Z, ]+) ON", statements)
    assert grants and all(not {"CREATE", "TEMPORARY", "ALL", "TRUNCATE", "REFERENCES",
                                "TRIGGER"} & set(g.replace(",", " ").split()) for g in grants)


def test_hba_address() -> None:
    assert hba_address("10.1.2.3") == "10.1.2.3/32"
    assert hba_address("fd00::1") == "fd00::1/128"
    assert hba_address("db1.example.net") == "db1.example.net"


def test_pgvalue() -> None:
    assert pgvalue(True) == "on" and pgvalue(5) == "5"
    assert pgvalue("it's") == "'it''s'"


def test_pgpass_escapes_separators() -> None:
    lines = rendered("postgresql/pgpass.j2").splitlines()[-2:]
    assert lines == ["*:*:replication:replicator:r\\:p\\\\w", "*:*:postgres:rewinder:rw"]


def test_seed_sql_inserts_the_five_users_only_into_an_empty_table() -> None:
    sql = rendered("sql/seed.sql.j2")
    assert sql.count("@proyecto.local'") == 5
    assert "WHERE NOT EXISTS (SELECT 1 FROM proyecto.usuarios)" in sql
    assert "CREATE TABLE IF NOT EXISTS proyecto.logs_replicacion" in sql


# --------------------------------------------------------------------- Patroni and etcd


def patroni_yaml(node: str, **data) -> tuple[dict, dict]:
    """This node's /etc/patroni/config.yml read back as Patroni reads it (yaml.safe_load),
    and the model's dict it was rendered from."""
    c = cluster(**data)
    values = {**ALL, **SECRETS, **data}
    text = render_template("patroni/patroni.yml.j2", template_context(values, c.node(node), c))
    return yaml.safe_load(text), patroni_config(values, c.node(node), c)


def test_node_names_yaml_reads_as_booleans_stay_names() -> None:
    entries = [entry("on", "primary", node_address="10.0.0.1"),
               entry("no", "standby", node_address="10.0.0.2"),
               entry("y", "readonly", node_address="10.0.0.3")]
    c = Cluster.from_entries(entries)
    values = {**ALL, **SECRETS}
    for node in c.nodes:
        text = render_template("patroni/patroni.yml.j2", template_context(values, node, c))
        assert yaml.safe_load(text) == patroni_config(values, node, c)
        assert set(yaml.safe_load(text)["bootstrap"]["dcs"]["slots"]) == {"on", "no", "y"}


@pytest.mark.parametrize("node", ["db1", "db2", "db3"])
def test_patroni_config_yaml_is_exactly_the_model_s(node: str) -> None:
    parsed, model = patroni_yaml(node)
    assert parsed == model  # every key the template writes, and no other
    parsed, model = patroni_yaml(node, synchronous_standbys=["db1", "db2"],
                                 postgresql_settings_extra={"max_worker_processes": 12},
                                 data_checksums=False, patroni_watchdog="off")
    assert parsed == model


def test_patroni_config_of_a_three_node_cluster() -> None:
    configs = {name: patroni_yaml(name)[0] for name in ("db1", "db2", "db3")}
    tls = "/etc/postgresql/15/main/tls"
    for name, index in (("db1", 1), ("db2", 2), ("db3", 3)):
        conf = configs[name]
        address = f"10.0.0.{index}"
        assert (conf["scope"], conf["namespace"], conf["name"]) == ("pgcluster", "/pgcluster/",
                                                                    name)
        assert conf["log"] == {"level": "INFO"}
        assert conf["restapi"] == {
            "listen": f"{address}:8008", "connect_address": f"{address}:8008",
            "certfile": f"{tls}/server.crt", "keyfile": f"{tls}/server.key",
            "cafile": f"{tls}/ca.crt", "verify_client": "optional",
            "authentication": {"username": "patroni", "password": "s3cret-patroni"}}
        assert conf["ctl"] == {"certfile": f"{tls}/server.crt", "keyfile": f"{tls}/server.key",
                               "cacert": f"{tls}/ca.crt"}
        assert conf["etcd3"] == {"hosts": ["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"],
                                 "protocol": "https", "cacert": f"{tls}/ca.crt",
                                 "cert": f"{tls}/server.crt", "key": f"{tls}/server.key"}
        dcs = conf["bootstrap"]["dcs"]
        assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (20, 5, 5)
        assert dcs["maximum_lag_on_failover"] == 1048576
        assert dcs["primary_start_timeout"] == 300 and "master_start_timeout" not in dcs
        assert dcs["failsafe_mode"] is True and dcs["synchronous_mode"] is False
        assert dcs["postgresql"] == {
            "use_pg_rewind": True, "use_slots": True,
            "parameters": {"max_connections": 100, "max_wal_senders": 10,
                           "max_replication_slots": 10, "wal_level": "replica",
                           "wal_keep_size": "512MB"}}
        assert dcs["slots"] == {n: {"type": "physical"} for n in ("db1", "db2", "db3")}
        assert conf["bootstrap"]["initdb"] == [
            {"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums",
            {"auth-local": "peer"}, {"auth-host": "scram-sha-256"}]
        pg = conf["postgresql"]
        assert pg["listen"] == "*:5432" and pg["connect_address"] == f"{address}:5432"
        assert pg["data_dir"] == pg["config_dir"] == "/var/lib/postgresql/15/main"
        assert pg["bin_dir"] == "/usr/lib/postgresql/15/bin"
        assert pg["custom_conf"] == "/etc/postgresql/15/main/postgresql.conf"
        assert pg["pgpass"] == "/var/lib/postgresql/.pgpass.patroni"
        assert pg["use_unix_socket"] is True and pg["pg_ctl_timeout"] == 60
        assert pg["parameters"] == {"hba_file": "/etc/postgresql/15/main/pg_hba.conf",
                                    "ident_file": "/etc/postgresql/15/main/pg_ident.conf",
                                    "unix_socket_directories": "/var/run/postgresql"}
        ssl = {"sslmode": "verify-full", "sslrootcert": f"{tls}/ca.crt",
               "channel_binding": "require"}
        assert pg["authentication"] == {
            "superuser": {"username": "postgres"},
            "replication": {"username": "replicator", "password": "s3cret-repl", **ssl},
            "rewind": {"username": "rewinder", "password": "s3cret-rewind", **ssl}}
        assert pg["create_replica_methods"] == ["basebackup"]
        assert pg["basebackup"] == [{"checkpoint": "fast"}]
        assert conf["watchdog"] == {"mode": "automatic", "device": "/dev/watchdog",
                                    "safety_margin": 5}
        readonly = name == "db3"
        assert conf["tags"] == {"nofailover": readonly, "nosync": readonly,
                                "noloadbalance": False, "clonefrom": False}
    # What the DCS and etcd need the same everywhere is the same everywhere.
    for key in ("scope", "namespace", "etcd3", "bootstrap", "ctl", "watchdog"):
        assert configs["db1"][key] == configs["db2"][key] == configs["db3"][key], key


def test_patroni_yaml_keeps_words_yaml_would_misread_as_strings() -> None:
    for value in ("off", "on", "yes", "no", "null", "~", "1:20", "0755", "1e3", "", " x ",
                  "it's", 'say "hi"', "#not a comment", "a: b", "- x", "{{ 7 * 7 }}",
                  "ñandú ü", "back\\slash", "*", "&anchor", "!tag", "%x", "@x", "`x`"):
        assert yaml.safe_load(f"key: {yaml_scalar(value)}") == {"key": value}, value
    for value in (True, False, None, 0, 5432, -1, 1.5):
        assert yaml.safe_load(f"key: {yaml_scalar(value)}") == {"key": value}
    for bad in ("one\ntwo", "tab\there", "cr\r", "nel\x85", "ls\u2028", "bom\ufeff",
                float("nan")):
        with pytest.raises(UnsafeValue):
            yaml_scalar(bad)
    assert yaml_key("max_connections") == "max_connections" and yaml_key("auth-local")
    for word in ("on", "no", "a b", "x: y", "", "1x", "1:20"):
        assert yaml.safe_load(f"{yaml_key(word)}: 1") == {word: 1}, word
    with pytest.raises(UnsafeValue):
        yaml_key("a\nb")


def etcd_file(node: str, **data) -> dict[str, str]:
    """/etc/default/etcd read as systemd reads an EnvironmentFile of bare values (each
    variable once, comments and blank lines skipped)."""
    text = rendered("etcd/etcd.j2", node, **data)
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"ETCD_[A-Z_]+", name) and name not in found, line
        found[name] = value
    return found


def test_etcd_environment_file_is_exactly_the_model_s() -> None:
    c = cluster()
    values = {**ALL, "admin_password": "a", "replication_password": "r:p\\w",
              "rewind_password": "rw", "app_password": "ap"}
    for node in ("db1", "db2", "db3"):
        env = etcd_file(node)
        assert env == etcd_environment(values, c.node(node), c)
        assert env["ETCD_NAME"] == node
        assert env["ETCD_INITIAL_CLUSTER"] == ("db1=https://10.0.0.1:2380,db2=https://10.0.0.2:"
                                               "2380,db3=https://10.0.0.3:2380")
    assert etcd_file("db1", etcd_heartbeat_interval=200, etcd_election_timeout=2000)[
        "ETCD_ELECTION_TIMEOUT"] == "2000"


def test_etcd_file_values_are_bare_and_refused_when_systemd_would_read_them_otherwise() -> None:
    assert env_value("db1=https://[fd00::1]:2380,db2=https://10.0.0.2:2380")
    for bad in ("a b", "'x'", '"x"', "$HOME", "a\\b", "x\ny", "", "#x"):
        with pytest.raises(UnsafeValue):
            env_value(bad)


# ------------------------------------------------------------ nothing escapes its quoting

HOSTILE = ["it's", 'say "hi"', "$(touch pwned)", "`touch pwned`", "a; touch pwned",
           "one\ntwo = 'x'", "back\\slash", "tab\there", "#not a comment", "cr\r\nlf",
           "{{ 7 * 7 }}", "}}{%", "ñandú ü"]
# Every string that reaches a template from group data, host data or the inventory.
STRING_KEYS = ["listen_addresses", "timezone", "initdb_locale", "tls_min_protocol_version",
               "wal_level", "archive_mode", "synchronous_commit", "shared_buffers",
               "replication_user", "rewind_user", "app_user", "admin_user", "database_name",
               "database_schema", "backup_root", "backup_log_dir", "wal_archive_dir",
               "backup_full_dir", "backup_incr_dir", "backup_verify_dir",
               "backup_registry_database", "backup_full_schedule", "backup_checkpoint",
               "replication_password", "rewind_password", "patroni_rest_user",
               "patroni_rest_password", "patroni_scope", "patroni_namespace",
               "patroni_watchdog", "etcd_data_dir", "pgbouncer_auth_user",
               "proxy_stats_address", "pgbouncer_pool_mode", "monitor_user",
               "monitor_listen_address", "monitor_password", "alertmanager_email_to",
               "alertmanager_email_from", "alertmanager_smarthost", "alertmanager_smtp_user",
               "alertmanager_smtp_password"]
TEMPLATES = sorted(str(p.relative_to(TEMPLATES_DIR)) for p in TEMPLATES_DIR.rglob("*.j2"))


def monitoring_context(template: str, data: dict, c: Cluster) -> dict[str, Any]:
    """The context each templates/monitoring file is rendered with (its e-mail receiver
    and webhook set, so that their values reach the file)."""
    monitor = ServiceHost("mon", "mon", "10.0.0.9")
    name = template.removeprefix("monitoring/")
    if name == "prometheus.yml.j2":
        return scrape.prometheus_context(data, c, monitor, "patroni")
    if name == "alertmanager.yml.j2":
        receivers = {"alertmanager_email_to": "dba@example.com", "alertmanager_smtp_user": "u",
                     "alertmanager_smtp_password": "p",
                     "alertmanager_webhook_urls": ["https://alerts.example.com/hook"]}
        return scrape.alertmanager_context(
            {**data, **{k: v for k, v in receivers.items() if not data.get(k)}}, monitor)
    if name == "alerts.yml.j2":
        return monitoring.alert_context({**data, "ha_engine": "patroni"})
    if name == "postgres-exporter-queries.yaml.j2":
        return {"monitor_user": data["monitor_user"],
                "database": data["backup_registry_database"]}
    if name == "daemon.default.j2":
        return {"service": "prometheus", "monitor": monitor,
                "args": scrape.daemon_args(data)["prometheus"]}
    return scrape.exporter_context(data, c.nodes[0].name, c.nodes[0].address)


def hostile_renderings(template: str, payload: str) -> Iterator[tuple[str, str, str]]:
    """(where the payload went, the benign rendering, the hostile one) for every place a
    payload can go; places whose filter refuses it (UnsafeValue) write nothing at all."""
    def render(data: dict, node_name: str = "db1", extra: dict | None = None) -> str:
        entries = [entry(node_name, "primary", node_address="10.0.0.1", **data),
                   entry("db2", "standby", node_address="10.0.0.2", **data)]
        c = Cluster.from_entries(entries)
        ctx = template_context({**ALL, **SECRETS, **data}, c.nodes[0], c)
        if template.startswith("haproxy/"):  # a proxy's file: the proxy's own values
            ctx = haproxy_context({**ALL, **SECRETS, **data}, c, ServiceHost("px", "px",
                                                                             "10.0.0.9"))
        if template.startswith("monitoring/"):  # a monitor's file, or an exporter's
            ctx = monitoring_context(template, {**ALL, **SECRETS, **data}, c)
        if template.startswith("seaweedfs/"):  # the object store's files
            ctx = objectstore.context({**ALL, **SECRETS, **data}, c.nodes[0], c)
        return render_template(template, {**ctx, "registry_version": "v1", **(extra or {})})

    # (where, how the value goes in, a harmless value for the comparison)
    places: list[tuple[str, Any, Any]] = [
        *((key, lambda v, key=key: ({key: v}, "db1", None), ALL[key]) for key in STRING_KEYS),
        ("node name", lambda v: ({}, v, None), "db1"),
        ("sample user", lambda v: ({"sample_users": [{"nombre": v, "email": v}]}, "db1",
                                   None), "x"),
        ("postgresql_settings_extra",
         lambda v: ({"postgresql_settings_extra": {"work_mem": v}}, "db1", None), "x"),
        ("client_networks", lambda v: ({"client_networks": [v]}, "db1", None), "10.9.0.0/24"),
        ("registry version", lambda v: ({}, "db1", {"registry_version": v}), "v1"),
    ]
    for where, put, harmless in places:
        try:
            hostile = render(*put(payload))
        except UnsafeValue:
            continue
        yield where, render(*put(harmless)), hostile


def skeleton(text: str, multiline: bool = False) -> list[int]:
    """The structure of a file as its reader tokenizes it: quoted values ('...' with '' or
    backslash escapes, "..." with "" escapes; across lines only in SQL) become one field,
    comments (# or --, outside quotes) are dropped; the number of fields on each line is
    what a payload must never change."""
    out: list[str] = []
    i, quote = 0, ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == "'" and not multiline:
                i += 2
                continue
            if c == quote and text[i + 1:i + 2] == quote:
                i += 2
                continue
            if c == quote:
                quote = ""
                out.append("Q")
            elif c == "\n" and not multiline:
                out.append("<newline inside quotes>\n")
                quote = ""
            i += 1
            continue
        if c in "'\"":
            quote = c
        elif c == "#" or text.startswith("--", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return [len(line.split()) for line in "".join(out).splitlines()]


def structure(template: str, text: str) -> list[Any]:
    """What a payload must never change in a rendered file: its lines, and on each line
    the fields the program reading it will see."""
    lines = text.splitlines()
    if template.endswith("pgpass.j2"):  # fields split at unescaped colons
        return [len(re.split(r"(?<!\\):", line)) for line in lines
                if line and not line.startswith("#")]
    if template.startswith("cron/"):  # the schedule and user, then the shell's words
        found: list[Any] = []
        for line in lines:
            fields = line.split(None, 6)
            if len(fields) == 7 and not line.startswith("#"):
                found.append((fields[:6], len(shlex.split(fields[6]))))
            else:
                found.extend(skeleton(line))
        return found
    return skeleton(text, multiline=template.startswith("sql/"))


ENV_NAMES = {"node name": "NODE_NAME", "backup_root": "BACKUP_ROOT",
             "replication_user": "REPLICATION_USER", "backup_log_dir": "BACKUP_LOG_DIR"}


@pytest.mark.parametrize("template", TEMPLATES)
def test_no_value_escapes_its_quoting(template: str, tmp_path: Path) -> None:
    checked = 0
    for payload in HOSTILE:
        for where, benign, hostile in hostile_renderings(template, payload):
            if template.endswith("node.env.j2"):
                # bash itself reads the file: the same variables, each value exactly as it
                # was given (a quoted newline is part of its value), no command ran.
                def variables(text: str, name: str) -> tuple[str, str]:
                    env = tmp_path / "node.env"
                    env.write_text(text)
                    out = subprocess.run(
                        ["bash", "-c", f'before=$(compgen -v); . {env}; comm -13 '
                         f'<(echo "$before" | sort) <(compgen -v | sort) | grep -vx before; '
                         f'printf "%s" "${name}" > value'], cwd=tmp_path, capture_output=True,
                        text=True, check=True)
                    return out.stdout, (tmp_path / "value").read_bytes().decode()

                name = ENV_NAMES.get(where, "NODE_NAME")
                assert variables(hostile, name)[0] == variables(benign, name)[0], where
                assert not (tmp_path / "pwned").exists(), (where, payload)
                if where in ENV_NAMES:
                    assert variables(hostile, name)[1] == payload, (where, payload)
            else:
                if not template.startswith("sql/"):  # SQL literals may hold a newline
                    assert len(hostile.splitlines()) == len(benign.splitlines()), (where,
                                                                                   payload)
                assert structure(template, hostile) == structure(template, benign), (
                    template, where, payload)
            checked += 1
    assert checked, f"no hostile value reached {template}"


@pytest.mark.parametrize("payload", HOSTILE)
def test_postgresql_reads_back_exactly_the_value_given(payload: str) -> None:
    """A string setting written by pgvalue, read as PostgreSQL's GUC_scanstr reads it."""
    written = pgvalue(payload)
    inner = written[1:-1].replace("''", "'")
    read = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t", "b": "\b",
                                          "f": "\f"}.get(m.group(1), m.group(1)), inner)
    assert read == payload and "\n" not in written


def test_values_that_cannot_be_quoted_are_refused_not_written() -> None:
    for bad in ("10.0.0.0/8 trust", "host name", "a\nb"):
        with pytest.raises(UnsafeValue):
            hba_address(bad)
    for bad in ("* * * * * root", "0 2 * * 0; rm"):
        with pytest.raises(UnsafeValue):
            cron_schedule(bad)
    with pytest.raises(UnsafeValue):
        safe_path("/var/log/pg cluster")
    with pytest.raises(UnsafeValue):
        pgtoken("128MB\nfsync = off")
    assert hba_name("app") == "app" and hba_name('a"b') == '"a""b"'
