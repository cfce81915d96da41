"""The scheduled restore drill's cron job (pgcluster.control.schedule) and how `status`
judges the newest drill (pgcluster.control.status.drill_findings)."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from pgcluster.control import schedule
from pgcluster.control.status import drill_findings
from pgcluster.errors import ConfigError


def test_the_job_name_is_one_cron_reads() -> None:
    # cron(8) skips files whose names hold a dot or anything but letters, digits, - and _.
    assert schedule.job_name("inventory/docker.py", "test") == "pgcluster-drill-docker-test"
    assert schedule.job_name("inventory/docker.py", "/tmp/x/my.lab.toml") == \
        "pgcluster-drill-docker-my_lab"
    assert schedule.job_name("inv/prod site.py", None) == "pgcluster-drill-prod_site"


def test_the_cron_file_runs_the_restore_drill_at_the_schedule(tmp_path: Path) -> None:
    text = schedule.cron_file("30 4 * * 6", "inventory/docker.py", "test",
                              python="/r/.venv/bin/python", repo=Path("/r"))
    line = text.splitlines()[-1]
    fields = line.split(None, 6)
    assert fields[:6] == ["30", "4", "*", "*", "6", "root"]
    words = shlex.split(fields[6])
    assert words[:3] == ["cd", "/r", "&&"]
    assert words[3:] [:5] == ["PGCLUSTER_LAB=test", "/r/.venv/bin/python", "-m", "pgcluster",
                              "--inventory"]
    assert "drill restore --yes" in fields[6] and ">>" in words and words[-1] == "2>&1"
    assert "SHELL=/bin/sh" in text and text.endswith("\n")


def test_a_disabled_schedule_is_refused() -> None:
    with pytest.raises(ConfigError, match="drill_restore_schedule is ''"):
        schedule.cron_file("", "inventory/docker.py", None)


def test_install_and_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLUSTER_CRON_DIR", str(tmp_path / "cron.d"))
    monkeypatch.setenv("PGCLUSTER_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(ConfigError, match="install cron"):
        schedule.install("@weekly", "inventory/docker.py", None)
    (tmp_path / "cron.d").mkdir()
    path = schedule.install("@weekly", "inventory/docker.py", None)
    assert path == tmp_path / "cron.d" / "pgcluster-drill-docker"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text().splitlines()[-1].startswith("@weekly root cd ")
    assert (tmp_path / "state" / "docker" / "logs").is_dir()  # where the job appends
    assert schedule.remove("inventory/docker.py", None) == path and not path.exists()
    assert schedule.remove("inventory/docker.py", None) is None


def drill(status: str, age: int) -> dict:
    return {"status": status, "age_seconds": age, "label": "drill-20261207T0100Z",
            "detail": "proyecto.x: 20 rows missing" if status == "failed" else "identical"}


def test_a_failed_or_too_old_drill_is_unhealthy_and_none_is_not() -> None:
    assert drill_findings(None, "8d") == []
    assert drill_findings(drill("ok", 3600), "8d") == []
    failed = drill_findings(drill("failed", 3600), "8d")
    assert len(failed) == 1 and "failed: proyecto.x: 20 rows missing" in failed[0]
    old = drill_findings(drill("ok", 9 * 86400), "8d")
    assert len(old) == 1 and "9.0 d old (limit drill_max_age = 8d)" in old[0]
    assert drill_findings(drill("ok", 9 * 86400), None) == []  # any age
