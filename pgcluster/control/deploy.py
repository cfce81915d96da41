"""Run a pyinfra deploy from the CLI, as a user would type it, keeping its whole log.

An operator wants the result of a command (what changed, on which node, the new topology),
not pyinfra's operation log: the log goes to a file under the control machine's state
directory (state/<inventory>/logs/, or PGCLUSTER_STATE_DIR), whose path the command
prints, and streams to the terminal as well with -v.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pgcluster import REPO_ROOT
from pgcluster.control.secrets import shown
from pgcluster.model.lock import LOCK_FILE

# Lines of a deploy's log that say what went wrong (pgcluster's and pyinfra's own words).
# The node scripts' own lines (script[node]: ...) tell the story of a failed job.
_PROBLEM = re.compile(r"pgcluster cannot continue|^\s+- |refus|[Ee]rror|FAILED|FATAL|PANIC|"
                      r"not promoted|cannot |busy|split brain|still stream|timed out|"
                      r"not streaming|(restore-backup|rejoin-replica|clone-replica|backup-\w+|"
                      r"pgbackrest-job)\[")


def state_dir(inventory: str | None = None) -> Path:
    """The control machine's state directory: logs of the commands that changed things."""
    root = os.environ.get("PGCLUSTER_STATE_DIR")
    base = Path(root).resolve() if root else REPO_ROOT / "state"
    return base / (Path(inventory).stem if inventory else "local")


@dataclass
class DeployRun:
    """What a deploy did: its exit code, where its log is, how long it took, how many
    operations changed something on each host, and the log lines naming a problem."""

    code: int
    log: Path
    seconds: float
    changed: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def lines(self, pattern: str) -> list[str]:
        """Log lines matching a pattern (what a script reported, for the summary)."""
        found = re.compile(pattern)
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if found.search(line)]


def _tee(stream: IO[str], sinks: list[IO[str]]) -> None:
    for line in stream:
        for sink in sinks:
            sink.write(line)
            sink.flush()


def run_deploy(inventory: str, deploy: str, *pyinfra_args: str,
               env: dict[str, str] | None = None, verbose: bool = False,
               command: str | None = None) -> DeployRun:
    """`pyinfra -y --json INVENTORY DEPLOY [ARGS]` from the repository root. `command` is
    what the user typed, recorded in the cluster's operation lock and the log's name."""
    logs = state_dir(inventory if inventory != "@local" else None) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log = logs / f"{stamp}-{Path(deploy).stem}.log"
    full_env = {**os.environ, "PYINFRA_PROGRESS": os.environ.get("PYINFRA_PROGRESS", "off"),
                "PGCLUSTER_OPERATION_TOKEN": uuid.uuid4().hex, **(env or {})}
    if command:
        full_env["PGCLUSTER_OPERATION_COMMAND"] = command
    argv = [sys.executable, "-m", "pyinfra", "-y", "--json", *pyinfra_args, inventory, deploy]
    started = time.monotonic()
    with log.open("w") as out:
        out.write(f"# {' '.join(argv[2:])}\n")
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=full_env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sinks: list[IO[str]] = [out, sys.stderr] if verbose else [out]
        tee = threading.Thread(target=_tee, args=(process.stderr, sinks), daemon=True)
        tee.start()
        results = process.stdout.read() if process.stdout else ""
        code = process.wait()
        tee.join()
    run = DeployRun(code=code, log=log, seconds=time.monotonic() - started)
    try:
        for operation in json.loads(results)["results"]["operations"]:
            for name in operation["success"]:
                run.changed[name] = run.changed.get(name, 0) + 1
    except (ValueError, KeyError, TypeError):
        pass  # pyinfra stopped before printing its results (a refusal, an error)
    if code:
        run.problems = [line.rstrip() for line in log.read_text(errors="replace").splitlines()
                        if _PROBLEM.search(line)][-20:]
        if inventory != "@local":
            release_lock(inventory, full_env["PGCLUSTER_OPERATION_TOKEN"], full_env)
    return run


def release_lock(inventory: str, token: str, env: dict[str, str]) -> None:
    """After a failed run, give back the cluster's operation lock if this run still holds
    it somewhere: the run releases it itself at a failed step, but not when pyinfra ends
    it otherwise (an error raised while executing, an interrupted connection)."""
    from pgcluster.control.session import Session  # pyinfra's machinery, only when needed

    remove = (f"if grep -qxF {shlex.quote('token=' + token)} {LOCK_FILE} 2>/dev/null; "
              f"then rm -f {LOCK_FILE}; fi")
    try:
        with Session(inventory, env={"PGCLUSTER_ALLOW_DOWN": "1",
                                     **{k: v for k, v in env.items()
                                        if k.startswith("PGCLUSTER_")}}) as session:
            for node in session.cluster.nodes:
                if session.reachable(node):
                    session.run(node, remove)
    except Exception as exc:  # the run failed already; say so, keep its own error first
        print(f"note: could not check the operation lock after the failure: {exc}",
              file=sys.stderr)


def report_failure(run: DeployRun, what: str) -> None:
    """On stderr: that it failed, the lines that say why, and where the whole log is."""
    print(f"{what} FAILED (exit {run.code}, {run.seconds:.1f}s):", file=sys.stderr)
    for line in run.problems or ["(no line of the log names the problem: read it)"]:
        print(f"  {line.strip()}", file=sys.stderr)
    print(f"Full log: {shown(run.log)}", file=sys.stderr)
