"""The cluster deployed over SSH on stand-ins for VMs, for the integration suite.

The stand-ins (lab/ssh.toml: pgssh-* containers on 172.26.0.0/16, nothing published) boot
systemd and run sshd. pgcluster.lab.standins gives them a login user that is not root, with
sudo and a key made for this test session; from then on every deploy and every check goes
through SSH only: pyinfra's SSH connector (inventory/standins.py, `_sudo`)
and testinfra's SSH backend. Nothing after the set-up uses `docker exec`.

PGCLUSTER_TEST_SSH_LAB names another stand-in lab definition (a lab/<name>.toml or a
path), PGCLUSTER_TEST_REUSE=1 keeps existing stand-ins, PGCLUSTER_TEST_KEEP=1 leaves them
running afterwards, as for the Docker lab (tests/integration/conftest.py).

Tests of other deploys over SSH (failover, backups) take the `ssh_cluster` fixture and call
`ssh_cluster.pyinfra("deploys/<name>.py", ...)`, then check with `ssh_cluster.psql(...)`
or `ssh_cluster.host(role)`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import testinfra

from pgcluster.control.session import Session
from pgcluster.facts.postgres import FIELD_SEP, psql_command
from pgcluster.lab.definition import Lab, LabNode, load_lab
from pgcluster.lab.docker import container_status, docker_available
from pgcluster.lab.standins import DEFAULT_USER, STANDIN_INVENTORY, StandIns, prepare
from tests.conftest import REPO, run_pyinfra, totals

SSH_LAB_NAME = os.environ.get("PGCLUSTER_TEST_SSH_LAB", "ssh")
# No defaults outside the Docker lab: the suite supplies the passwords, as a user would.
PASSWORDS = {"PGCLUSTER_ADMIN_PASSWORD": "ssh-admin-secret",
             "PGCLUSTER_REPLICATION_PASSWORD": "ssh-replication-secret",
             "PGCLUSTER_REWIND_PASSWORD": "ssh-rewind-secret",
             "PGCLUSTER_APP_PASSWORD": "ssh-app-secret"}
SSH_OPTIONS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
               "-o IdentitiesOnly=yes -o BatchMode=yes")


@dataclass
class SshCluster:
    """The stand-ins, and the cluster deployed on them over SSH."""

    standins: StandIns
    first_deploy: dict[str, int] = field(default_factory=dict)  # totals of the first run
    fresh: bool = True  # built from nothing (not kept from an earlier session)
    _hosts: dict[tuple[str, bool], Any] = field(default_factory=dict)

    @property
    def lab(self) -> Lab:
        return self.standins.lab

    @property
    def user(self) -> str:
        return self.standins.user

    def node(self, role: str) -> LabNode:
        """A node by role, or the drill host ("drill")."""
        if role == "drill" and self.lab.drill:
            return self.lab.drill
        return self.lab.node(role)

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """`python -m pgcluster --inventory inventory/standins.py ARGS`, as a user runs it."""
        return subprocess.run([sys.executable, "-m", "pgcluster", "--inventory",
                               STANDIN_INVENTORY, *args], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **self.env})

    @property
    def env(self) -> dict[str, str]:
        """What standins.py reads: the stand-ins, the login and the passwords."""
        return {**self.standins.env, **PASSWORDS}

    def pyinfra(self, deploy: str, *args: str, json_output: bool = False,
                ) -> subprocess.CompletedProcess:
        """`pyinfra -y inventory/standins.py DEPLOY ARGS`, as a user runs it."""
        return run_pyinfra(STANDIN_INVENTORY, deploy, *args, env=self.env,
                           json_output=json_output)

    def host(self, role: str, sudo: bool = True) -> Any:
        """testinfra over SSH as the login user; through sudo (root) unless sudo=False."""
        key = (role, sudo)
        if key not in self._hosts:
            self._hosts[key] = testinfra.get_host(
                f"ssh://{self.user}@{self.node(role).address}",
                ssh_identity_file=str(self.standins.key), ssh_extra_args=SSH_OPTIONS,
                controlpersist=0,  # no master connection left behind
                sudo=sudo,
            )
        return self._hosts[key]

    def psql(self, role: str, sql: str, database: str = "proyecto_db") -> list[list[str]]:
        """Rows of a query run on the node as the postgres OS user, over SSH with sudo."""
        output = self.host(role).check_output(psql_command(sql, database))
        return [line.split(FIELD_SEP) for line in output.splitlines()]

    def psql_result(self, role: str, sql: str, database: str = "proyecto_db") -> Any:
        """The whole testinfra result (rc, stderr) of a query that may fail."""
        return self.host(role).run(psql_command(sql, database))

    def streaming(self) -> dict[str, str]:
        return dict(self.psql("primary", "select application_name, state "
                                         "from pg_stat_replication", "postgres"))

    def all_streaming(self) -> bool:
        states = self.streaming()
        return all(states.get(n.name) == "streaming" for n in self.lab.nodes
                   if n.role != "primary")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A pgcluster.control.session.Session on the SSH inventory (the CLI's way to the nodes)."""
        with mock.patch.dict(os.environ, self.env), Session(STANDIN_INVENTORY) as session:
            yield session


def built_ssh_cluster(name: str, workdir: Path, destroy: Callable[[dict[str, str]], None]
                      ) -> Iterator[SshCluster]:
    """Build the stand-ins from scratch, give them the login, deploy the cluster over SSH;
    remove them afterwards with destroy({"PGCLUSTER_LAB": name}). The key lives in workdir
    (0600), made for this session."""
    if not docker_available():
        pytest.fail("Docker is not reachable: the SSH stand-ins are containers "
                    "(.ci/run installs and starts a Docker engine)")
    if os.environ.get("PGCLUSTER_TEST_REUSE") != "1":
        destroy({"PGCLUSTER_LAB": name})
    lab = load_lab(name)
    fresh = all(container_status(container) is None for container in lab.containers)
    built = run_pyinfra("@local", "deploys/lab.py", env={"PGCLUSTER_LAB": name})
    assert built.returncode == 0, f"building the stand-ins failed:\n{built.stderr[-4000:]}"
    cluster = SshCluster(prepare(lab, workdir / "id_ed25519", DEFAULT_USER, name), fresh=fresh)
    deployed = cluster.pyinfra("deploys/cluster.py", json_output=True)
    assert deployed.returncode == 0, f"deploy over SSH failed:\n{deployed.stderr[-4000:]}"
    cluster.first_deploy = totals(deployed)
    yield cluster
    if os.environ.get("PGCLUSTER_TEST_KEEP") != "1":
        destroy({"PGCLUSTER_LAB": name})
