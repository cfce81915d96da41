"""The pgbackrest engine as data: which engine a run uses, repo2 from group data, what is
refused before any host is touched, pgBackRest's names and its info JSON, and where the
registry and pgBackRest's repositories disagree."""

from __future__ import annotations

import json

import pytest

from pgcluster.errors import ConfigError
from pgcluster.model import pgbackrest
from pgcluster.model.backups import Repository, check_backup_name, is_pgbackrest_name, mismatches

S3 = {"pgbackrest_s3_key": "k", "pgbackrest_s3_key_secret": "s",
      "pgbackrest_cipher_pass": "p"}


@pytest.mark.parametrize(("requested", "running", "chosen"), [
    (None, [None, None], "pg_basebackup"),  # a new cluster
    (None, ["pgbackrest", "pgbackrest", None], "pgbackrest"),  # kept; a new node follows
    ("pg_basebackup", ["pgbackrest"], "pg_basebackup"),  # asked for: switched back
    ("pgbackrest", ["pg_basebackup"], "pgbackrest"),  # the switch
])
def test_the_engine_is_the_one_asked_for_else_the_one_the_nodes_run(requested, running,
                                                                    chosen) -> None:
    assert pgbackrest.decide_engine(requested, running) == chosen


def test_nodes_that_disagree_need_an_explicit_engine() -> None:
    with pytest.raises(ConfigError, match=r"different backup engines.*backup_engine=pgbackrest"):
        pgbackrest.decide_engine(None, ["pgbackrest", "pg_basebackup"])


def test_repo2_is_the_objectstore_groups_host_with_the_cluster_ca() -> None:
    repo = pgbackrest.s3_repository(S3, ["pgbr-objectstore"], "/etc/ca.crt")
    assert repo is not None
    assert (repo.endpoint, repo.uri_style, repo.ca_file, repo.port) == (
        "pgbr-objectstore", "path", "/etc/ca.crt", 443)
    assert pgbackrest.repositories(repo) == [1, 2]
    assert pgbackrest.s3_repository({}, [], "/etc/ca.crt") is None
    assert pgbackrest.repositories(None) == [1]


def test_a_users_own_store_keeps_its_settings() -> None:
    data = {**S3, "pgbackrest_s3_endpoint": "s3.eu-west-1.amazonaws.com",
            "pgbackrest_s3_uri_style": "host", "pgbackrest_s3_region": "eu-west-1"}
    repo = pgbackrest.s3_repository(data, ["ours"], "/etc/ca.crt")
    assert repo is not None
    assert (repo.endpoint, repo.uri_style, repo.ca_file, repo.region) == (
        "s3.eu-west-1.amazonaws.com", "host", None, "eu-west-1")


def test_missing_keys_and_an_address_endpoint_are_refused() -> None:
    assert pgbackrest.problems(S3, "pgbackrest", ["store"]) == []
    assert pgbackrest.problems({}, "pg_basebackup", ["store"]) == []
    found = pgbackrest.problems({}, "pgbackrest", ["store"])
    assert len(found) == 3 and all("store" in p for p in found)
    assert any("pgbackrest_cipher_pass" in p for p in found)
    assert pgbackrest.problems({**S3, "pgbackrest_cipher_pass": None,
                                "pgbackrest_s3_cipher_type": "none"}, "pgbackrest",
                               ["store"]) == []
    address = pgbackrest.problems({**S3, "pgbackrest_s3_endpoint": "10.0.0.9"}, "pgbackrest")
    assert address and "DNS name" in address[0]


@pytest.mark.parametrize("name", ["latest", "repo2/latest", "20261207-101500F",
                                  "20261207-101500F_20261208-023000I",
                                  "repo1/20261207-101500F_20261208-023000D"])
def test_pgbackrest_names_are_accepted(name: str) -> None:
    assert check_backup_name(name) == name and is_pgbackrest_name(name)
    assert pgbackrest.check_name(name) == name


@pytest.mark.parametrize("name", ["repo2/../x", "20261207-101500", "repo/20261207-101500F",
                                  "20261207-101500F_x", "20261207T101500Z; rm"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        pgbackrest.check_name(name)


def info_json(*backups: tuple[int, str, str]) -> str:
    return json.dumps([{
        "name": "main", "status": {"code": 0, "message": "ok"},
        "repo": [{"key": 1, "cipher": "none", "status": {"code": 0, "message": "ok"}},
                 {"key": 2, "cipher": "aes-256-cbc",
                  "status": {"code": 2, "message": "no valid backups"}}],
        "archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1",
                     "min": "000000010000000000000003", "max": "00000001000000000000000B"}],
        "backup": [{"label": label, "type": kind, "prior": None, "error": False,
                    "timestamp": {"start": 1765100000 + i, "stop": 1765100010 + i},
                    "info": {"size": 1000, "delta": 1000,
                             "repository": {"size": 100, "delta": 90}},
                    "lsn": {"start": "0/8000028", "stop": "0/8000100"},
                    "archive": {"start": "000000010000000000000008",
                                "stop": "000000010000000000000008"},
                    "database": {"id": 1, "repo-key": repo}}
                   for i, (repo, label, kind) in enumerate(backups)],
    }])


def test_info_gives_every_repositorys_backups_and_status() -> None:
    stanza = pgbackrest.parse_info(info_json((1, "20261207-185428F", "full"),
                                             (1, "20261207-185428F_20261207-190000I", "incr")),
                                   "main")
    assert stanza is not None
    assert [(b.repo, b.kind, b.path) for b in stanza.backups] == [
        (1, "full", "repo1/20261207-185428F"),
        (1, "incr", "repo1/20261207-185428F_20261207-190000I")]
    assert stanza.repo_status == {1: "ok", 2: "no valid backups"}
    assert stanza.archive_max == {1: "00000001000000000000000B"}
    assert all(s in pgbackrest.STANZA_PRESENT for s in stanza.repo_status.values())
    assert pgbackrest.parse_info(info_json(), "other") is None


def test_the_registry_and_pgbackrest_disagreeing_is_a_mismatch() -> None:
    labels = {1: {"20261207-185428F", "20261207-190000F"}, 2: set()}
    registry = [
        {"kind": "full", "path": "repo1/20261207-185428F", "label": "20261207-185428F",
         "status": "ok", "removed_at": None},
        {"kind": "full", "path": "repo2/20261207-185428F", "label": "20261207-185428F",
         "status": "ok", "removed_at": None},
    ]
    found = {(f.name, f.problem.split(" but")[0]) for f in mismatches(registry, Repository(),
                                                                      labels)}
    assert found == {("repo2/20261207-185428F", "registered as ok"),
                     ("repo1/20261207-190000F", "in pgBackRest's repository")}
    # Without pgBackRest's view (the seed engine) its rows are not judged against the disk.
    assert mismatches(registry, Repository()) == []
