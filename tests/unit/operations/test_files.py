"""Files and directories checked a group at a time: idempotent, secrets uploaded privately
and never printed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pyinfra.api import FileUploadCommand
from pyinfra.api.exceptions import OperationError

from pgcluster.facts.files import PathState, PathStates
from pgcluster.model.layout import UPLOAD_DIR
from pgcluster.operations import files as content
from pgcluster.operations.files import Content, Directory
from tests.unit.fakes import FakeState


def file_commands(monkeypatch: pytest.MonkeyPatch, states: list[PathState],
                  files: list[Content]) -> list:
    monkeypatch.setattr(content, "host", FakeFileHost(states))
    return list(content.contents._inner(files=files))


class FakeFileHost:
    def __init__(self, states: list[PathState], executing: bool = False):
        self.states = states
        self.state = FakeState(is_executing=executing)

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
