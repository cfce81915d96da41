"""drill: a failover, a switchover or a restore done on purpose under a continuous writer,
measured against group data's goals, with a report per drill (docs/drills.md). The work is
pgcluster.control.drill's; this module reads the command line, checks it before anything
is touched, asks, and prints."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from pgcluster.commands.common import add_change_options, confirm, report
from pgcluster.control import drill, schedule
from pgcluster.control.drill_report import default_report_dir
from pgcluster.control.scratch import LAB_INVENTORY, scratch_target
from pgcluster.control.session import ALLOW_DOWN, Session
from pgcluster.errors import ConfigError

# Exit codes: every drill passed; a drill missed its goals (or could not finish); nothing
# was drilled (a bad command line, a cluster not ready, no confirmation: as for ConfigError
# and ClusterStateError in pgcluster.cli).
PASSED, MISSED, NOT_RUN = 0, 1, 2
# `drill schedule|unschedule`: the restore drill as a cron job (pgcluster.control.schedule).
SCHEDULING = ("schedule", "unschedule")


def number(what: str, example: str):
    """argparse type: a number, with a message that says which option and how."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what} (e.g. "
                                             f"{example})") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what}")
        return value
    return parse


def kinds(kind: str) -> tuple[str, ...]:
    """The drills `drill KIND` runs, in order."""
    return drill.ALL if kind == "all" else (kind,)


def options(args: argparse.Namespace, now: datetime | None = None) -> drill.Options:
    """The command line checked before anything is touched (ConfigError: what to fix)."""
    report_dir = Path(args.report) if args.report else default_report_dir(
        now or datetime.now(UTC))
    problems = drill.check_options(args.kind, args.duration, args.rate, report_dir)
    scratch = None
    if "restore" in kinds(args.kind):
        try:
            scratch = scratch_target(args.inventory)
        except ConfigError as exc:
            problems += [f"a restore drill: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return drill.Options(duration=args.duration, rate=args.rate, report_dir=report_dir,
                         verbose=args.verbose, scratch=scratch)


def cmd_schedule(args: argparse.Namespace) -> int:
    """`drill schedule`: the restore drill as a cron job on this machine, at group data's
    drill_restore_schedule; `drill unschedule` removes it."""
    lab = os.environ.get("PGCLUSTER_LAB") if args.inventory == LAB_INVENTORY else None
    if args.kind == "unschedule":
        removed = schedule.remove(args.inventory, lab)
        print(f"removed {removed}" if removed else "no scheduled restore drill to remove")
        return PASSED
    scratch_target(args.inventory)  # nowhere to restore: nothing to schedule (ConfigError)
    with Session(args.inventory, env=ALLOW_DOWN) as session:
        when = str(session.data(session.cluster.nodes[0]).get("drill_restore_schedule") or "")
    path = schedule.install(when, args.inventory, lab)
    print(f"scheduled: the restore drill runs at '{when}' (cron), from {path}; its verdicts "
          "show in `pgcluster status` (last proven restore), its output in "
          f"{schedule.log_file(args.inventory)}")
    return PASSED


def cmd_drill(args: argparse.Namespace) -> int:
    """Drill a failover, a switchover, a restore or all three (switchover, failover,
    restore) under a continuous writer, and write a report of each. Exit code 0: every
    drill met its goals; 1: a drill missed them; 2: nothing was drilled. `drill schedule`
    installs the restore drill as a cron job (drill_restore_schedule), `drill unschedule`
    removes it."""
    if args.kind in SCHEDULING:
        return cmd_schedule(args)
    settings = options(args)
    status, _ = report(args.inventory)
    scratch = settings.scratch.name if settings.scratch else None
    plans = drill.plan(kinds(args.kind), status, scratch)
    for planned in plans:
        if not confirm(planned.question(args.inventory), args.yes):
            return NOT_RUN
    runner = drill.Drills(drill.load_reach(args.inventory, settings.scratch), settings,
                          status=lambda: report(args.inventory)[0])
    outcomes = runner.run(plans)
    code = drill.exit_code(outcomes)
    passed = sum(o.passed for o in outcomes)
    print(f"\n{passed} of {len(outcomes)} drill(s) passed; reports in {settings.report_dir}/")
    return PASSED if code == 0 else MISSED


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "drill", help="drill a failover, switchover or restore under a writer; report it",
        description=cmd_drill.__doc__,
        epilog="examples:  pgcluster drill failover --yes   |   pgcluster drill switchover "
               "--duration 60 --rate 100   |   pgcluster drill all --report /tmp/drills --yes")
    parser.add_argument("kind", choices=(*drill.KINDS, *SCHEDULING),
                        help="failover (stop the primary), switchover (there and back), "
                             "restore (to a restore point, onto the drill host or the lab's "
                             "scratch node), all; "
                             "schedule / unschedule the restore drill as a cron job")
    parser.add_argument("--duration", type=number("seconds", "30"),
                        default=drill.DEFAULT_DURATION, metavar="SECONDS",
                        help="how long the writer runs in a failover or switchover drill, "
                             f"the fault included (default {drill.DEFAULT_DURATION:g}, at "
                             f"least {drill.MIN_DURATION:g}; a slow recovery extends it)")
    parser.add_argument("--rate", type=number("commits per second", "50"),
                        default=drill.DEFAULT_RATE, metavar="PER_SECOND",
                        help=f"commits per second the writer tries (default "
                             f"{drill.DEFAULT_RATE:g}, at most {drill.MAX_RATE:g})")
    parser.add_argument("--report", metavar="DIR",
                        help="where the reports go (default: drills/<UTC time>/)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_change_options(parser, lock=False)
    parser.set_defaults(func=cmd_drill)
