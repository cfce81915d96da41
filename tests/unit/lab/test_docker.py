"""The lab definitions and the `docker run` they turn into."""

from __future__ import annotations

import pytest

from pgcluster.lab.definition import load_lab
from pgcluster.lab.docker import run_arguments


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
