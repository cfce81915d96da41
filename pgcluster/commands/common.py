"""What the CLI's commands share: asking before a change, reaching the hosts that answer,
and running a deploy with a short result on screen and the whole log in a file."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pgcluster.control.deploy import DeployRun, report_failure, run_deploy
from pgcluster.control.session import ALLOW_DOWN, Session
from pgcluster.control.status import Report, collect
from pgcluster.errors import ConfigError
from pgcluster.model.backups import check_backup_name

# Stopped lab containers are unreachable hosts for these commands, not a reason to refuse:
# right after a failover the old primary's container is down, and backups, restores,
# status and rejoin must still work.


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask before a change; --yes answers for the user. Never assumes yes without a TTY."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} -> refusing without confirmation: pass --yes", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes", "s", "si", "sí")


@contextmanager
def reachable_session(inventory: str, env: dict[str, str] | None = None
                      ) -> Iterator[Session]:
    with Session(inventory, env={**ALLOW_DOWN, **(env or {})}) as session:
        yield session


def report(inventory: str) -> tuple[Report, list[str]]:
    """The cluster's status, and the hosts that answer."""
    with reachable_session(inventory) as session:
        return collect(session), [h.name for h in session.state.activated_hosts]


def reachable(inventory: str) -> list[str]:
    """The hosts that answer (connections only: no facts, so it is quick)."""
    with reachable_session(inventory) as session:
        return [h.name for h in session.state.activated_hosts]


def typed(args: argparse.Namespace) -> str:
    """The command as the user typed it, for the operation lock and the log."""
    return " ".join(["pgcluster", *(shlex.quote(a) for a in sys.argv[1:])]) or args.command


def deploy(args: argparse.Namespace, deploy_file: str, data: dict[str, str] | None = None,
           hosts: list[str] | None = None, inventory: str | None = None,
           env: dict[str, str] | None = None) -> DeployRun:
    """Run a deploy on the hosts that answer (`hosts`, default: every host), with --data
    parameters; --break-lock and -v pass through."""
    extra: list[str] = []
    data = dict(data or {})
    if getattr(args, "break_lock", False):
        data["break_lock"] = "yes"
    for key, value in data.items():
        extra += ["--data", f"{key}={value}"]
    for host_name in hosts or []:
        extra += ["--limit", host_name]
    return run_deploy(inventory or args.inventory, deploy_file, *extra,
                      env={**ALLOW_DOWN, **(env or {})},
                      verbose=getattr(args, "verbose", False), command=typed(args))


def finished(run: DeployRun, what: str) -> int:
    """The exit code to return; on failure, say why and where the log is."""
    if not run.ok:
        report_failure(run, what)
    return run.code


def backup_name(text: str) -> str:
    """argparse type: a backup name, checked before any deploy or script sees it."""
    try:
        return check_backup_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0]) from exc


def add_change_options(parser: argparse.ArgumentParser, lock: bool = True) -> None:
    """-v for every command that runs a deploy; --break-lock where it holds the lock."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="stream pyinfra's whole log (always kept in state/)")
    if lock:
        parser.add_argument("--break-lock", action="store_true",
                            help="break a stale cluster operation lock (a run that died "
                                 "without releasing it); look at `pgcluster status` first")


def changes(run: DeployRun) -> str:
    total = sum(run.changed.values())
    if not total:
        return "no change"
    return f"{total} change(s): " + ", ".join(
        f"{host.split('/')[-1]} {count}" for host, count in sorted(run.changed.items()))
