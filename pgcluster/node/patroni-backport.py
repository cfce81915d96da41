#!/usr/bin/env python3
"""patroni-backport --check | --apply -- Patroni 3.0.2's etcd3 leader-key fix, backported.
Managed by pgcluster (pgcluster/node/).

Debian 12's Patroni 3.0.2 renews its leader key in etcd v3 with an unconditional put when
its lease changed (patroni/dcs/etcd3.py, Etcd3._update_leader). A leader cut off from etcd
longer than ttl gets a new lease when it is back; if its watch cache still shows it as the
leader, it then overwrites the key another member won meanwhile: the rightful leader
demotes itself and the stale one, whose timeline diverged, holds the key. Patroni 3.0.3
fixed it (#2693): the key is renewed only while it still names this member, and created
only when nobody holds it. This script makes the same change to the installed file.

--check prints "fixed" (this backport or upstream's fix is there), "unfixed" (3.0.2's
code, which --apply replaces) or "unknown" (neither: another version, left alone).
--apply replaces 3.0.2's code, keeping the original as etcd3.py.pgcluster-orig.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = "# pgcluster: backport of Patroni 3.0.3's #2693"

ORIGINAL = """\
                try:
                    self._run_and_handle_exceptions(self._client.put, self.leader_path,
                                                    self._name, self._lease, retry=_retry)
                except ReturnFalseException:
                    pass
        return bool(self._lease)
"""

FIXED = f"""\
                {MARKER}: renew the key only while it names this
                # member, else create it only if nobody holds it; never overwrite another's.
                fields = {{'key': base64_encode(self.leader_path),
                          'value': base64_encode(self._name), 'lease': self._lease}}
                ours = {{'key': fields['key'], 'target': 'VALUE', 'value': fields['value']}}
                try:
                    if not self._run_and_handle_exceptions(
                            self._client.txn, ours, {{'request_put': fields}}, retry=_retry) \\
                            and not self._run_and_handle_exceptions(
                                self._client.put, self.leader_path, self._name, self._lease,
                                0, retry=_retry):
                        return False
                except ReturnFalseException:
                    return False
        return bool(self._lease)
"""

UPSTREAM_FIX = "compare1 = {'key': fields['key'], 'target': 'VALUE'"


def etcd3_file() -> Path:
    import patroni.dcs

    return Path(patroni.dcs.__file__).with_name("etcd3.py")


def state(text: str) -> str:
    if MARKER in text or UPSTREAM_FIX in text:
        return "fixed"
    if text.count(ORIGINAL) == 1:
        return "unfixed"
    return "unknown"


def main() -> int:
    if sys.argv[1:] not in (["--check"], ["--apply"]):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 64
    path = etcd3_file()
    text = path.read_text()
    found = state(text)
    if sys.argv[1] == "--check":
        print(found)
        return 0
    if found == "fixed":
        print(f"{path}: already fixed")
        return 0
    if found == "unknown":
        print(f"{path}: neither Patroni 3.0.2's code nor a fixed one: not changed",
              file=sys.stderr)
        return 1
    original = path.with_name(path.name + ".pgcluster-orig")
    if not original.exists():
        original.write_text(text)
    new = path.with_name(path.name + ".pgcluster-new")
    new.write_text(text.replace(ORIGINAL, FIXED))
    os.chmod(new, path.stat().st_mode & 0o7777)
    os.replace(new, path)  # atomic: Patroni never imports a half-written file
    print(f"{path}: leader-key renewal fixed (original kept as {original.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
