"""The lab definitions and the `docker run` they turn into."""

from __future__ import annotations

import pytest

from pgcluster.errors import ConfigError
from pgcluster.lab import load_lab, run_arguments


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


@pytest.mark.parametrize("cgroup", ["1", "2"])
def test_nodes_boot_systemd_without_privileged(cgroup: str) -> None:
    lab = load_lab("seed")
    args = run_arguments(lab, lab.node("standby"), cgroup)
    joined = " ".join(args)
    assert "--privileged" not in args
    assert "--name postgresql-standby --hostname postgresql-standby" in joined
    assert "--network postgresql-network --ip 172.20.0.11" in joined
    assert "--publish 127.0.0.1:5433:5432" in joined
    assert "--volume postgresql-standby-data:/var/lib/postgresql" in joined
    assert "--volume postgresql-backups:/backups" in joined
    assert "--stop-signal SIGRTMIN+3" in joined and "--tmpfs /run " in joined
    assert args[-2:] == ["pgcluster-node:bookworm", "/sbin/init"]
    if cgroup == "2":
        assert "--cgroupns host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw" in joined
    else:
        assert "--volume /sys/fs/cgroup:/sys/fs/cgroup:ro" in joined
