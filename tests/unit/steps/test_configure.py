"""The configure step's refusals before anything is created."""

from __future__ import annotations

import pytest

from pgcluster.errors import ConfigError
from pgcluster.facts.files import MountPoint
from pgcluster.steps.configure import require_mounted_backup_root
from tests.unit.fakes import FakeHost


def test_an_unmounted_backup_root_is_refused_unless_local_by_choice() -> None:
    unmounted = FakeHost("db1", {MountPoint: False}, data={"backup_root": "/backups"})
    with pytest.raises(ConfigError, match="backup_root /backups is not a mount point on db1"):
        require_mounted_backup_root(unmounted)  # type: ignore[arg-type]
    require_mounted_backup_root(FakeHost("db1", {MountPoint: True},  # type: ignore[arg-type]
                                         data={"backup_root": "/backups"}))
    require_mounted_backup_root(FakeHost("db1", {MountPoint: False}, data={  # type: ignore[arg-type]
        "backup_root": "/backups", "backup_root_must_be_mounted": False}))


def test_the_mount_point_fact() -> None:
    fact = MountPoint()
    assert fact.command(path="/backups") == "mountpoint -q /backups && echo yes || echo no"
    assert fact.process(["yes"]) is True and fact.process(["no"]) is False
