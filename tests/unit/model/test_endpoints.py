"""The endpoints as data (pgcluster.model.endpoints): HAProxy's configuration for both
engines, PgBouncer's files and lookup, the proxies' names in the node certificates, and
the refusals before any host is touched."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pgcluster.control import tls
from pgcluster.control.preflight import validate_inventory
from pgcluster.control.templating import render_template, template_context
from pgcluster.errors import ConfigError
from pgcluster.model import endpoints
from pgcluster.model.cluster import Cluster, HostEntry, ServiceHost
from tests.unit.helpers import ALL, SECRETS, three_nodes

DATA = {**ALL, **SECRETS}


def with_proxy(**data: Any) -> list[HostEntry]:
    return [*three_nodes(**data),
            HostEntry("px", ("proxy",), {**DATA, "node_address": "10.0.2.1", **data})]


def haproxy_cfg(**data: Any) -> str:
    c = Cluster.from_entries(with_proxy(**data))
    return render_template("haproxy/haproxy.cfg.j2",
                           endpoints.haproxy_context({**DATA, **data}, c, c.proxy_hosts[0]))


def section(cfg: str, name: str, kind: str = "backend") -> str:
    match = re.search(rf"^{kind} {name}\n(.*?)(?=^\S|\Z)", cfg, re.S | re.M)
    assert match, name
    return match.group(1)


def test_a_proxy_host_is_no_database_node_and_needs_no_password() -> None:
    bare = {k: v for k, v in DATA.items() if k not in SECRETS}
    entries = [*three_nodes(), HostEntry("px", ("proxy",), {**bare, "node_address": "10.0.2.1"})]
    c = validate_inventory(entries)
    assert [n.name for n in c.nodes] == ["db1", "db2", "db3"]
    assert [p.address for p in c.proxy_hosts] == ["10.0.2.1"]
    assert c.proxy_host("px") is not None and not c.is_node("px")


def test_writes_go_to_the_one_primary_and_reads_to_qualified_replicas() -> None:
    cfg = haproxy_cfg()
    primary = section(cfg, "primary")
    assert "option httpchk OPTIONS /primary" in primary
    for n, address in (("db1", "10.0.0.1"), ("db2", "10.0.0.2"), ("db3", "10.0.0.3")):
        assert (f"server {n} {address}:6432 check port 8008 check-ssl verify required "
                f"ca-file /etc/haproxy/pgcluster-ca.crt verifyhost {n}") in primary
    # A split brain (two servers up) is no write target.
    assert "tcp-request connection reject unless { nbsrv(primary) eq 1 }" in section(
        cfg, "primary", "frontend")
    assert "tcp-request connection reject unless { nbsrv(primary-direct) eq 1 }" in cfg
    replicas = section(cfg, "replicas")
    assert f"option httpchk OPTIONS /replica?lag={16 * 1024 * 1024}" in replicas
    # The primary only as a backup, following the primary backend's checks.
    assert "server db1-as-primary 10.0.0.1:6432 backup track primary/db1" in replicas
    direct = section(cfg, "replicas-direct")
    assert "server db2 10.0.0.2:5432 track replicas/db2" in direct
    assert "on-marked-down shutdown-sessions" in cfg
    assert "bind 127.0.0.1:7000" in section(cfg, "stats", "listen")
    assert "stats admin" not in cfg  # read-only page


def test_group_data_sets_the_ports_the_bound_and_the_fallback() -> None:
    cfg = haproxy_cfg(proxy_rw_port=6000, proxy_ro_port=6001, proxy_max_replica_lag=1024,
                      proxy_ro_fallback="none", proxy_check_interval=1000, proxy_check_rise=3)
    assert "bind :6000" in section(cfg, "primary", "frontend") and "bind :6001" in cfg
    assert "OPTIONS /replica?lag=1024" in cfg
    assert "-as-primary" not in cfg
    assert "inter 1000 fastinter 500 downinter 1000 fall 2 rise 3" in cfg


def test_pgbouncer_pools_over_the_socket_with_tls_and_no_password() -> None:
    c = Cluster.from_entries(with_proxy())
    ctx = template_context(DATA, c.nodes[0], c)
    ini = render_template("pgbouncer/pgbouncer.ini.j2", ctx)
    assert "* = host=/var/run/postgresql port=5432 auth_user=pgbouncer" in ini
    assert "listen_addr = 10.0.0.1\nlisten_port = 6432" in ini
    assert "auth_type = scram-sha-256" in ini and "client_tls_sslmode = require" in ini
    assert f"auth_query = {endpoints.AUTH_QUERY}" in ini
    assert "pool_mode = transaction" in ini and "max_db_connections = 50" in ini
    assert "password" not in ini.lower().replace("no password", "")
    assert render_template("pgbouncer/userlist.txt.j2", ctx) == '"pgbouncer" ""\n'


def test_the_lookup_never_hands_out_superusers_replication_roles_or_its_own() -> None:
    c = Cluster.from_entries(with_proxy())
    sql = render_template("sql/pgbouncer.sql.j2", template_context(DATA, c.nodes[0], c))
    body = endpoints.lookup_body(["rewinder", "pgbouncer"])
    assert "NOT s.usesuper AND NOT s.userepl" in body
    assert "s.usename NOT IN ('rewinder', 'pgbouncer')" in body
    assert "SECURITY DEFINER" in sql and "REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) " \
                                        "FROM PUBLIC" in sql
    assert "GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer" in sql
    # The deploy compares the installed body with this one by its md5.
    assert endpoints.lookup_digest(DATA) == __import__("hashlib").md5(body.encode()).hexdigest()


def test_pg_hba_lets_pgbouncer_in_by_peer_only_and_the_proxies_over_tls() -> None:
    c = Cluster.from_entries(with_proxy())
    ctx = template_context(DATA, c.nodes[0], c)
    hba = render_template("postgresql/pg_hba.conf.j2", ctx)
    lines = [" ".join(line.split()) for line in hba.splitlines() if not line.startswith("#")]
    peer = lines.index("local all pgbouncer peer map=pgbouncer")
    assert peer < lines.index("local all all scram-sha-256")
    assert "host all pgbouncer all reject" in lines
    assert "hostssl all all 10.0.2.1/32 scram-sha-256 # px" in lines
    ident = render_template("postgresql/pg_ident.conf.j2", ctx)
    assert "pgbouncer postgres pgbouncer" in " ".join(ident.split())
    # Without a proxy, none of it.
    plain = Cluster.from_entries(three_nodes())
    hba = render_template("postgresql/pg_hba.conf.j2", template_context(DATA, plain.nodes[0],
                                                                        plain))
    assert "pgbouncer" not in hba


def test_node_certificates_name_the_proxies_clients_dial() -> None:
    c = Cluster.from_entries(with_proxy())
    assert endpoints.proxy_names(c) == ["px", "10.0.2.1"]
    assert tls.node_names(DATA, "db1", "10.0.0.1", proxies=endpoints.proxy_names(c)) == [
        "db1", "10.0.0.1", "px", "10.0.2.1"]


def test_colliding_ports_and_pools_too_big_are_refused() -> None:
    def refused(entries: list[HostEntry]) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            validate_inventory(entries)
        return caught.value.problems

    found = refused(with_proxy(proxy_ro_port=5000))
    assert any(p.startswith("ports collide on the proxy px: proxy_rw_port and proxy_ro_port "
                            "are all 5000") for p in found), found
    found = refused(with_proxy(pgbouncer_port=8008))
    assert any("pgbouncer_port and patroni_rest_port are both 8008" in p for p in found), found
    found = refused(with_proxy(max_connections=40))
    assert any(p.startswith("pgbouncer_max_db_connections = 50 on db1 leaves no room under "
                            "max_connections = 40") for p in found), found
    validate_inventory(three_nodes(max_connections=40))  # no proxy, no PgBouncer: fine
    validate_inventory(with_proxy(max_connections=40, pgbouncer_max_db_connections=20))


def test_the_endpoints_and_multi_host_strings_given_to_applications() -> None:
    ports = {k: int(ALL[k]) for k in endpoints.PORT_KEYS}
    rw, ro, *_ = endpoints.endpoints("db.example.net", ports)
    assert rw.conninfo("app", "proyecto_db", "/ca.crt") == (
        "host=db.example.net port=5000 dbname=proyecto_db user=app sslmode=verify-full "
        "sslrootcert=/ca.crt")
    assert ro.port == 5001
    assert endpoints.multi_host([("a", 5432), ("b", 5433)], "app", "d", "/ca.crt",
                                "read-write").startswith(
        "host=a,b port=5432,5433 dbname=d user=app target_session_attrs=read-write ")


def test_a_proxy_is_a_service_host_of_its_own_kind() -> None:
    entries = with_proxy()
    assert ServiceHost("px", "px", "10.0.2.1") == Cluster.from_entries(entries).proxy_hosts[0]


HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,"
          "eresp,wretr,wredis,status,weight")
STATS_CSV = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + HEADER + """
stats,FRONTEND,,,0,1,4000,1,0,0,0,0,0,,,,,OPEN,
primary,FRONTEND,,,0,1,4000,1,0,0,0,0,0,,,,,OPEN,
primary,db1,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1
primary,db2,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1
primary,db3,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1
primary,BACKEND,0,0,0,1,400,1,0,0,0,0,,0,0,0,0,UP,1
replicas,db1,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1
replicas,db2,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1
replicas,db3,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP 1/2,1
replicas,db1-as-primary,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1
replicas,db2-as-primary,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1
replicas,db3-as-primary,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1
"""


def test_status_reads_which_node_each_endpoint_serves_from_haproxy_s_statistics() -> None:
    view = endpoints.parse_stats(STATS_CSV)
    assert endpoints.serving(view["read-write"]) == ["db2"]
    # The fallback to the primary only while no replica is up.
    assert endpoints.serving(view["read-only"]) == ["db1", "db3"]
    assert endpoints.proxy_findings("px", view) == []
    no_replica = STATS_CSV.replace("replicas,db1,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP",
                                   "replicas,db1,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN").replace(
        "UP 1/2", "DOWN")
    assert endpoints.serving(endpoints.parse_stats(no_replica)["read-only"]) == ["db2"]
    split = STATS_CSV.replace("primary,db1,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN",
                              "primary,db1,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP")
    assert endpoints.proxy_findings("px", endpoints.parse_stats(split)) == [
        "the read-write endpoint of px has 2 write targets (db1, db2): it refuses connections"]
    nothing = STATS_CSV.replace(",UP", ",DOWN").replace("UP 1/2", "DOWN")
    assert "the read-write endpoint of px has no write target" in endpoints.proxy_findings(
        "px", endpoints.parse_stats(nothing))
    assert endpoints.parse_stats("not haproxy") == {}
    assert "/dev/tcp/10.0.2.1/7000" in endpoints.stats_command("10.0.2.1", 7000)
