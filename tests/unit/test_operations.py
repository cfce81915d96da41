"""Operations that carry secrets never put them on a command line (every user of a node
sees those in `ps`) nor anywhere pyinfra prints; and they stay idempotent."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pyinfra.api import FileUploadCommand
from pyinfra.api.exceptions import OperationError

from pgcluster import content, operations, scram
from pgcluster.content import Content, Directory, PathState, PathStates
from pgcluster.facts import PgQuery
from pgcluster.layout import UPLOAD_DIR


class FakeHost:
    """Answers facts from a table, as a node would."""

    def __init__(self, facts: dict[Any, Any]):
        self.facts = facts

    def get_fact(self, fact: type, **kwargs: Any) -> Any:
        return self.facts.get(fact)


def commands(monkeypatch: pytest.MonkeyPatch, facts: dict, op, **kwargs) -> list:
    monkeypatch.setattr(operations, "host", FakeHost(facts))
    return list(op._inner(**kwargs))


def text_of(command: Any) -> str:
    return command if isinstance(command, str) else repr(command) + str(vars(command))


def file_commands(monkeypatch: pytest.MonkeyPatch, states: list[PathState],
                  files: list[Content]) -> list:
    monkeypatch.setattr(content, "host", FakeFileHost(states))
    return list(content.contents._inner(files=files))


class FakeFileHost:
    def __init__(self, states: list[PathState]):
        self.states = states

    def get_fact(self, fact: type, **kwargs: Any) -> Any:
        assert fact is PathStates and len(kwargs["paths"]) == len(self.states)
        return self.states

    def get_temp_filename(self, dest: str) -> str:
        return f"/tmp/pyinfra-{hashlib.sha1(dest.encode()).hexdigest()}"


def test_secret_file_uploads_privately_and_prints_nothing(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    text = "*:*:replication:replicator:s3cret\n"
    cmds = file_commands(monkeypatch, [PathState("-")], [Content(
        "/var/lib/postgresql/.pgpass", text, "600", "postgres", "postgres", secret=True)])
    uploads = [c for c in cmds if isinstance(c, FileUploadCommand)]
    assert len(uploads) == 1
    assert uploads[0].remote_temp_filename.startswith(f"{UPLOAD_DIR}/")
    shell = [c for c in cmds if isinstance(c, str)]
    assert all("s3cret" not in c for c in shell)
    # the file exists with its final mode before any content goes into it
    assert shell.index("umask 077 && touch /var/lib/postgresql/.pgpass") < cmds.index(uploads[0])
    assert shell[-1] == ("chown postgres:postgres /var/lib/postgresql/.pgpass && "
                         "chmod 600 /var/lib/postgresql/.pgpass")
    assert any('-o "${SUDO_USER:-root}"' in c for c in shell)
    assert "s3cret" not in repr(Content("/x", text, secret=True))


def test_files_are_idempotent_and_fix_a_loose_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "secret"
    digest = hashlib.sha1(text.encode()).hexdigest()
    files = [Content("/x", text, "600", "postgres", "postgres", secret=True),
             Content("/etc/y.conf", "y = 1\n", "644")]
    y_digest = hashlib.sha1(b"y = 1\n").hexdigest()
    right = [PathState("f", "postgres", "postgres", "600", digest),
             PathState("f", "root", "root", "644", y_digest)]
    assert file_commands(monkeypatch, right, files) == []
    loose = [PathState("f", "postgres", "postgres", "644", digest), right[1]]
    assert file_commands(monkeypatch, loose, files) == [
        "chown postgres:postgres /x && chmod 600 /x"]


def test_a_changed_file_is_uploaded_and_others_left_alone(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    files = [Content("/etc/a.conf", "a = 2\n"), Content("/etc/b.conf", "b = 1\n")]
    states = [PathState("f", "root", "root", "644", hashlib.sha1(b"a = 1\n").hexdigest()),
              PathState("f", "root", "root", "644", hashlib.sha1(b"b = 1\n").hexdigest())]
    cmds = file_commands(monkeypatch, states, files)
    uploads = [c for c in cmds if isinstance(c, FileUploadCommand)]
    assert [u.dest for u in uploads] == ["/etc/a.conf"]
    assert uploads[0].src.getvalue() == "a = 2\n"
    assert cmds[-1] == "chown root:root /etc/a.conf && chmod 644 /etc/a.conf"


def test_a_link_or_directory_where_a_file_belongs_is_refused(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    with pytest.raises(OperationError, match="not a regular file"):
        file_commands(monkeypatch, [PathState("o")], [Content("/etc/a.conf", "a\n")])


def test_directories_made_or_fixed_only_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [Directory("/backups", "755", "postgres", "postgres"), Directory("/opt/x")]
    monkeypatch.setattr(content, "host", FakeFileHost(
        [PathState("d", "postgres", "postgres", "755"), PathState("-")]))
    assert list(content.directories._inner(dirs=dirs)) == [
        "mkdir -p /opt/x && chown root:root /opt/x && chmod 755 /opt/x"]


def test_path_states_fact_reads_every_kind() -> None:
    fact = PathStates()
    assert fact.process(["f postgres postgres 600 " + "a" * 40, "d root root 755", "o", "-"]
                        ) == [PathState("f", "postgres", "postgres", "600", "a" * 40),
                              PathState("d", "root", "root", "755"), PathState("o"),
                              PathState("-")]
    assert "'/a b'" in fact.command(["/a b", "/c"])


@pytest.mark.parametrize("existing", [None, "SCRAM-SHA-256$4096:c2FsdA==$eA==:eQ=="])
def test_role_sends_its_verifier_from_a_private_file(monkeypatch: pytest.MonkeyPatch,
                                                     existing: str | None) -> None:
    rows = [] if existing is None else [["f", "f", "t", "f", "f", "f", existing]]
    cmds = commands(monkeypatch, {PgQuery: rows}, operations.role, role="app",
                    password="pa55word")
    uploads = [c for c in cmds if isinstance(c, FileUploadCommand)]
    assert len(uploads) == 1 and uploads[0].dest == f"{UPLOAD_DIR}/role-app.sql"
    sql = uploads[0].src.getvalue()
    assert sql.startswith("SET log_statement = 'none';")
    assert "SET log_min_error_statement = 'panic';" in sql
    verifier = sql.split("PASSWORD '")[1].split("'")[0]
    assert scram.matches(verifier, "pa55word")
    for command in cmds:
        if isinstance(command, str):
            assert "pa55word" not in command and "SCRAM-SHA-256" not in command
    assert cmds[-1].endswith(f"< {UPLOAD_DIR}/role-app.sql; rc=$?; "
                             f"rm -f {UPLOAD_DIR}/role-app.sql; exit $rc")


def test_role_with_the_right_password_and_attributes_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [["f", "t", "t", "f", "f", "f", scram.verifier("replica-pw")]]
    assert commands(monkeypatch, {PgQuery: rows}, operations.role, role="replicator",
                    password="replica-pw", replication=True) == []


def test_role_drops_createdb_createrole_bypassrls(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [["f", "f", "t", "t", "t", "t", scram.verifier("pw")]]
    cmds = commands(monkeypatch, {PgQuery: rows}, operations.role, role="app", password="pw")
    sql = next(c for c in cmds if isinstance(c, FileUploadCommand)).src.getvalue()
    assert 'ALTER ROLE "app" NOCREATEDB NOCREATEROLE NOBYPASSRLS;' in sql
