"""Files with exact content, owner and mode, and directories, checked in one command.

pyinfra's files.put and files.directory read two or three facts per path (the file, its
sha1, its parent directory), each one a round trip to the node: a `docker exec` or an SSH
command of 50-150 ms. A node holds some thirty such paths, so a re-run that changes
nothing spent most of its time asking about them one by one. Here one fact reads the
state of a whole group of paths and the operation uploads only what differs.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from pgcluster.facts.files import PathState, PathStates
from pgcluster.model.layout import UPLOAD_DIR
from pgcluster.operations.conditional import refuse


@dataclass(frozen=True)
class Content:
    """A file as it must be. `secret` files never travel or sit readable (see
    private_upload) and their content is never printed."""

    dest: str
    text: str = field(repr=False)
    mode: str = "644"
    user: str = "root"
    group: str = "root"
    secret: bool = False


def sql_file(dest: str, text: str) -> Content:
    """An SQL file for `psql -f`, owned by postgres and readable by it only."""
    return Content(dest, text, "640", "postgres", "postgres")


@dataclass(frozen=True)
class Directory:
    path: str
    mode: str = "755"
    user: str = "root"
    group: str = "root"


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def private_upload(content: str, dest: str) -> Iterator[FileUploadCommand | str]:
    """Commands that put `content` at `dest` without it ever being readable by anyone but
    root (and the login user who holds sudo anyway), and never on a command line.

    pyinfra uploads through sudo by writing a temporary file as the login user (SFTP) and
    copying it into place; its default temporary directory is /tmp, where the file would be
    world-readable for a moment. Here that file goes to UPLOAD_DIR, a directory only the
    login user may enter (its parent belongs to root, so nobody can plant a link there),
    and `dest` exists with its final, private mode before any content is copied into it.
    Over docker exec the connector copies a 0600 file from the control machine instead.
    """
    parent = UPLOAD_DIR.rsplit("/", 1)[0]
    yield (f"install -d -m 755 {parent} && "
           f'install -d -m 700 -o "${{SUDO_USER:-root}}" {UPLOAD_DIR}')
    yield f"umask 077 && touch {shlex.quote(dest)}"
    yield FileUploadCommand(StringIO(content), dest,
                            remote_temp_filename=f"{UPLOAD_DIR}/{sha1(dest)}.part")


def content_commands(file: Content, state: PathState) -> Iterator[FileUploadCommand | str]:
    """What makes `file` true over `state`: nothing when it already is."""
    same = state.kind == "f" and state.sha1 == sha1(file.text)
    if same and state.owned(file.user, file.group, file.mode):
        return
    if state.kind not in ("f", "-"):
        yield from refuse(host, f"{file.dest} exists and is not a regular file (a directory or "
                             "a link): move it away, then re-run the deploy")
        return
    quoted = shlex.quote(file.dest)
    if state.kind == "-":  # as files.put does; directories with an owner are made before
        yield f"mkdir -p {shlex.quote(file.dest.rsplit('/', 1)[0] or '/')}"
    own = f"chown {file.user}:{file.group} {quoted} && chmod {file.mode} {quoted}"
    if not same:
        if file.secret:
            if state.kind == "f":  # tighten an existing file before new content goes in
                yield own
            yield from private_upload(file.text, file.dest)
        else:
            yield FileUploadCommand(StringIO(file.text), file.dest,
                                    remote_temp_filename=host.get_temp_filename(file.dest))
    yield own


@operation()
def contents(files: Sequence[Content]):
    """Each file with exactly its content, owner and mode (a missing parent directory is
    made, root's; directories with another owner come from a `directories` step first)."""
    states = host.get_fact(PathStates, paths=[file.dest for file in files])
    for file, state in zip(files, states, strict=True):
        yield from content_commands(file, state)


@operation()
def directories(dirs: Sequence[Directory]):
    """Each directory present with its owner and mode, parents made as needed."""
    states = host.get_fact(PathStates, paths=[d.path for d in dirs])
    for d, state in zip(dirs, states, strict=True):
        if state.kind == "d" and state.owned(d.user, d.group, d.mode):
            continue
        if state.kind not in ("d", "-"):
            yield from refuse(host, f"{d.path} exists and is not a directory: move it away, "
                                 "then re-run the deploy")
            return
        quoted = shlex.quote(d.path)
        yield (f"mkdir -p {quoted} && chown {d.user}:{d.group} {quoted} && "
               f"chmod {d.mode} {quoted}")
