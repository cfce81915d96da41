"""The node scripts run for real in these tests, from the source tree (pgcluster/node/), on
a node made of a temporary directory: its node.env is the one the deploy renders, with the
paths pointed into the test's directory, and the commands that would touch PostgreSQL or
the system (psql, pg_ctlcluster, systemctl, pg_basebackup, runuser, ...) are the fakes of
tests/unit/node/fakes/, first on PATH. Each fake records its call; what it answers comes
from files the test writes (see FakeNode). The fake id says root unless a fake runuser
switched to another user, so the scripts take their root paths whoever runs the tests, and
nothing needs a postgres user on the test machine."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgcluster import NODE_DIR
from pgcluster.control.templating import render_template, template_context
from pgcluster.steps.backups import SCRIPTS as BACKUP_SCRIPTS
from pgcluster.steps.configure import SCRIPTS as HA_SCRIPTS
from tests.unit.helpers import ALL, SECRETS, cluster

FAKES = Path(__file__).parent / "fakes"
SCRIPTS = (*HA_SCRIPTS, *BACKUP_SCRIPTS)
SYSTEM_ID = "7300000000000000001"  # the fake pg_controldata's, unless a test sets another


@dataclass(frozen=True)
class Call:
    user: str  # who ran it: root, or whom a fake runuser switched to
    name: str
    args: list[str]
    input: str | None  # what psql read (its -c commands, or stdin)

    @property
    def line(self) -> str:
        return " ".join(self.args)


class FakeNode:
    """A node in a temporary directory, for one test."""

    def __init__(self, root: Path, node: str = "db1", **data: object) -> None:
        self.root = root
        self.bin = root / "bin"  # the fakes: first on PATH, and BIN_DIR
        self.scripts = root / "scripts"  # SCRIPTS_DIR: the installed names
        self.state = root / "state"  # what the fakes answer
        self.calls_dir = root / "calls"
        self.etc = root / "etc"
        self.data = root / "data" / "main"  # DATA_DIR (absent until a test makes it)
        self.repo = root / "backups"  # BACKUP_ROOT
        self.full = self.repo / "full"
        self.incr = self.repo / "incr"
        self.archive = self.repo / "wal_archive"
        self.log_dir = root / "log" / "pgcluster"
        self.pg_log = root / "log" / "postgresql.log"
        self.env_file = self.etc / "node.env"
        self.override = root / "run" / "pgcluster" / "start-as-primary"
        self._rules = 0

        for directory in (self.bin, self.scripts, self.state, self.calls_dir, self.etc,
                          self.data.parent, self.full, self.incr, self.archive, self.log_dir,
                          root / "run"):
            directory.mkdir(parents=True, exist_ok=True)
        for fake in FAKES.iterdir():
            shutil.copy2(fake, self.bin / fake.name)
        (self.scripts / "lib.sh").symlink_to(NODE_DIR / "lib.sh")
        for name in SCRIPTS:
            (self.scripts / name).symlink_to(NODE_DIR / f"{name}.sh")

        repo = {"backup_root": str(self.repo), "backup_full_dir": str(self.full),
                "backup_incr_dir": str(self.incr), "wal_archive_dir": str(self.archive),
                "backup_verify_dir": str(self.repo / ".verify"),
                "backup_log_dir": str(self.log_dir)}
        c = cluster(**{**repo, **data})
        text = render_template("node/node.env.j2",
                               template_context({**ALL, **SECRETS, **repo, **data},
                                                c.node(node), c))
        self.env_file.write_text(text)
        # What Debian's layout fixes (pgcluster.model.layout) moves into the test's directory;
        # a later assignment wins when bash sources the file.
        self.settings(DATA_DIR=self.data, BIN_DIR=self.bin, CONF_DIR=self.etc,
                      PG_LOG_FILE=self.pg_log, SOCKET_DIR=root / "run",
                      SCRIPTS_DIR=self.scripts, START_OVERRIDE=self.override)

    # ------------------------------------------------------------------------ arranging

    def settings(self, **values: object) -> None:
        """Change node.env settings."""
        with self.env_file.open("a") as env:
            for key, value in values.items():
                env.write(f"{key}={shlex.quote(str(value))}\n")

    def flag(self, name: str, content: str = "") -> Path:
        """A file the fakes read (FAKE_STATE/<name>)."""
        path = self.state / name
        path.write_text(content)
        return path

    def unflag(self, name: str) -> None:
        (self.state / name).unlink(missing_ok=True)

    def answer(self, pattern: str, body: str) -> None:
        """psql: for a connection or query matching `pattern`, run bash `body` (newest wins)."""
        self._rules += 1
        rules = self.state / "psql"
        rules.mkdir(exist_ok=True)
        (rules / f"{self._rules:04d}").write_text(f"{pattern}\n{body}\n")

    def fake(self, name: str, body: str) -> None:
        """Replace (or add) a fake command: records its call, then runs bash `body`."""
        path = self.bin / name
        path.write_text(f'#!/bin/bash\n. "$(dirname "$0")/_record.sh"\n{body}\n')
        path.chmod(0o755)

    def running(self, primary: bool = True) -> None:
        """The server is up on the data directory, as a primary or a standby."""
        (self.state / "running").touch()
        if self.data.is_dir():
            (self.data / "postmaster.pid").touch()
        self.answer(r"pg_is_in_recovery\(\)$", f"echo {'f' if primary else 't'}")

    def data_dir(self, standby: bool = False, **files: str) -> Path:
        """A PostgreSQL data directory (stopped), a standby's with standby.signal."""
        (self.data / "global").mkdir(parents=True, exist_ok=True)
        (self.data / "PG_VERSION").write_text("15\n")
        (self.data / "global" / "pg_control").write_text("control")
        if standby:
            (self.data / "standby.signal").touch()
        for name, text in files.items():
            (self.data / name).write_text(text)
        return self.data

    # ------------------------------------------------------------------------- running

    def run(self, script: str, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin",
                       "PGCLUSTER_ENV": str(self.env_file), "FAKE_STATE": str(self.state),
                       "FAKE_CALLS": str(self.calls_dir), "HOME": str(self.root),
                       "LANG": "C.UTF-8", **(env or {})}
        return subprocess.run([str(self.scripts / script), *args], env=environment,
                              cwd=self.root, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def calls(self, name: str | None = None) -> list[Call]:
        found = []
        for path in sorted(self.calls_dir.iterdir()):
            if path.suffix == ".in":
                continue
            user, command, *args = path.read_bytes().decode().split("\0")[:-1]
            given = path.with_name(path.name + ".in")
            call = Call(user, command, args, given.read_text() if given.exists() else None)
            if name is None or call.name == name:
                found.append(call)
        return found

    def queries(self) -> list[Call]:
        """psql calls on this node's own server (over the socket)."""
        return [c for c in self.calls("psql") if "-h" in c.args]

    def log(self, name: str = "backup.log") -> str:
        path = self.log_dir / name
        return path.read_text() if path.exists() else ""


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path / "node")


@pytest.fixture
def make_node(tmp_path: Path):
    """A node of the test cluster (db1, db2, db3) with group data overrides."""

    def make(name: str = "db1", **data: object) -> FakeNode:
        return FakeNode(tmp_path / name, name, **data)

    return make
