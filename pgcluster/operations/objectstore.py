"""The object store's bucket, made once (pgBackRest does not create buckets)."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Command

# weed shell asks the master, which the store runs on the loopback.
MASTER = "127.0.0.1:9333"


def _shell(weed: str, command: str) -> str:
    return f"echo {shlex.quote(command)} | {shlex.quote(weed)} shell -master={MASTER}"


@operation()
def bucket(bucket: str, weed: str):
    """Create the bucket unless the store lists it. While the store has just been
    (re)started its master may take a few seconds to answer: the command waits for it."""
    listed = host.get_fact(Command, command=f"{_shell(weed, 's3.bucket.list')} 2>/dev/null; true")
    if any(line.split()[:1] == [bucket] for line in (listed or "").splitlines()):
        return
    create = _shell(weed, f"s3.bucket.create -name {bucket}")
    check = _shell(weed, "s3.bucket.list")
    # The filer (which holds the buckets) listening is what the shell needs.
    wait = ("for i in $(seq 60); do bash -c 'exec 3<>/dev/tcp/127.0.0.1/8888' 2>/dev/null "
            "&& break; sleep 1; done")
    yield (f"{wait}; {create} && {check} | awk '{{print $1}}' | grep -qx {shlex.quote(bucket)}")
