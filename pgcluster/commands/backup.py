"""Backup commands: full, incr, verify and retention run now on the live primary (through
deploys/backup.py, the scripts cron runs); list shows the registry and the disk side by
side, flags where they disagree, and shows the WAL archiver's health."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pgcluster.commands.common import (
    add_change_options,
    backup_name,
    deploy,
    finished,
    reachable,
    reachable_session,
)
from pgcluster.control.deploy import shown
from pgcluster.facts.backups import BackupRepository, PgbackrestInfo
from pgcluster.facts.postgres import UTC_TEXT, Archiver
from pgcluster.model import pgbackrest
from pgcluster.model.backups import REGISTRY_TABLE, Repository, mismatches
from pgcluster.model.units import human_bytes

REGISTRY_COLUMNS = ("id", "kind", "label", "node", "path", "status", "started_at", "finished_at",
                    "size_bytes", "timeline", "start_lsn", "stop_lsn", "verified_at",
                    "verify_status", "removed_at", "detail")
# One line per row whatever the text holds: newlines in details are flattened.
REGISTRY_SQL = "select " + ", ".join(
    UTC_TEXT.format(c) if c.endswith("_at") else
    f"regexp_replace(coalesce({c}::text, ''), '\\s+', ' ', 'g')"
    for c in REGISTRY_COLUMNS
) + f" from {REGISTRY_TABLE} order by started_at, id"



def cmd_run(args: argparse.Namespace) -> int:
    """Run one backup job now on the node that is the primary right now (stopped lab nodes
    are left out: right after a failover the old primary's container is down)."""
    env = {"PGCLUSTER_BACKUP_KIND": args.kind}
    if getattr(args, "backup", None):
        env["PGCLUSTER_BACKUP_NAME"] = args.backup
    run = deploy(args, "deploys/backup.py", hosts=reachable(args.inventory), env=env)
    if not run.ok:
        return finished(run, f"backup {args.kind}")
    said = run.lines(r"(?:backup-\w+|pgbackrest-job)\[[^]]*\]: "
                     r"(done|ok|verified|WARNING|ERROR|repo\d keeps)") or [
        "(the job said nothing: see the log)"]
    print(f"backup {args.kind} done in {run.seconds:.1f}s:")
    for line in said:
        print("  " + line.split("]: ", 1)[-1].strip())
    print(f"  log: {shown(run.log)}")
    return 0


def gather(inventory: str) -> dict[str, Any]:
    """Registry rows, the repository on disk and the archiver, read from the live cluster."""
    with reachable_session(inventory) as session:
        topology = session.topology()
        running = [n for n in session.cluster.nodes
                   if session.reachable(n) and topology.live.get(n.host, {}).get("running")]
        # The primary first: it holds the registry and archives; a replica has a copy.
        source = topology.primary if topology.primary in running else (
            running[0] if running else topology.primary)
        data = session.data(source)
        rows = session.query(source, REGISTRY_SQL, database=data["backup_registry_database"])
        archiver = session.fact(topology.primary, Archiver, port=topology.primary.port) \
            if topology.primary in running else None
        repo: Repository = session.host(source).get_fact(
            BackupRepository, full_dir=data["backup_full_dir"], incr_dir=data["backup_incr_dir"],
            archive_dir=data["wal_archive_dir"])
        engine = pgbackrest.decide_engine(
            None, (live.get("backup_engine") for live in topology.live.values()))
        stanza = session.host(source).get_fact(
            PgbackrestInfo, stanza=data["pgbackrest_stanza"],
            io_timeout=data["pgbackrest_info_io_timeout"]) if engine == "pgbackrest" else None
    registry = None if rows is None else [dict(zip(REGISTRY_COLUMNS, r, strict=False))
                                          for r in rows if len(r) == len(REGISTRY_COLUMNS)]
    return {"source": source.name, "primary": topology.primary.name,
            "backup_root": data["backup_root"], "registry": registry, "repository": repo,
            "archiver": archiver, "engine": engine, "pgbackrest": stanza}


def pgbackrest_labels(stanza: pgbackrest.StanzaInfo | None) -> dict[int, set[str]] | None:
    if stanza is None:
        return None
    labels: dict[int, set[str]] = {number: set() for number in stanza.repo_status}
    for backup in stanza.backups:
        labels.setdefault(backup.repo, set()).add(backup.label)
    return labels


def pgbackrest_json(stanza: pgbackrest.StanzaInfo | None) -> dict[str, Any] | None:
    if stanza is None:
        return None
    return {"stanza": stanza.name, "status": stanza.status,
            "repositories": {str(k): v for k, v in stanza.repo_status.items()},
            "archive": {str(k): [stanza.archive_min.get(k), stanza.archive_max.get(k)]
                        for k in stanza.repo_status},
            "backups": [{"repo": b.repo, "label": b.label, "type": b.type,
                         "started": b.started.isoformat(), "stopped": b.stopped.isoformat(),
                         "size": b.size, "repo_size": b.repo_size, "start_lsn": b.start_lsn,
                         "stop_lsn": b.stop_lsn, "start_wal": b.start_wal,
                         "stop_wal": b.stop_wal, "prior": b.prior, "error": b.error}
                        for b in stanza.backups]}


def cmd_list(args: argparse.Namespace) -> int:
    """List backups from the registry and from the disk, flagging any mismatch."""
    state = gather(args.inventory)
    repo: Repository = state["repository"]
    registry = state["registry"]
    stanza: pgbackrest.StanzaInfo | None = state["pgbackrest"]
    findings = mismatches(registry or [], repo, pgbackrest_labels(stanza))
    archiver = state["archiver"]
    engine_ok = state["engine"] != "pgbackrest" or (
        stanza is not None and stanza.status_code == 0)
    healthy = registry is not None and not findings and bool(archiver) \
        and not archiver["failing"] and engine_ok
    if args.json:
        print(json.dumps({
            "source": state["source"], "primary": state["primary"], "registry": registry,
            "engine": state["engine"], "pgbackrest": pgbackrest_json(stanza),
            "disk": {"full": [{"name": b.name, "size": b.size, "info": b.info}
                              for b in repo.full],
                     "incr": [vars(i) for i in repo.incr],
                     "archive": {"files": repo.archive_files, "bytes": repo.archive_bytes,
                                 "oldest": repo.archive_oldest,
                                 "newest": repo.archive_newest}},
            "mismatches": [vars(f) for f in findings], "archiver": archiver,
            "healthy": healthy,
        }, indent=2))
        return 0 if healthy else 1

    print(f"Backups of the cluster (registry {REGISTRY_TABLE} read on {state['source']}; "
          f"repository {state['backup_root']} as {state['source']} sees it)")
    if registry is None:
        print(f"  the registry cannot be read on {state['source']} (server down, or "
              "the cluster deploy has not created it yet)")
    else:
        header = (f"  {'id':>4}  {'kind':<7} {'path':<22} {'status':<8} {'started (UTC)':<19}  "
                  f"{'size':>10}  {'WAL (timeline: start - stop)':<30} verified")
        print(header)
        for row in registry:
            wal = (f"{row['timeline']}: {row['start_lsn']} - {row['stop_lsn']}"
                   if row["start_lsn"] else (f"{row['timeline']}: reached {row['stop_lsn']}"
                                            if row["stop_lsn"] else ""))
            verified = f"{row['verify_status']} {row['verified_at']}".strip()
            status = "removed" if row["removed_at"] else row["status"]
            print(f"  {row['id']:>4}  {row['kind']:<7} {row['path']:<22} {status:<8} "
                  f"{row['started_at']:<19}  {human_bytes(row['size_bytes']):>10}  {wal:<30} "
                  f"{verified}")
            if row["status"] == "failed" or row["kind"] == "restore":
                print(f"        {row['detail']}")
    print(f"\nOn disk: {len(repo.complete_full)} full backup(s), {len(repo.incr)} incremental "
          f"day(s); WAL archive {repo.archive_files} files, {human_bytes(repo.archive_bytes)}"
          + (f", {repo.archive_oldest} .. {repo.archive_newest}" if repo.archive_oldest else ""))
    for backup in repo.complete_full:
        info = backup.info
        print(f"  full/{backup.name}  {human_bytes(backup.size):>10}  timeline "
              f"{info.get('timeline')} {info.get('start_lsn')} - {info.get('stop_lsn')}, ended "
              f"{info.get('finished_at')}")
    for incr in repo.incr:
        print(f"  incr/{incr.name}         {human_bytes(incr.size):>10}  {incr.files} WAL files")
    if state["engine"] == "pgbackrest":
        print_pgbackrest(stanza, state["source"])
    if findings:
        print("\nMISMATCH between the registry and the disk:")
        for f in findings:
            print(f"  {f.name}: {f.problem}")
    else:
        print("\nRegistry and disk agree.")
    if archiver is None:
        print(f"WAL archiver: unknown ({state['primary']} is not running)")
    elif archiver["failing"]:
        print(f"WAL archiver: FAILING since {archiver['last_failed_time']} on "
              f"{archiver['last_failed_wal']} ({archiver['failed_count']} failures; last "
              f"success {archiver['last_archived_wal'] or 'never'} at "
              f"{archiver['last_archived_time'] or '-'}): see the PostgreSQL log on "
              f"{state['primary']}")
    else:
        print(f"WAL archiver: ok on {state['primary']}, {archiver['archived_count']} archived, "
              f"last {archiver['last_archived_wal'] or '-'} at "
              f"{archiver['last_archived_time'] or '-'}, {archiver['failed_count']} failures "
              "since the statistics were reset")
    return 0 if healthy else 1


def print_pgbackrest(stanza: pgbackrest.StanzaInfo | None, source: str) -> None:
    if stanza is None:
        print(f"\npgBackRest: no stanza readable on {source} (not configured yet: run the "
              "cluster deploy; or `pgbackrest info` fails there)")
        return
    repos = ", ".join(f"repo{k} {v}" for k, v in sorted(stanza.repo_status.items()))
    print(f"\npgBackRest stanza {stanza.name}: {stanza.status} ({repos})")
    for number in sorted(stanza.repo_status):
        low, high = stanza.archive_min.get(number), stanza.archive_max.get(number)
        print(f"  repo{number} WAL archive: {f'{low} .. {high}' if low else 'empty'}")
    for b in stanza.backups:
        print(f"  repo{b.repo}/{b.label:<34} {b.type:<4} {human_bytes(b.repo_size):>10} "
              f"(database {human_bytes(b.size)})  {b.start_lsn} - {b.stop_lsn}, ended "
              f"{b.stopped:%Y-%m-%d %H:%M:%S}{'  ERROR' if b.error else ''}")


def register(sub: argparse._SubParsersAction) -> None:
    backup = sub.add_parser(
        "backup", help="back up now, verify, expire, or list backups",
        description="Backups of the cluster. Jobs run on the node that is the primary now, "
                    "with the same scripts cron runs (deploys/backup.py).")
    jobs = backup.add_subparsers(dest="backup_command", required=True, metavar="JOB")
    for kind, text in (
        ("full", "take a full backup now (pg_basebackup, tar + gzip, with its manifest)"),
        ("incr", "collect the WAL archived since the last incremental into incr/<date>/"),
        ("retention", "remove backups and WAL past the retention window"),
    ):
        job = jobs.add_parser(kind, help=text, description=text[0].upper() + text[1:] + ".")
        add_change_options(job, lock=False)
        job.set_defaults(func=cmd_run, kind=kind)
    verify = jobs.add_parser(
        "verify", help="verify a full backup (pg_verifybackup after unpacking it)",
        description="Unpack a full backup, check it with pg_verifybackup against its manifest "
                    "(files, checksums, WAL) and check the archive continues from it.")
    verify.add_argument("backup", nargs="?", default="latest", type=backup_name,
                        help="full/<timestamp> or its label (default: the newest)")
    add_change_options(verify, lock=False)
    verify.set_defaults(func=cmd_run, kind="verify")
    listing = jobs.add_parser(
        "list", help="list backups from the registry and the disk, flagging mismatches",
        description=cmd_list.__doc__ + " Exits 1 if they disagree or the archiver fails.")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_list)
