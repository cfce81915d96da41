"""Patroni and etcd as data: the etcd members and environment, the DCS's settings, the checks
on the high-availability settings, what Patroni 3.0.2 prints read back (from output its own
code printed), and the patronictl command lines."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from pgcluster.control import secrets
from pgcluster.control.preflight import validate_inventory
from pgcluster.errors import ConfigError
from pgcluster.model.cluster import Cluster, HostEntry
from pgcluster.model.patroni import (
    PatroniOutputError,
    command_result,
    dcs_config,
    dcs_parameters,
    dcs_patch,
    effective_engine,
    etcd_environment,
    etcd_members,
    failover_command,
    host_port,
    initial_cluster,
    list_command,
    member_count_problem,
    parse_cluster,
    parse_members,
    patroni_config,
    patroni_tags,
    restart_candidate,
    runs_etcd,
    switchover_command,
)
from tests.unit.helpers import ALL, SECRETS, cluster, entry, three_nodes

DATA = {**ALL, **SECRETS}
FIXTURES = Path(__file__).parents[1] / "fixtures"


def data(**extra: Any) -> dict[str, Any]:
    return {**DATA, **extra}


# --------------------------------------------------------------------------------- etcd


def test_every_database_node_is_an_etcd_member_with_tls_urls() -> None:
    members = etcd_members(cluster(), DATA)
    assert [(m.name, m.peer_url, m.client_url, m.client) for m in members] == [
        ("db1", "https://10.0.0.1:2380", "https://10.0.0.1:2379", "10.0.0.1:2379"),
        ("db2", "https://10.0.0.2:2380", "https://10.0.0.2:2379", "10.0.0.2:2379"),
        ("db3", "https://10.0.0.3:2380", "https://10.0.0.3:2379", "10.0.0.3:2379"),
    ]
    assert initial_cluster(cluster(), DATA) == (
        "db1=https://10.0.0.1:2380,db2=https://10.0.0.2:2380,db3=https://10.0.0.3:2380")


def test_ports_come_from_group_data_and_ipv6_addresses_get_brackets() -> None:
    c = Cluster.from_entries([entry("db1", "primary", node_address="fd00::1"),
                              entry("db2", "standby", node_address="10.0.0.2")])
    members = etcd_members(c, data(etcd_peer_port=12380, etcd_client_port=12379))
    assert members[0].peer_url == "https://[fd00::1]:12380"
    assert members[0].client == "[fd00::1]:12379"
    assert members[1].client_url == "https://10.0.0.2:12379"
    assert host_port("db1.example.net", 8008) == "db1.example.net:8008"


def test_etcd_environment_of_each_node() -> None:
    c = cluster()
    env = etcd_environment(DATA, c.node("db2"), c)
    assert env["ETCD_NAME"] == "db2"
    assert env["ETCD_DATA_DIR"] == "/var/lib/etcd/pgcluster"  # not Debian's default
    assert env["ETCD_LISTEN_PEER_URLS"] == env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == \
        "https://10.0.0.2:2380"
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "https://10.0.0.2:2379,https://127.0.0.1:2379"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "https://10.0.0.2:2379"
    assert env["ETCD_INITIAL_CLUSTER"] == initial_cluster(c, DATA)
    assert env["ETCD_INITIAL_CLUSTER_TOKEN"] == "pgcluster-etcd"
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    for prefix in ("ETCD_", "ETCD_PEER_"):
        assert env[f"{prefix}CERT_FILE"] == "/etc/etcd/tls/server.crt"
        assert env[f"{prefix}KEY_FILE"] == "/etc/etcd/tls/server.key"
        assert env[f"{prefix}TRUSTED_CA_FILE"] == "/etc/etcd/tls/ca.crt"
        assert env[f"{prefix}CLIENT_CERT_AUTH"] == "true"
    assert (env["ETCD_HEARTBEAT_INTERVAL"], env["ETCD_ELECTION_TIMEOUT"]) == ("100", "1000")
    assert env["ETCD_AUTO_COMPACTION_MODE"] == "periodic"


def test_a_node_on_the_loopback_listens_there_once() -> None:
    c = Cluster.from_entries([entry("lab", "primary", node_address="127.0.0.1")])
    env = etcd_environment(DATA, c.nodes[0], c)
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "https://127.0.0.1:2379"
    assert env["ETCD_INITIAL_CLUSTER"] == "lab=https://127.0.0.1:2380"


# ------------------------------------------------------------------------------ Patroni


def test_the_dcs_holds_patroni_s_timing_and_the_settings_nodes_share() -> None:
    dcs = dcs_config(DATA, cluster())
    assert {k: v for k, v in dcs.items() if k not in ("postgresql", "slots")} == {
        "ttl": 20, "loop_wait": 5, "retry_timeout": 5, "maximum_lag_on_failover": 1048576,
        "primary_start_timeout": 300, "failsafe_mode": True, "synchronous_mode": False}
    assert dcs["postgresql"] == {"use_pg_rewind": True, "use_slots": True, "parameters": {
        "max_connections": 100, "max_wal_senders": 10, "max_replication_slots": 10,
        "wal_level": "replica", "wal_keep_size": "512MB"}}
    # Every node's slot, by pgcluster's name for it (Patroni's slot_name_from_member_name
    # gives the same for a valid node name).
    assert dcs["slots"] == {"db1": {"type": "physical"}, "db2": {"type": "physical"},
                            "db3": {"type": "physical"}}
    renamed = Cluster.from_entries([entry("pg-primary", "primary", node_address="10.0.0.1")])
    assert dcs_config(DATA, renamed)["slots"] == {"pg_primary": {"type": "physical"}}


def test_dcs_parameters_take_postgresql_settings_extra_where_set() -> None:
    params = dcs_parameters(data(postgresql_settings_extra={
        "max_worker_processes": 16, "Max_Locks_Per_Transaction": 128,
        "track_commit_timestamp": True, "work_mem": "64MB"}))
    assert params["max_worker_processes"] == 16
    assert params["max_locks_per_transaction"] == 128
    assert params["track_commit_timestamp"] == "on"  # as pg_ctl's command line takes it
    assert "work_mem" not in params  # postgresql.conf (custom_conf) keeps the rest
    assert "max_prepared_transactions" not in params  # not set: Patroni's default is PG's


def test_synchronous_standbys_turn_synchronous_mode_on_and_the_others_nosync() -> None:
    assert dcs_config(data(synchronous_standbys=["db2"]), cluster())["synchronous_mode"] is True
    c = cluster()
    sync = data(synchronous_standbys=["db2"])
    assert patroni_tags(sync, c.node("db2"))["nosync"] is False
    assert patroni_tags(sync, c.node("db1"))["nosync"] is True  # not named
    assert patroni_tags(sync, c.node("db3")) == {"nofailover": True, "noloadbalance": False,
                                                 "clonefrom": False, "nosync": True}
    assert patroni_tags(DATA, c.node("db1")) == {"nofailover": False, "noloadbalance": False,
                                                 "clonefrom": False, "nosync": False}


def test_replication_credentials_use_the_same_tls_options_as_every_node_connection() -> None:
    c = cluster()
    auth = patroni_config(DATA, c.node("db2"), c)["postgresql"]["authentication"]
    assert auth["superuser"] == {"username": "postgres"}  # peer, over the socket
    tls = {"sslmode": "verify-full", "sslrootcert": "/etc/postgresql/15/main/tls/ca.crt",
           "channel_binding": "require"}
    assert auth["replication"] == {"username": "replicator", "password": "s3cret-repl", **tls}
    assert auth["rewind"] == {"username": "rewinder", "password": "s3cret-rewind", **tls}


def test_initdb_options_follow_group_data() -> None:
    c = cluster()
    initdb = patroni_config(data(data_checksums=False, initdb_locale="es_ES.UTF-8"),
                            c.node("db1"), c)["bootstrap"]["initdb"]
    assert initdb == [{"encoding": "UTF8"}, {"locale": "es_ES.UTF-8"},
                      {"auth-local": "peer"}, {"auth-host": "scram-sha-256"}]


def test_dcs_patch_is_what_differs() -> None:
    current = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True,
               "postgresql": {"use_slots": True, "parameters": {"max_connections": "100",
                                                                "work_mem": "4MB"}}}
    wanted = dcs_config(DATA, cluster())
    patch = dcs_patch(current, wanted)
    assert patch["ttl"] == 20 and patch["loop_wait"] == 5 and "pause" not in patch
    assert "max_connections" not in patch["postgresql"]["parameters"]  # "100" is 100
    assert patch["postgresql"]["parameters"]["wal_keep_size"] == "512MB"
    assert dcs_patch(wanted, wanted) == {}


def test_engine_is_the_setting_else_the_running_one_else_manual() -> None:
    assert effective_engine("patroni", "manual") == "patroni"
    assert effective_engine(None, "patroni") == "patroni"
    assert effective_engine(None, None) == "manual"


# --------------------------------------------------------------------------- validation


def refused(entries: list[HostEntry]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_inventory(entries)
    return caught.value.problems


def accepted(entries: list[HostEntry]) -> None:
    assert validate_inventory(entries).nodes


# settings, what the refusal says
BAD = [
    ({"patroni_ttl": 19}, "patroni_ttl = 19 is out of range: use a whole number of seconds "
                          "from 20 to 3600, e.g. patroni_ttl = 20"),
    ({"patroni_ttl": "20"}, "patroni_ttl = '20' is not a whole number of seconds"),
    ({"patroni_loop_wait": 1}, "patroni_loop_wait = 1 is out of range"),
    ({"patroni_retry_timeout": 2}, "patroni_retry_timeout = 2 is out of range"),
    ({"patroni_loop_wait": 10, "patroni_retry_timeout": 10},
     "patroni_loop_wait + 2 x patroni_retry_timeout = 10 + 2 x 10 = 30 is more than "
     "patroni_ttl = 20: the leader could lose its lock"),
    ({"patroni_ttl": 20, "patroni_loop_wait": 5, "patroni_retry_timeout": 8},
     "e.g. patroni_ttl = 21"),
    ({"patroni_ttl": 30, "patroni_loop_wait": 10, "patroni_retry_timeout": 11},
     "= 32 is more than patroni_ttl = 30: the leader could lose its lock while Patroni still "
     "retries the DCS, and a second primary be elected (Patroni's rule: loop_wait + 2 x "
     "retry_timeout <= ttl); e.g. patroni_ttl = 32, or patroni_retry_timeout = 10"),
    ({"patroni_loop_wait": 14, "patroni_retry_timeout": 3},
     "patroni_loop_wait + patroni_retry_timeout + 5 (the watchdog's safety margin) = 22 is "
     "more than patroni_ttl = 20"),
    ({"etcd_election_timeout": 400}, "etcd_election_timeout = 400 is less than 5 x "
                                     "etcd_heartbeat_interval = 500 (milliseconds): etcd "
                                     "refuses to start; e.g. etcd_election_timeout = 1000"),
    ({"etcd_heartbeat_interval": 300}, "etcd_election_timeout = 1000 is less than 5 x "
                                       "etcd_heartbeat_interval = 1500"),
    ({"etcd_election_timeout": 5000}, "etcd_election_timeout = 5000 is not shorter than "
                                      "patroni_retry_timeout = 5 s"),
    ({"etcd_election_timeout": 100000}, "etcd_election_timeout = 100000 is out of range"),
    ({"etcd_heartbeat_interval": 5}, "etcd_heartbeat_interval = 5 is out of range"),
    ({"etcd_data_dir": "/var/lib/etcd/default/"}, "is the etcd-server package's own directory"),
    ({"etcd_data_dir": "var/lib/etcd"}, "etcd_data_dir = 'var/lib/etcd' is not an absolute path"),
    ({"patroni_watchdog": "on"}, "patroni_watchdog = 'on' is not one of its values: use one of "
                                 "'off', 'automatic', 'required'"),
    ({"ha_engine": "Patroni"}, "ha_engine = 'Patroni' is not one of its values"),
    ({"patroni_rest_port": 5432}, "ports collide on db1: postgresql_port and patroni_rest_port "
                                  "are both 5432"),
    ({"etcd_client_port": 2380}, "etcd_client_port and etcd_peer_port are both 2380"),
    ({"patroni_scope": "pg.cluster"}, "patroni_scope = 'pg.cluster' is not a Patroni cluster "
                                      "name"),
    ({"patroni_namespace": "/pgcluster"}, "patroni_namespace = '/pgcluster' is not a DCS key "
                                          "prefix"),
    ({"patroni_rest_user": "pa:troni"}, "is not a user name for HTTP basic auth"),
    ({"patroni_maximum_lag_on_failover": "1MB"}, "is not a whole number"),
    ({"patroni_primary_start_timeout": -1}, "patroni_primary_start_timeout = -1 is out of "
                                            "range"),
]


@pytest.mark.parametrize("settings,message", BAD, ids=[str(s) for s, _ in BAD])
def test_bad_high_availability_settings_are_refused(settings: dict, message: str) -> None:
    found = refused(three_nodes(**settings))
    assert any(message in p for p in found), found


def test_there_are_enough_bad_values() -> None:
    assert len(BAD) >= 8


@pytest.mark.parametrize("settings", [
    {},  # all.py's: the fastest timing Patroni's docs call safe
    {"patroni_ttl": 30, "patroni_loop_wait": 10, "patroni_retry_timeout": 10},  # Patroni's
    {"patroni_ttl": 20, "patroni_loop_wait": 2, "patroni_retry_timeout": 9},  # the edge
    {"patroni_ttl": 20, "patroni_loop_wait": 14, "patroni_retry_timeout": 3,
     "patroni_watchdog": "off"},  # no watchdog, no safety margin needed
    {"etcd_heartbeat_interval": 100, "etcd_election_timeout": 500},  # exactly 5 heartbeats
    {"etcd_election_timeout": 4999},  # just under patroni_retry_timeout
    {"patroni_primary_start_timeout": 0, "patroni_watchdog": "required",
     "patroni_failsafe_mode": False},
    {"ha_engine": "manual"},
    {"ha_engine": "patroni"},
    {"ha_engine": "patroni", "synchronous_standbys": ["db1", "db2"]},
])
def test_good_high_availability_settings_pass(settings: dict) -> None:
    accepted(three_nodes(**settings))


def test_a_dcs_setting_must_be_the_same_on_every_node() -> None:
    nodes = three_nodes()
    nodes[2] = HostEntry(nodes[2].name, nodes[2].groups, {**nodes[2].data, "patroni_ttl": 30})
    assert ("patroni_ttl differs between nodes (20 on db1, db2; 30 on db3): the whole cluster "
            "shares one value; set it once, in group data") in refused(nodes)


PATRONI = {"ha_engine": "patroni"}


def test_patroni_refuses_two_nodes_and_allows_one_and_four() -> None:
    two = [entry("db1", "primary", node_address="10.0.0.1", **PATRONI),
           entry("db2", "standby", node_address="10.0.0.2", **PATRONI)]
    found = refused(two)
    assert len(found) == 1 and found[0].startswith("ha_engine 'patroni' with 2 nodes")
    assert "quorum" in found[0] and "use 3 nodes" in found[0]
    accepted([entry("db1", "primary", node_address="10.0.0.1", **PATRONI)])
    accepted([*three_nodes(**PATRONI),
              entry("db4", "readonly", node_address="10.0.0.4", **PATRONI)])
    accepted([entry("db1", "primary", node_address="10.0.0.1"),
              entry("db2", "standby", node_address="10.0.0.2")])  # manual: fine
    assert member_count_problem(3) is None and member_count_problem(1) is None


def test_patroni_refuses_what_it_would_silently_replace() -> None:
    found = refused(three_nodes(max_connections=20, wal_keep_size="8MB", hot_standby=False,
                                postgresql_settings_extra={"max_locks_per_transaction": 16},
                                **PATRONI))
    assert ("ha_engine 'patroni' needs max_connections of at least 25 (it is 20 on every node)"
            ": Patroni 3.0.2 ignores less and starts PostgreSQL with its own default") in found
    assert any("needs wal_keep_size of at least '16MB' (it is '8MB'" in p for p in found)
    assert any("postgresql_settings_extra['max_locks_per_transaction'] of at least 32" in p
               for p in found)
    assert ("ha_engine 'patroni' always starts PostgreSQL with hot_standby on: set "
            "hot_standby = True") in found
    # The same values are fine without Patroni.
    accepted(three_nodes(max_connections=30, wal_keep_size="8MB", hot_standby=False))


def test_patroni_needs_one_value_of_each_dcs_setting_and_ip_addresses() -> None:
    nodes = three_nodes(**PATRONI)
    nodes[2] = HostEntry(nodes[2].name, nodes[2].groups,
                         {**nodes[2].data, "max_connections": 200,
                          "node_address": "db3.example.net"})
    found = refused(nodes)
    assert any(p.startswith("ha_engine 'patroni' keeps max_connections in the DCS, one value "
                            "for every node, but the nodes differ (100 on db1, db2; 200 on "
                            "db3)") for p in found)
    assert any("needs an IP address as node_address on db3 ('db3.example.net' is a name)" in p
               for p in found)
    # A replica may have more without Patroni (PostgreSQL's own rule).
    manual = three_nodes()
    manual[2] = HostEntry(manual[2].name, manual[2].groups,
                          {**manual[2].data, "max_connections": 200})
    accepted(manual)


def test_patroni_rest_password_is_required_where_patroni_runs_like_the_others() -> None:
    assert "patroni_rest_password" in secrets.SECRET_KEYS
    assert secrets.LAB_DEFAULTS["patroni_rest_password"] == "patroni123"
    accepted(three_nodes(patroni_rest_password=None))  # the manual engine needs none
    found = refused(three_nodes(patroni_rest_password=None, ha_engine="patroni"))
    assert any(p.startswith("patroni_rest_password is not set for db1, db2, db3: export "
                            "PGCLUSTER_PATRONI_REST_PASSWORD=...") for p in found)
    found = refused(three_nodes(patroni_rest_password="patroni123"))
    assert any("patroni_rest_password for db1, db2, db3 is one of the Docker lab's documented "
               "passwords" in p for p in found)
    accepted(three_nodes(patroni_rest_password="patroni123", allow_lab_default_passwords=True))
    assert any("control characters" in p
               for p in refused(three_nodes(patroni_rest_password="a\nb")))


# ------------------------------------------------------- the `etcd` inventory group


def etcd_host(name: str, address: str, *groups: str, **data: Any) -> HostEntry:
    merged = {**ALL, **SECRETS, **PATRONI, "node_address": address, **data}
    return HostEntry(name, ("etcd", *groups), merged)


def with_etcd_hosts(count: int = 3, **data: Any) -> list[HostEntry]:
    return [*three_nodes(**PATRONI),
            *(etcd_host(f"e{i}", f"10.0.1.{i}", **data) for i in range(1, count + 1))]


def test_an_etcd_group_makes_its_hosts_the_members_and_the_nodes_clients() -> None:
    entries = with_etcd_hosts()
    c = validate_inventory(entries)
    assert [n.name for n in c.nodes] == ["db1", "db2", "db3"]  # no PostgreSQL on e1-e3
    assert [e.name for e in c.etcd_hosts] == ["e1", "e2", "e3"]
    members = etcd_members(c, DATA)
    assert [m.client for m in members] == ["10.0.1.1:2379", "10.0.1.2:2379", "10.0.1.3:2379"]
    assert runs_etcd(c, "e1") and not runs_etcd(c, "db1")
    env = etcd_environment(DATA, c.etcd_host("e2"), c)
    assert env["ETCD_INITIAL_CLUSTER"] == ("e1=https://10.0.1.1:2380,e2=https://10.0.1.2:2380,"
                                           "e3=https://10.0.1.3:2380")
    with pytest.raises(KeyError, match="db1 is not a member of the etcd cluster"):
        etcd_environment(DATA, c.node("db1"), c)
    # Without the group, every node is a member.
    assert runs_etcd(cluster(), "db1")


def test_a_node_may_be_in_the_etcd_group_beside_its_role() -> None:
    entries = three_nodes(**PATRONI)
    entries[0] = HostEntry("db1", ("primary", "etcd"), entries[0].data)
    entries += [etcd_host("e1", "10.0.1.1"), etcd_host("e2", "10.0.1.2")]
    c = validate_inventory(entries)
    assert [n.name for n in c.nodes] == ["db1", "db2", "db3"]
    assert [m.name for m in etcd_members(c, DATA)] == ["db1", "e1", "e2"]
    assert runs_etcd(c, "db1") and not runs_etcd(c, "db2")


def test_an_etcd_group_of_one_two_or_four_hosts_is_refused() -> None:
    for count, words in ((1, "has 1 host: "), (2, "has 2 hosts: "), (4, "has 4 hosts: an even")):
        found = refused(with_etcd_hosts(count))
        assert any(p.startswith(f"the inventory's `etcd` group {words}") for p in found), found
    accepted(with_etcd_hosts(5))
    # Two database nodes are fine with 3 etcd hosts: the quorum is the group's.
    two = [*three_nodes(**PATRONI)[:2], *with_etcd_hosts()[3:]]
    accepted(two)


def test_an_etcd_group_needs_patroni_ip_addresses_and_names_of_its_own() -> None:
    manual = [*three_nodes(), *with_etcd_hosts()[3:]]
    found = refused(manual)
    assert any("only Patroni uses, but ha_engine is not 'patroni' on db1, db2, db3" in p
               for p in found), found
    named = with_etcd_hosts()
    named[3] = etcd_host("e1", "etcd1.example.net")
    assert any("etcd host e1 needs an IP address as node_address ('etcd1.example.net'" in p
               for p in refused(named))
    twins = with_etcd_hosts()
    twins[4] = etcd_host("e2", "10.0.1.2", node_name="e1")
    assert any("share the member name 'e1'" in p for p in refused(twins))
    clash = with_etcd_hosts()
    clash[3] = etcd_host("e1", "10.0.0.1")  # db1's address
    assert any("etcd host e1 has the address 10.0.0.1 of the node db1: to run etcd on that "
               "node, put db1 itself in the `etcd` group" in p for p in refused(clash))


def test_an_etcd_only_host_needs_no_password() -> None:
    bare = {k: v for k, v in {**ALL, **PATRONI}.items() if k not in SECRETS}
    accepted([*three_nodes(**PATRONI),
              *(HostEntry(f"e{i}", ("etcd",), {**bare, "node_address": f"10.0.1.{i}"})
                for i in (1, 2, 3))])


def test_a_host_in_no_group_is_still_refused_and_the_message_names_etcd() -> None:
    entries = [*three_nodes(**PATRONI), HostEntry("stray", (), {**ALL, **SECRETS, **PATRONI,
                                                               "node_address": "10.0.2.1"})]
    assert any(p.startswith("host stray has no role") and "only to etcd" in p
               for p in refused(entries))


# -------------------------------------------------- what Patroni 3.0.2 prints, read back


def patroni_output() -> dict[tuple[str, str], str]:
    """tests/unit/fixtures/patroni-3.0.2-output.txt: printed by Patroni 3.0.2's own
    output_members and cluster_as_json (tests/unit/fixtures/patroni_output.py)."""
    found, lines = {}, (FIXTURES / "patroni-3.0.2-output.txt").read_text().splitlines()
    for header, body in zip(lines[::2], lines[1::2], strict=True):
        name, kind = header.removeprefix("== ").split(" ", 1)
        found[(name, "rest" if kind == "GET /cluster" else "patronictl")] = body
    return found


OUTPUT = patroni_output()
PARSERS = {"patronictl": parse_members, "rest": parse_cluster}


@pytest.mark.parametrize("source", ["patronictl", "rest"])
def test_a_healthy_cluster(source: str) -> None:
    view = PARSERS[source](OUTPUT[("healthy", source)])
    assert view.source == source
    assert view.leader == "db1" and [m.name for m in view.leaders] == ["db1"]
    db1, db2, db3 = view.members
    assert (db1.role, db1.state, db1.timeline, db1.lag_bytes) == ("leader", "running", 2, None)
    assert (db2.role, db2.host, db2.timeline, db2.lag_bytes) == ("replica", "10.0.0.2", 2, 0)
    assert db3.tags == {"nofailover": True, "nosync": True} and db3.nofailover
    # patronictl rounds to whole MB; the REST API gives bytes.
    assert db3.lag_bytes == (3 * 1024 * 1024 if source == "patronictl" else 3146728)
    assert db3.lag_exact is (source == "rest")
    assert view.problems() == [] and view.notes() == []
    assert view.problems(max_lag_bytes=1024 * 1024) == []  # db3 is never promoted anyway


@pytest.mark.parametrize("source", ["patronictl", "rest"])
def test_no_leader(source: str) -> None:
    view = PARSERS[source](OUTPUT[("no_leader", source)])
    assert view.leader is None and view.leaders == []
    assert view.member("db1").state == "stopped" and view.member("db1").timeline is None
    assert view.member("db1").lag_bytes is None  # "unknown"
    problems = view.problems()
    assert problems[0].startswith("no leader: no member holds the leader lock")
    assert "db1 is stopped, not running" in problems


@pytest.mark.parametrize("source", ["patronictl", "rest"])
def test_a_synchronous_standby_a_pending_restart_and_maintenance_mode(source: str) -> None:
    view = PARSERS[source](OUTPUT[("sync_and_pending", source)])
    assert view.member("db2").role == "sync_standby"
    assert view.member("db1").pending_restart and not view.member("db2").pending_restart
    assert view.member("db3").lag_bytes is None  # "unknown"
    assert view.problems() == []  # a pending restart is a note, not a problem
    notes = view.notes()
    assert any(n.startswith("db1 has a pending restart") for n in notes)
    # Maintenance mode is in GET /cluster only, not in patronictl's JSON.
    assert view.paused is (True if source == "rest" else None)
    assert any(n.startswith("maintenance mode") for n in notes) is (source == "rest")


def test_a_port_other_than_5432_and_a_starting_member() -> None:
    listed = parse_members(OUTPUT[("port_5433", "patronictl")])
    rest = parse_cluster(OUTPUT[("port_5433", "rest")])
    for view in (listed, rest):
        assert [(m.host, m.port) for m in view.members] == [("10.0.0.1", 5433),
                                                             ("10.0.0.2", 5433)]
        assert view.problems() == [
            "db2 is starting, not running", "no failover candidate: no member but the "
            "leader db1 is running without nofailover, so nothing could replace it"]


def test_two_leaders() -> None:
    # One DCS never names two leaders; two views put together can (a partition, or two
    # clusters listed at once: patronictl prints one array for each).
    other = OUTPUT[("healthy", "patronictl")].replace('"Role": "Replica", "State": "running",'
                                                      ' "TL": 2, "Lag in MB": 0',
                                                      '"Role": "Leader", "State": "running",'
                                                      ' "TL": 3', 1)
    assert other.count('"Leader"') == 2
    view = parse_members(other)
    assert view.leader is None and [m.name for m in view.leaders] == ["db1", "db2"]
    problems = view.problems()
    assert problems[0].startswith("more than one leader: db1, db2")
    both = parse_members(OUTPUT[("healthy", "patronictl")] + "\n"
                         + OUTPUT[("port_5433", "patronictl")])
    assert [m.name for m in both.leaders] == ["db1", "db1"]
    assert both.problems()[0].startswith("more than one leader")


def test_a_replica_on_an_old_timeline_or_too_far_behind() -> None:
    text = OUTPUT[("healthy", "rest")].replace('"timeline": 2, "lag": 0',
                                               '"timeline": 1, "lag": 5000000')
    view = parse_cluster(text)
    assert view.problems() == ["db2 is on timeline 1, the leader db1 on 2: it does not follow "
                               "it yet"]
    assert ("db2 is 5000000 bytes behind, more than 1048576: Patroni would not promote it"
            in view.problems(max_lag_bytes=1048576))


def test_a_running_replica_whose_patroni_cannot_read_its_timeline() -> None:
    # As 3.0.2 lists a replica whose replication connection to localhost is refused: no TL.
    text = OUTPUT[("healthy", "patronictl")].replace(
        '"Role": "Replica", "State": "running", "TL": 2, "Lag in MB": 0',
        '"Role": "Replica", "State": "running", "Lag in MB": 0', 1)
    assert text != OUTPUT[("healthy", "patronictl")]
    problems = parse_members(text).problems()
    assert len(problems) == 1 and problems[0].startswith("db2 runs on no known timeline")
    assert "pg_hba.conf" in problems[0]


def test_an_empty_cluster_and_output_that_is_not_patroni_s() -> None:
    assert parse_members("[]").problems()[0].startswith("Patroni reports no members")
    for bad in ("Error: Provided config file /etc/patroni/config.yml not existing", "{}",
                '[{"Name": "db1"}]', ""):
        with pytest.raises(PatroniOutputError):
            parse_members(bad)
    for bad in ("[]", '{"members": {}}', "not json"):
        with pytest.raises(PatroniOutputError):
            parse_cluster(bad)


# --------------------------------------------------------------------------- patronictl


def test_patronictl_command_lines_are_shell_quoted_3_0_2_flags() -> None:
    assert list_command() == "patronictl -c /etc/patroni/config.yml list -f json"
    assert switchover_command("db1", "db2") == (
        "patronictl -c /etc/patroni/config.yml switchover --leader db1 --candidate db2 --force")
    assert switchover_command("db1") == (
        "patronictl -c /etc/patroni/config.yml switchover --leader db1 --force")
    assert shlex.split(switchover_command("db1", scheduled="2025-01-01T02:00+00:00"))[-3:] == [
        "--scheduled", "2025-01-01T02:00+00:00", "--force"]
    assert failover_command("db2") == (
        "patronictl -c /etc/patroni/config.yml failover --candidate db2 --force")
    assert shlex.split(failover_command("x; rm -rf /")) == [
        "patronictl", "-c", "/etc/patroni/config.yml", "failover", "--candidate",
        "x; rm -rf /", "--force"]


def test_the_result_of_a_switchover_is_read_from_its_output_not_its_exit_status() -> None:
    done = command_result("Current cluster topology\n+ table +\n"
                          '2025-01-01 02:00:00.123456 Successfully switched over to "db2"\n')
    assert done.ok and done.leader == "db2"
    assert command_result('2025-01-01 Successfully failed over to "db2"').leader == "db2"
    other = command_result('2025-01-01 Switched over to "db3" instead of "db2"')
    assert other.ok and other.leader == "db3"
    assert command_result("2025-01-01 Switchover scheduled").ok
    failed = command_result("Switchover failed, details: 503, Switchover failed")
    assert not failed.ok and failed.message.startswith("Switchover failed, details: 503")
    assert not command_result("2025-01-01 Could not switchover using Patroni api, falling "
                              "back to DCS").ok
    assert not command_result("").ok


def test_no_failover_candidate_when_the_standby_is_down() -> None:
    text = OUTPUT[("healthy", "rest")].replace(
        '"name": "db2", "role": "replica", "state": "running"',
        '"name": "db2", "role": "replica", "state": "stopped"')
    assert parse_cluster(text).problems() == [
        "db2 is stopped, not running", "no failover candidate: no member but the leader db1 "
        "is running without nofailover, so nothing could replace it"]  # db3 is nofailover
    one = parse_cluster('{"members": [{"name": "lab", "role": "leader", "state": "running",'
                        ' "host": "127.0.0.1", "port": 5432, "timeline": 1}]}')
    assert one.problems() == []  # a one-node lab has no failover to lose


def test_the_restart_candidate_is_a_promotable_running_replica_sync_first() -> None:
    def view(*rows: str) -> Any:
        return parse_members("[" + ", ".join(rows) + "]")

    leader = '{"Member": "db1", "Host": "h1", "Role": "Leader", "State": "running", "TL": 2}'
    behind = ('{"Member": "db2", "Host": "h2", "Role": "Replica", "State": "running", '
              '"TL": 2, "Lag in MB": 5}')
    close = ('{"Member": "db3", "Host": "h3", "Role": "Replica", "State": "running", '
             '"TL": 2, "Lag in MB": 0}')
    readonly = ('{"Member": "db4", "Host": "h4", "Role": "Replica", "State": "running", '
                '"TL": 2, "Lag in MB": 0, "Tags": {"nofailover": true}}')
    stopped = '{"Member": "db5", "Host": "h5", "Role": "Replica", "State": "stopped"}'
    assert restart_candidate(view(leader, behind, close, readonly)).name == "db3"
    sync = behind.replace('"Replica"', '"Sync Standby"')
    assert restart_candidate(view(leader, sync, close, readonly)).name == "db2"
    assert restart_candidate(view(leader, readonly, stopped)) is None
