"""What holds for every node script: it lints, it starts the same way, it is installed under
its contract name, and the helpers it shares live once, in lib.sh. Each script's behaviour
is tested in its own file (test_<script>.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter

import pytest

from pgcluster import NODE_DIR, TEMPLATES_DIR
from pgcluster.control.templating import render_template, template_context
from pgcluster.model.backups import SCRIPTS as MODEL_BACKUP_SCRIPTS
from pgcluster.model.layout import NODE_ENV, SCRIPTS_DIR
from pgcluster.steps.backups import SCRIPTS as BACKUP_SCRIPTS
from pgcluster.steps.configure import SCRIPTS as HA_SCRIPTS
from pgcluster.steps.configure import node_files, script_files
from tests.unit.helpers import ALL, SECRETS, cluster

SOURCES = sorted(NODE_DIR.glob("*.sh"))


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_scripts_are_valid_bash_and_shellcheck_clean(path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", "-x", path.name], cwd=NODE_DIR,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_script_is_installed_under_its_contract_name() -> None:
    assert BACKUP_SCRIPTS == MODEL_BACKUP_SCRIPTS
    names = {p.stem for p in SOURCES} - {"lib"}
    assert names == set(HA_SCRIPTS) | set(BACKUP_SCRIPTS)
    installed = script_files(HA_SCRIPTS) + script_files(BACKUP_SCRIPTS)
    assert {(f.dest, f.mode, f.user, f.group) for f in installed} == {
        (f"{SCRIPTS_DIR}/{name}", "755", "root", "root") for name in names}
    for file in installed:
        assert file.text == (NODE_DIR / f"{file.dest.rsplit('/', 1)[1]}.sh").read_text()


def test_the_library_and_the_settings_are_installed_readable_and_deterministic() -> None:
    c = cluster()
    ctx = template_context({**ALL, **SECRETS}, c.node("db2"), c)
    lib, env = node_files(ctx)
    assert (lib.dest, lib.mode, lib.user, lib.group) == (f"{SCRIPTS_DIR}/lib.sh", "644", "root",
                                                         "root")
    assert (env.dest, env.mode, env.user, env.group) == (NODE_ENV, "644", "root", "root")
    assert not env.secret and env.dest == "/etc/pgcluster/node.env"
    assert node_files(ctx) == node_files(ctx)
    assert env.text == render_template("node/node.env.j2", ctx)


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "lib.sh"],
                         ids=[p.name for p in SOURCES if p.name != "lib.sh"])
def test_each_script_starts_strict_and_sources_the_library_next_to_it(path) -> None:
    assert os.access(path, os.X_OK), "the tests run it from the source tree"
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    # start-guard decides for itself what a failure means (a peer that cannot be asked).
    strict = "set -u" if path.name == "start-guard.sh" else "set -euo pipefail"
    assert strict in lines
    assert 'PGCLUSTER_LIB=${PGCLUSTER_LIB:-$(dirname "$(readlink -f "$0")")}' in lines
    assert lines.index('. "$PGCLUSTER_LIB/lib.sh"') > lines.index(strict)
    assert "# shellcheck source=lib.sh" in lines


def test_no_helper_is_written_twice() -> None:
    defined = Counter(name for path in SOURCES
                      for name in re.findall(r"^\s*([a-z_]+)\(\) *\{", path.read_text(), re.M))
    # backup-retention --plan prints instead of logging: the one deliberate redefinition.
    assert {name: n for name, n in defined.items() if n > 1} == {"log": 2}
    assert "count" not in defined
    assert not os.access(NODE_DIR / "lib.sh", os.X_OK)  # sourced, never run


def test_the_scripts_hold_no_jinja_and_no_hard_coded_locations() -> None:
    for path in SOURCES:
        text = path.read_text()
        assert "{{" not in text and "{%" not in text, path.name
        for location in ("/var/log/pgcluster", "/backups", "/var/lib/postgresql",
                         "/usr/lib/postgresql", "/etc/postgresql/"):
            assert location not in text, (path.name, location)


def test_no_template_opens_a_jinja_comment_by_accident() -> None:
    # "${#array[@]}" in bash would start a Jinja comment and silently drop lines: the
    # scripts are no templates any more, and the one that is, node.env, has no such text.
    assert not (TEMPLATES_DIR / "scripts").exists()
    for template in (TEMPLATES_DIR / "node").glob("*.j2"):
        assert "{#" not in template.read_text(), template.name
