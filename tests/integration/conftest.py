"""The integration suite builds its own lab (lab/test.toml: pgtest-* containers, subnet
172.29.0.0/16, ports 25432-25434), never the user's seed lab, and deploys the cluster on
it with the same commands a user runs.

PGCLUSTER_TEST_LAB names another lab definition for the suite (a lab/<name>.toml or a
path), so that two checkouts can run their suites side by side. PGCLUSTER_TEST_REUSE=1
keeps an existing test lab instead of rebuilding it from scratch (faster while
developing); PGCLUSTER_TEST_KEEP=1 leaves it running afterwards. The same holds for the
SSH stand-ins (`ssh_cluster`, tests/integration/sshlab.py; PGCLUSTER_TEST_SSH_LAB names
their lab definition).
Docker is required: without it these tests fail, they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import testinfra

from pgcluster.control import secrets
from pgcluster.control.writer import TABLE, Writer, conninfo
from pgcluster.lab.definition import Lab, LabNode, load_lab
from pgcluster.lab.docker import docker_available
from pgcluster.model.conninfo import tls_options
from tests.conftest import REPO, run_pyinfra, totals
from tests.integration.sshlab import SSH_LAB_NAME, SshCluster, built_ssh_cluster

LAB_NAME = os.environ.get("PGCLUSTER_TEST_LAB", "test")
LAB_ENV = {"PGCLUSTER_LAB": LAB_NAME}
ADMIN = ("admin", "admin123")
APP = ("app", "app123")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


def destroy_lab(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "pgcluster", "destroy", "--yes"], cwd=REPO,
                   env={**os.environ, **env}, capture_output=True, check=False)


# Labs a module left running for a later module of this session (hand_over): building a
# Patroni lab takes about two and a half minutes on two cores.
_HANDED_OVER: set[str] = set()


def hand_over(request: pytest.FixtureRequest, name: str, to: str) -> bool:
    """At the end of a module's lab fixture: True (leave the lab running) when the module
    `to` (a file name in tests/integration) is still to run in this session and takes the
    lab over (`built_lab(name, handed_over=True)`); False: destroy it as usual."""
    if os.environ.get("PGCLUSTER_TEST_KEEP") == "1":
        return True
    later = any(item.path.name == to for item in request.session.items)
    if later:
        _HANDED_OVER.add(name)
    return later


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A lab handed over to a module that did not run (-x stopped the session first).
    if os.environ.get("PGCLUSTER_TEST_KEEP") != "1":
        for name in sorted(_HANDED_OVER):
            destroy_lab({"PGCLUSTER_LAB": name})
    _HANDED_OVER.clear()


def built_lab(name: str, handed_over: bool = False, request: pytest.FixtureRequest | None = None,
              hand_to: str | None = None) -> Iterator[Lab]:
    """Build a lab from scratch and deploy the cluster on it, as a user would; destroy it
    afterwards. For session fixtures: each destructive suite can own a lab. With
    handed_over, a lab an earlier module left running for this one (hand_over) is used,
    its inventory's primary the primary again (a switchover), after a deploy that must
    change nothing. With request and hand_to (a module's file name), the lab is left
    running for that module when it is still to run."""
    if not docker_available():
        pytest.fail("Docker is not reachable: the integration tests need a Docker engine "
                    "(.ci/run installs and starts one)")
    env = {"PGCLUSTER_LAB": name}
    if handed_over and name in _HANDED_OVER:
        _HANDED_OVER.discard(name)
        at_rest(name)
    else:
        if os.environ.get("PGCLUSTER_TEST_REUSE") != "1":
            destroy_lab(env)
        for args in (["@local", "deploys/lab.py"], ["inventory/docker.py", "deploys/cluster.py"]):
            result = run_pyinfra(*args, env=env)
            assert result.returncode == 0, (f"pyinfra {' '.join(args)} failed:\n"
                                            f"{result.stderr[-4000:]}\n{node_diagnostics(name)}")
    yield load_lab(name)
    if request is not None and hand_to is not None and hand_over(request, name, hand_to):
        return
    if os.environ.get("PGCLUSTER_TEST_KEEP") != "1":
        destroy_lab(env)


def at_rest(name: str) -> None:
    """A lab handed over, as a new one would be: its inventory's primary the primary (a
    switchover back when a failover moved it), and a deploy that changes nothing."""
    lab = load_lab(name)
    primary = lab.node("primary")
    if query(primary, "select pg_is_in_recovery()") != [(False,)]:
        back = pgcluster_cli(lab, "switchover", "--to", primary.name, "--yes")
        assert back.returncode == 0, (f"the lab {name} handed over: the switchover back "
                                      f"to {primary.name}:\n{back.stdout[-3000:]}")
    result = run_pyinfra("inventory/docker.py", "deploys/cluster.py",
                         env={"PGCLUSTER_LAB": name}, json_output=True)
    assert result.returncode == 0, (f"the deploy on the lab {name} handed over:\n"
                                    f"{result.stderr[-4000:]}\n{node_diagnostics(name)}")
    assert totals(result)["success"] == 0, f"the lab {name} handed over was not at rest"


# What a failed build leaves to read, per node: which services run, and the last words of
# PostgreSQL, Patroni and etcd (a failure in CI cannot be looked at afterwards).
DIAGNOSTICS = (
    "systemctl is-active postgresql@15-main patroni etcd 2>&1 | paste -sd ' '; "
    "journalctl --no-pager -q -n 400 -u patroni -u etcd -u postgresql@15-main 2>&1 "
    "| grep -v 'no action' | tail -n 30 | cut -c1-300; "
    "tail -n 20 /var/log/postgresql/*.log 2>/dev/null | cut -c1-300; "
    "[ -r /etc/patroni/config.yml ] && runuser -u postgres -- "
    "patronictl -c /etc/patroni/config.yml list 2>&1"
)


def node_diagnostics(name: str) -> str:
    try:
        nodes = load_lab(name).machines
    except Exception as exc:  # the definition itself may be what failed
        return f"(no diagnostics: {exc})"
    parts = []
    for node in nodes:
        out = subprocess.run(["docker", "exec", node.name, "sh", "-c", DIAGNOSTICS],
                             capture_output=True, text=True, timeout=60, check=False)
        parts.append(f"===== {node.name}\n{(out.stdout + out.stderr)[-4000:]}")
    return "\n".join(parts)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The shared test lab: read-only checks, re-runs, restarts, backups."""
    yield from built_lab(LAB_NAME)


def lab_ca() -> Path:
    """The CA every Docker lab's certificates chain to (the lab inventory's, made by the
    deploy on this machine)."""
    return secrets.inventory_dir("tls", inventory="docker") / "ca.crt"


def connect(node: LabNode, user: str = ADMIN[0], password: str = ADMIN[1],
            dbname: str = "proyecto_db", **kwargs: Any) -> psycopg.Connection:
    """A client connection from this machine, as every client of the cluster makes it:
    TLS, the server's certificate checked against the lab's CA and the address (kwargs
    may override any option, e.g. sslmode="disable" to try plain text)."""
    options = {"host": "127.0.0.1", "port": node.published_port, "user": user,
               "password": password, "dbname": dbname, "connect_timeout": 5,
               **tls_options(lab_ca()), **kwargs}
    return psycopg.connect(autocommit=True, **options)


def query(node: LabNode, sql: str, params: tuple = ()) -> list[tuple]:
    with connect(node) as conn:
        return conn.execute(sql, params).fetchall()


def node_host(node: LabNode) -> testinfra.host.Host:
    return testinfra.get_host(f"docker://{node.name}")


def wait_for(check: Callable[[], Any], timeout: float = 60, interval: float = 0.5,
             what: str = "condition") -> Any:
    """Poll until check() returns a truthy value (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the node may be restarting
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def streaming(lab: Lab) -> dict[str, str]:
    rows = query(lab.node("primary"), "select application_name, state from pg_stat_replication")
    return dict(rows)


def all_streaming(lab: Lab) -> bool:
    states = streaming(lab)
    return all(states.get(n.name) == "streaming" for n in lab.nodes if n.role != "primary")


# Module scope: each of these labs serves one test module and is gone before the next
# starts, so the suite never runs more systemd containers at once than it needs.
@pytest.fixture(scope="module")
def ha_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A lab of its own for failover, switchover and rejoin (they change the primary),
    handed to the endpoints' tests afterwards (the same lab/ha.toml, with its proxy)."""
    yield from built_lab(os.environ.get("PGCLUSTER_TEST_HA_LAB", "ha"), request=request,
                         hand_to="test_04_ha_endpoints.py")


def pgcluster_cli(lab: Lab, *args: str, timeout: int = 600,
                  stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m pgcluster ARGS` against a lab, as an operator runs it (`stdin`: what the
    operator types)."""
    return subprocess.run([sys.executable, "-m", "pgcluster", *args], cwd=REPO,
                          env={**os.environ, "PGCLUSTER_LAB": lab.source}, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    """The SSH stand-ins for VMs (lab/ssh.toml) with the cluster deployed on them over SSH,
    as a non-root user with sudo; see tests/integration/sshlab.py."""
    yield from built_ssh_cluster(SSH_LAB_NAME, tmp_path_factory.mktemp("ssh-standins"),
                                 destroy_lab)


# ------------------------------------------------------------------ the endpoints


APP = ("app", "app123")  # the lab's application role (pgcluster/control/secrets.py)
RW, RO, RW_DIRECT, RO_DIRECT, STATS = 5000, 5001, 5002, 5003, 7000  # the proxy's ports


def endpoint_dsn(lab: Lab, endpoint: int, user: tuple[str, str] = APP, **extra: str) -> str:
    """A client of one of the lab proxy's endpoints (its port published on this machine),
    verify-full against the address it dials."""
    tls = tls_options(lab_ca())
    if endpoint in (RW, RO):  # PgBouncer 1.18 offers SCRAM without channel binding
        tls["channel_binding"] = "prefer"
    options = {"host": lab.bind_address, "port": lab.published(endpoint), "user": user[0],
               "password": user[1], "dbname": "proyecto_db", "connect_timeout": 3,
               **tls, **extra}
    return " ".join(f"{k}={v}" for k, v in options.items())


def writes_again(client: Writer, after: float, timeout: float = 30) -> None:
    """An application of the read-write endpoint committed again after `after` (epoch
    seconds), with no change of address."""
    wait_for(lambda: client.first_ack_after(after) is not None, timeout=timeout,
             what="writes again through the read-write endpoint, same address")


def endpoint_writer(lab: Lab, primary: LabNode, table: str = TABLE) -> Writer:
    """The drill writer as an application: through the read-write endpoint, as app (which
    may write the table, not create it: the admin makes it on the primary first)."""
    Writer(conninfo([primary.published_port], *ADMIN, sslrootcert=lab_ca()),
           table=table).prepare()
    return Writer(endpoint_dsn(lab, RW), table=table).start(prepare=False)
