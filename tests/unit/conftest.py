"""Unit tests never read or write the repository's secrets/ directory (a developer's own
passwords and TLS files): PGCLUSTER_SECRETS_DIR points each test at an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "secrets"
    monkeypatch.setenv("PGCLUSTER_SECRETS_DIR", str(root))
    return root
