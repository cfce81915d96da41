"""The scheduled restore drill (`pgcluster drill schedule|unschedule`): a cron job on the
control machine, which holds the inventory, its secrets and pgcluster, that runs `pgcluster
drill restore` at group data's drill_restore_schedule. Each run records its verdict in the
backup registry (kind 'drill'), which `status` and the alerts read: backups that prove
themselves, without anyone remembering to."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from pgcluster import REPO_ROOT
from pgcluster.control.deploy import state_dir
from pgcluster.errors import ConfigError

# cron(8) reads /etc/cron.d; tests point this elsewhere (PGCLUSTER_CRON_DIR).
CRON_DIR = "/etc/cron.d"


def cron_dir() -> Path:
    return Path(os.environ.get("PGCLUSTER_CRON_DIR") or CRON_DIR)


def job_name(inventory: str, lab: str | None) -> str:
    """The cron.d file's name: cron ignores names with anything but letters, digits, - and
    _, so the inventory's (and the lab's) name is reduced to those."""
    parts = [Path(inventory).stem, *([Path(lab).stem] if lab else [])]
    return "pgcluster-drill-" + "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", p) for p in parts)


def log_file(inventory: str) -> Path:
    """Where the job appends its output: the inventory's state logs."""
    return state_dir(inventory) / "logs" / "drill-schedule.log"


def command(inventory: str, lab: str | None, python: str = sys.executable,
            repo: Path = REPO_ROOT) -> str:
    """The job's command: the restore drill as an operator runs it, from the repository,
    its output appended to the inventory's state log."""
    log = log_file(inventory)
    env = f"PGCLUSTER_LAB={shlex.quote(lab)} " if lab else ""
    return (f"cd {shlex.quote(str(repo))} && {env}{shlex.quote(python)} -m pgcluster "
            f"--inventory {shlex.quote(inventory)} drill restore --yes "
            f">> {shlex.quote(str(log))} 2>&1")


def cron_file(schedule: str, inventory: str, lab: str | None, user: str = "root",
              python: str = sys.executable, repo: Path = REPO_ROOT) -> str:
    """The cron.d file: the schedule, the user it runs as and the command."""
    if not schedule.strip():
        raise ConfigError("drill_restore_schedule is '' (no scheduled drill): set it in group "
                          "data (e.g. '30 4 * * 6', Saturdays 04:30), then run `pgcluster "
                          "drill schedule` again")
    job = command(inventory, lab, python, repo)
    if "%" in job:
        raise ConfigError("the drill's command line has a %, which cron would cut at: move "
                          "the repository or the inventory to a path without one")
    where = f"{inventory}" + (f" (lab {lab})" if lab else "")
    return (
        f"# The scheduled restore drill of {where}: `pgcluster drill restore` restores the\n"
        "# newest backup onto the scratch node, compares every table with the primary as of\n"
        "# a restore point and records its verdict in pgcluster.backups (kind 'drill'), which\n"
        "# `pgcluster status` shows. Written by `pgcluster drill schedule` from group data\n"
        "# drill_restore_schedule; `pgcluster drill unschedule` removes it.\n"
        "SHELL=/bin/sh\n"
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        f"{schedule.strip()} {user} {job}\n"
    )


def install(schedule: str, inventory: str, lab: str | None) -> Path:
    """Write the cron.d file (mode 0644, as cron wants it); the path written."""
    directory = cron_dir()
    if not directory.is_dir():
        raise ConfigError(f"{directory} does not exist: install cron on this machine (Debian: "
                          "apt-get install cron), or set PGCLUSTER_CRON_DIR")
    path = directory / job_name(inventory, lab)
    text = cron_file(schedule, inventory, lab)
    log_file(inventory).parent.mkdir(parents=True, exist_ok=True)  # cron appends there
    try:
        path.write_text(text)
        path.chmod(0o644)
    except PermissionError:
        raise ConfigError(f"cannot write {path}: run `pgcluster drill schedule` as root, or put "
                          f"this line in your own crontab (without the user field): "
                          f"{schedule} {command(inventory, lab)}") from None
    return path


def remove(inventory: str, lab: str | None) -> Path | None:
    """Remove the cron.d file; the path removed, None when there was none."""
    path = cron_dir() / job_name(inventory, lab)
    if not path.exists():
        return None
    path.unlink()
    return path
