"""The pgbackrest backup engine as data: which engine a run uses, the repositories a node's
pgbackrest.conf names, pgBackRest's backup labels and its `info --output=json`. Pure
functions, unit-tested without hosts; the work on the nodes is pgcluster/node/pgbackrest-job.sh
(backups, verify, expiry) and restore-backup.sh (restores).

repo1 is a posix repository under backup_root, which every node shares as the seed engine's
repository; repo2, when an S3 endpoint is configured (or the inventory has an `objectstore`
group), is S3-compatible object storage, encrypted by default. Every node carries the same
configuration and a backup job runs on whichever node is the primary at the time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pgcluster.errors import ConfigError

ENGINES = ("pg_basebackup", "pgbackrest")
DEFAULT_ENGINE = "pg_basebackup"
CONFIG_FILE = "/etc/pgbackrest/pgbackrest.conf"
LOG_DIR = "/var/log/pgbackrest"
# pgBackRest's labels: a full backup's, then a differential's or an incremental's (which
# carry their full backup's label first).
LABEL_RE = re.compile(r"\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?")
# How a user may name one: its label or latest, each optionally in one repository:
# repo<N>/<label> (the registry's path), repo2/latest.
NAME_RE = re.compile(rf"(?:repo\d+/)?(?:latest|{LABEL_RE.pattern})")
KIND_OF_TYPE = {"full": "full", "diff": "incr", "incr": "incr"}


def decide_engine(requested: str | None, running: Iterable[str | None]) -> str:
    """The engine of this run: the one asked for (group data or --data backup_engine), else
    the one the nodes were last deployed with (their node.env), else pg_basebackup. Nodes
    that disagree (a deploy interrupted half-way through a switch) need an explicit choice."""
    if requested:
        return requested
    found = sorted({engine for engine in running if engine})
    if len(found) > 1:
        raise ConfigError(
            f"the nodes were deployed with different backup engines ({', '.join(found)}), "
            "as after an interrupted switch: run the deploy again with --data "
            "backup_engine=pgbackrest (or pg_basebackup) to finish one way or the other"
        )
    return found[0] if found else DEFAULT_ENGINE


@dataclass(frozen=True)
class S3Repository:
    """repo2: S3-compatible object storage."""

    endpoint: str
    port: int
    bucket: str
    region: str
    uri_style: str
    path: str
    ca_file: str | None
    key: str
    key_secret: str
    cipher_type: str
    cipher_pass: str | None


def s3_endpoint(data: Mapping[str, Any], objectstores: Sequence[str] = ()) -> str | None:
    """The S3 endpoint repo2 uses: pgbackrest_s3_endpoint, else the first host of the
    inventory's `objectstore` group (its name, which its certificate carries), else none."""
    endpoint = data.get("pgbackrest_s3_endpoint")
    if endpoint:
        return str(endpoint)
    return objectstores[0] if objectstores else None


def s3_repository(data: Mapping[str, Any], objectstores: Sequence[str] = (),
                  cluster_ca_file: str | None = None) -> S3Repository | None:
    """repo2 from group data, or None: no endpoint. The store of the `objectstore` group
    gets its certificate from the cluster CA, so that is the CA file unless one is set."""
    endpoint = s3_endpoint(data, objectstores)
    if not endpoint:
        return None
    ours = not data.get("pgbackrest_s3_endpoint")
    ca_file = data.get("pgbackrest_s3_ca_file") or (cluster_ca_file if ours else None)
    return S3Repository(
        endpoint=endpoint,
        port=int(data.get("pgbackrest_s3_port") or 443),
        bucket=str(data.get("pgbackrest_s3_bucket") or "pgbackrest"),
        region=str(data.get("pgbackrest_s3_region") or "us-east-1"),
        uri_style="path" if ours else str(data.get("pgbackrest_s3_uri_style") or "host"),
        path=str(data.get("pgbackrest_s3_path") or "/pgcluster"),
        ca_file=str(ca_file) if ca_file else None,
        key=str(data.get("pgbackrest_s3_key") or ""),
        key_secret=str(data.get("pgbackrest_s3_key_secret") or ""),
        cipher_type=str(data.get("pgbackrest_s3_cipher_type") or "aes-256-cbc"),
        cipher_pass=data.get("pgbackrest_cipher_pass"),
    )


def repositories(s3: S3Repository | None) -> list[int]:
    """The repository numbers every backup job writes to, in order."""
    return [1, 2] if s3 else [1]


def problems(data: Mapping[str, Any], engine: str, objectstores: Sequence[str] = ()) -> list[str]:
    """What keeps a node's pgbackrest configuration from working, said before any host is
    touched: the keys and the passphrase of an S3 repository."""
    if engine != "pgbackrest":
        return []
    found = []
    endpoint = s3_endpoint(data, objectstores)
    if endpoint:
        for key in ("pgbackrest_s3_key", "pgbackrest_s3_key_secret"):
            if not data.get(key):
                found.append(f"{key} is not set, and repo2 (S3 at {endpoint}) needs it")
        if (data.get("pgbackrest_s3_cipher_type") or "aes-256-cbc") != "none" \
                and not data.get("pgbackrest_cipher_pass"):
            found.append(f"pgbackrest_cipher_pass is not set, and repo2 (S3 at {endpoint}) "
                         "is encrypted (pgbackrest_s3_cipher_type)")
        if re.fullmatch(r"[0-9.]+|.*:.*", endpoint):
            found.append(f"pgbackrest_s3_endpoint {endpoint} is an address: pgBackRest checks "
                         "the store's certificate against a host name, so give its DNS name")
    return found


def check_name(name: str) -> str:
    """A pgbackrest backup named by a command: latest, its label or repo<N>/<label>."""
    if NAME_RE.fullmatch(name):
        return name
    raise ConfigError(
        f"backup {name!r} is not a pgBackRest backup name: use latest, a label "
        "(20261207-020000F, 20261207-020000F_20261208-023000I) or repo2/<label>; "
        "`pgcluster backup list` shows them"
    )


# -------------------------------------------------------------------------- pgbackrest info


@dataclass(frozen=True)
class Backup:
    """One backup of `pgbackrest info --output=json`."""

    repo: int
    label: str
    type: str  # full, diff, incr
    started: datetime
    stopped: datetime
    size: int  # the database's size at the backup
    repo_size: int  # what this backup added to the repository (compressed)
    start_lsn: str
    stop_lsn: str
    start_wal: str
    stop_wal: str
    prior: str | None
    error: bool

    @property
    def kind(self) -> str:
        return KIND_OF_TYPE.get(self.type, self.type)

    @property
    def path(self) -> str:
        return f"repo{self.repo}/{self.label}"


@dataclass(frozen=True)
class StanzaInfo:
    name: str
    status: str  # pgBackRest's message: "ok", "missing stanza path", ...
    status_code: int
    backups: tuple[Backup, ...]
    archive_min: dict[int, str]  # repo -> oldest archived segment
    archive_max: dict[int, str]  # repo -> newest archived segment
    repo_status: dict[int, str]  # repo -> "ok" or pgBackRest's message


def _time(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def parse_info(text: str, stanza: str) -> StanzaInfo | None:
    """`pgbackrest info --output=json` (every repository): the stanza's backups oldest
    first, the archive's range and each repository's status. None: no such stanza."""
    # A repository pgBackRest cannot decrypt puts raw bytes in its messages: not strict JSON.
    for entry in json.loads(text or "[]", strict=False):
        if entry.get("name") != stanza:
            continue
        backups = []
        for b in entry.get("backup", []):
            repo = int((b.get("database") or {}).get("repo-key", 1))
            info = b.get("info") or {}
            backups.append(Backup(
                repo=repo, label=b["label"], type=b.get("type", "full"),
                started=_time(b["timestamp"]["start"]), stopped=_time(b["timestamp"]["stop"]),
                size=int(info.get("size") or 0),
                repo_size=int((info.get("repository") or {}).get("delta") or 0),
                start_lsn=(b.get("lsn") or {}).get("start", ""),
                stop_lsn=(b.get("lsn") or {}).get("stop", ""),
                start_wal=(b.get("archive") or {}).get("start", ""),
                stop_wal=(b.get("archive") or {}).get("stop", ""),
                prior=b.get("prior"), error=bool(b.get("error")),
            ))
        archive_min: dict[int, str] = {}
        archive_max: dict[int, str] = {}
        for a in entry.get("archive", []):
            repo = int((a.get("database") or {}).get("repo-key", 1))
            if a.get("min"):
                archive_min[repo] = min(archive_min.get(repo, a["min"]), a["min"])
            if a.get("max"):
                archive_max[repo] = max(archive_max.get(repo, a["max"]), a["max"])
        repo_status = {int(r["key"]): str((r.get("status") or {}).get("message", "?"))
                       for r in entry.get("repo", [])}
        status = entry.get("status") or {}
        return StanzaInfo(
            name=stanza, status=str(status.get("message", "?")),
            status_code=int(status.get("code", -1)),
            backups=tuple(sorted(backups, key=lambda b: (b.started, b.repo))),
            archive_min=archive_min, archive_max=archive_max, repo_status=repo_status,
        )
    return None


# pgBackRest's per-repository status messages that mean the stanza is there (code 0 "ok",
# code 2 "no valid backups": created, nothing backed up yet).
STANZA_PRESENT = ("ok", "no valid backups")
