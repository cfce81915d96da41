"""The lab definitions (lab/*.toml): names, networks, ports, scratch nodes."""

from __future__ import annotations

import pytest

from pgcluster.errors import ConfigError
from pgcluster.lab.definition import load_lab
from pgcluster.lab.docker import run_arguments


@pytest.mark.parametrize("name", ["seed", "test", "bench"])
def test_each_lab_has_its_own_scratch_node(name: str) -> None:
    lab_def = load_lab(name)
    scratch = lab_def.scratch
    assert scratch.name == f"{lab_def.prefix}-scratch" and scratch.role == "scratch"
    assert scratch.name not in lab_def.containers
    assert scratch.published_port not in {n.published_port for n in lab_def.nodes}
    assert scratch.address not in {n.address for n in lab_def.nodes}


def test_a_lab_that_publishes_nothing_has_an_unpublished_scratch_node() -> None:
    lab_def = load_lab("ssh")  # nodes reached at their own addresses, like VMs
    assert all(n.published_port is None for n in lab_def.nodes)
    assert lab_def.scratch.published_port is None
    assert lab_def.scratch.name == "pgssh-scratch"


def test_seed_lab_matches_the_report() -> None:
    lab = load_lab("seed")
    assert lab.network == "postgresql-network" and lab.subnet == "172.20.0.0/16"
    assert [(n.name, n.role, n.published_port, n.data_volume) for n in lab.nodes] == [
        ("postgresql-primary", "primary", 5432, "postgresql-primary-data"),
        ("postgresql-standby", "standby", 5433, "postgresql-standby-data"),
        ("postgresql-readonly", "readonly", 5434, "postgresql-readonly-data"),
    ]
    assert lab.backups_volume == "postgresql-backups"
    assert lab.bind_address == "127.0.0.1"


def test_test_lab_shares_nothing_with_the_seed_lab() -> None:
    seed, test = load_lab("seed"), load_lab("test")
    assert not set(seed.containers) & set(test.containers)
    assert not set(seed.volumes) & set(test.volumes)
    assert seed.network != test.network and seed.subnet != test.subnet
    assert not {n.published_port for n in seed.nodes} & {n.published_port for n in test.nodes}


def test_ssh_stand_ins_share_nothing_and_publish_nothing() -> None:
    """The SSH stand-ins are reached at their own addresses only, like VMs."""
    ssh = load_lab("ssh")
    for other in (load_lab("seed"), load_lab("test")):
        assert not set(ssh.containers) & set(other.containers)
        assert not set(ssh.volumes) & set(other.volumes)
        assert ssh.network != other.network and ssh.subnet != other.subnet
    assert all(node.published_port is None for node in ssh.nodes)
    args = run_arguments(ssh, ssh.node("primary"), "1")
    assert "--publish" not in args
    assert " ".join(args).count("--volume pgssh-backups:/backups") == 1


def test_pgcluster_lab_environment_selects_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLUSTER_LAB", "test")
    assert load_lab().name == "test"
    monkeypatch.setenv("PGCLUSTER_LAB", "nope")
    known = r"set PGCLUSTER_LAB to one of (\w+, )*seed, (\w+, )*test"  # labs may be added
    with pytest.raises(ConfigError, match=known):
        load_lab()


def test_lab_addresses_must_be_inside_the_subnet(tmp_path) -> None:
    text = (load_lab.__globals__["LAB_DIR"] / "seed.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('address = "172.20.0.11"', 'address = "10.0.0.11"'))
    with pytest.raises(ConfigError, match=r"10\.0\.0\.11 is outside 172\.20\.0\.0/16"):
        load_lab(str(bad))


def test_the_etcd_lab_has_etcd_only_containers_of_its_own() -> None:
    lab = load_lab("etcd")
    assert [(e.name, e.role, e.address) for e in lab.etcd] == [
        ("pgetcd-etcd1", "etcd", "172.22.0.20"), ("pgetcd-etcd2", "etcd", "172.22.0.21"),
        ("pgetcd-etcd3", "etcd", "172.22.0.22")]
    assert [n.role for n in lab.nodes] == ["primary", "standby", "readonly"]
    assert lab.proxy is not None and lab.proxy.name == "pgetcd-proxy"
    assert lab.containers == [n.name for n in (*lab.nodes, *lab.etcd, lab.proxy)]
    assert {"pgetcd-etcd1-data", "pgetcd-backups"} <= set(lab.volumes)
    assert dict(lab.data)["ha_engine"] == "patroni"
    for other in (load_lab("patroni"), load_lab("test"), load_lab("seed")):
        assert not set(lab.containers) & set(other.containers)
        assert lab.network != other.network and lab.subnet != other.subnet
    # An etcd container publishes nothing and mounts its volume where etcd keeps its data,
    # with no backups volume: it runs no PostgreSQL.
    args = " ".join(run_arguments(lab, lab.etcd[0], "2"))
    assert "--volume pgetcd-etcd1-data:/var/lib/etcd" in args
    assert "--publish" not in args and "pgetcd-backups" not in args
    assert lab.etcd_host_data(lab.etcd[0]) == {"node_name": "pgetcd-etcd1",
                                               "node_address": "172.22.0.20",
                                               "ha_engine": "patroni"}


def test_an_etcd_container_must_have_the_etcd_role_and_a_name_of_its_own(tmp_path) -> None:
    text = (load_lab.__globals__["LAB_DIR"] / "etcd.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('name = "pgetcd-etcd2"', 'name = "pgetcd-etcd1"'))
    with pytest.raises(ConfigError, match="two containers are named pgetcd-etcd1"):
        load_lab(str(bad))
    bad.write_text(text.replace('name = "pgetcd-etcd3"', 'name = "pgetcd-etcd3"\nrole = "standby"'))
    with pytest.raises(ConfigError, match=r"an \[\[etcd\]\] container's role is \"etcd\""):
        load_lab(str(bad))


def test_the_seed_lab_has_its_proxy_on_the_loopback_with_the_issue_s_ports() -> None:
    lab = load_lab("seed")
    assert lab.proxy is not None and lab.proxy.name == "postgresql-proxy"
    assert dict(lab.proxy_ports) == {5000: 5000, 5001: 5001, 5002: 5002, 5003: 5003,
                                     7000: 7000}
    args = " ".join(run_arguments(lab, lab.proxy, "2"))
    for port in (5000, 5001, 5002, 5003, 7000):
        assert f"--publish 127.0.0.1:{port}:{port}" in args
    assert "--volume postgresql" not in args  # no data, no backups: HAProxy only
    assert lab.proxy.name in lab.containers and "" not in lab.volumes
    assert lab.proxy_host_data(lab.proxy)["proxy_stats_address"] == lab.proxy.address
    ha = load_lab("ha")
    assert ha.published(5000) == 28500 and ha.published(7000) == 28700
    assert load_lab("test").proxy is None
