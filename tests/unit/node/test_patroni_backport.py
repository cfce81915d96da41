"""patroni-backport: Patroni 3.0.3's etcd3 leader-key fix applied to 3.0.2's file, run for
real on a stand-in Patroni package (Patroni 3.0.2's own _update_leader, from Debian 12's
patroni 3.0.2-1, in tests/unit/fixtures/) on PYTHONPATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pgcluster import NODE_DIR

SCRIPT = NODE_DIR / "patroni-backport.py"
FUNCTION = (Path(__file__).parents[1] / "fixtures"
            / "patroni-3.0.2-etcd3-update-leader.py.txt").read_text()
HEADER = "def base64_encode(v):\n    return v\n\n\nclass Etcd3:\n"


def package(root: Path, body: str) -> Path:
    dcs = root / "patroni" / "dcs"
    dcs.mkdir(parents=True)
    (root / "patroni" / "__init__.py").write_text("")
    (dcs / "__init__.py").write_text("")
    (dcs / "etcd3.py").write_text(HEADER + body)
    return dcs / "etcd3.py"


def run(root: Path, flag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), flag], env={"PYTHONPATH": str(root)},
                          capture_output=True, text=True, check=False)


def test_3_0_2_is_fixed_once_and_the_original_kept(tmp_path: Path) -> None:
    etcd3 = package(tmp_path, FUNCTION)
    assert run(tmp_path, "--check").stdout.strip() == "unfixed"
    applied = run(tmp_path, "--apply")
    assert applied.returncode == 0, applied.stderr
    text = etcd3.read_text()
    assert run(tmp_path, "--check").stdout.strip() == "fixed"
    # The unconditional put is gone: renewal compares the key's value with this member,
    # creation requires that nobody holds it (create_revision 0).
    assert "'target': 'VALUE'" in text and "self._lease,\n" in text and "0, retry=_retry" in text
    assert "self._name, self._lease, retry=_retry)" not in text
    compile(text, str(etcd3), "exec")
    assert etcd3.with_name("etcd3.py.pgcluster-orig").read_text() == HEADER + FUNCTION
    again = run(tmp_path, "--apply")
    assert again.returncode == 0 and "already fixed" in again.stdout
    assert etcd3.read_text() == text


@pytest.mark.parametrize("body, state", [
    ("    def _update_leader(self):\n        compare1 = {'key': fields['key'], "
     "'target': 'VALUE', 'value': v}\n", "fixed"),
    ("    def _update_leader(self):\n        return True\n", "unknown"),
])
def test_upstream_fixed_or_unknown_code_is_left_alone(tmp_path: Path, body: str,
                                                     state: str) -> None:
    etcd3 = package(tmp_path, body)
    assert run(tmp_path, "--check").stdout.strip() == state
    applied = run(tmp_path, "--apply")
    assert applied.returncode == (0 if state == "fixed" else 1)
    assert etcd3.read_text() == HEADER + body
