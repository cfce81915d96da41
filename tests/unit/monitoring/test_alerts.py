"""The alert rules (templates/monitoring/alerts.yml.j2, pgcluster.model.monitoring) as
Prometheus 2.42 reads them: `promtool check rules` on the rendered files of both engines,
and `promtool test rules` on every case of cases.py (every rule fires on its fault, with
its labels and summary, and stays quiet on a healthy cluster). One promtool run per
check, for both engines' files at once.

promtool is Debian 12's (package prometheus, 2.42, the monitor's); lab/install-promtool.sh
puts it in .venv/bin without installing the package. Without it these tests fail: they
are the only proof of the rules before a live lab.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgcluster.cli import build_parser
from pgcluster.model.monitoring import alert_context, free_fraction, render_alerts
from tests.conftest import REPO
from tests.unit.helpers import ALL
from tests.unit.monitoring.cases import INTERVAL, Case, Value, cases, healthy

PROMTOOL_VERSION = "2.42"
ENGINES = {"manual": False, "patroni": True}
CTX = alert_context(ALL)
# The certificate's case is evaluated at the default evaluation time (its expiry is
# relative to time() there).
DEFAULT_EVAL = CTX["for_default"] + 60
CASES = cases(CTX, DEFAULT_EVAL)


@cache
def promtool() -> str:
    """The venv's promtool (lab/install-promtool.sh), else one on PATH, if it is 2.42.
    Called in the tests (not a fixture), so that its absence is a test failure."""
    candidates = [REPO / ".venv" / "bin" / "promtool", Path(sys.executable).parent / "promtool"]
    on_path = shutil.which("promtool")
    candidates += [Path(on_path)] if on_path else []
    for candidate in candidates:
        if candidate.is_file():
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
            if f"version {PROMTOOL_VERSION}." in out.stdout + out.stderr:
                return str(candidate)
    pytest.fail(f"promtool {PROMTOOL_VERSION} (the monitor's Prometheus) was not found in "
                ".venv/bin nor on PATH: run lab/install-promtool.sh, which puts Debian 12's "
                "in .venv/bin without installing Prometheus")


@cache
def rendered(engine: str) -> str:
    return render_alerts({**ALL, "ha_engine": engine})


def rules(engine: str) -> dict[str, dict[str, Any]]:
    """The rendered alerting rules by name."""
    found: dict[str, dict[str, Any]] = {}
    for group in yaml.safe_load(rendered(engine))["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] not in found, f"two rules named {rule['alert']}"
            found[rule["alert"]] = rule
    return found


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"`for: {duration}`: pgcluster writes seconds"
    return int(match.group(1))


def engine_cases(engine: str) -> list[Case]:
    """The cases run against an engine's rules: all of them under Patroni (its rules and
    every other, with Patroni's and etcd's series present), the others without."""
    return [c for c in CASES if ENGINES[engine] or not c.patroni]


def eval_times(case: Case, rule: dict[str, Any]) -> tuple[int, ...]:
    return case.eval_times or (seconds(rule["for"]) + 60,)


def expand(text: str, labels: dict[str, str]) -> str:
    """A runbook as Prometheus expands it: only {{ $labels.NAME }} (a summary, with its
    value's formatting, is the case's own expectation)."""
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
    assert "{{" not in out, f"a runbook with more than $labels: {text}"
    return out


def _samples(value: Value, count: int) -> str:
    if isinstance(value, str):
        return value
    assert isinstance(value, int | float)
    number = str(int(value)) if float(value).is_integer() else repr(float(value))
    return f"{number}x{count}"


def unit_test_file(engine: str, rules_file: str) -> dict[str, Any]:
    """promtool's unit test file of an engine's cases: one test group per case."""
    by_name = rules(engine)
    tests = []
    for case in engine_cases(engine):
        rule = by_name[case.alert]
        times = eval_times(case, rule)
        count = max(times) // INTERVAL + 2
        inputs = healthy(ENGINES[engine], certificate_expiry=DEFAULT_EVAL + 365 * 86400)
        inputs |= case.change
        expected = [{"exp_labels": dict(e.labels),
                     "exp_annotations": {"summary": e.summary,
                                         "runbook": expand(rule["annotations"]["runbook"],
                                                           dict(e.labels))}}
                    for e in case.fires]
        tests.append({
            "name": f"{case.alert} {'quiet' if case.healthy else 'fires'}: {case.name}",
            "interval": f"{INTERVAL}s",
            "input_series": [{"series": s, "values": _samples(v, count)}
                             for s, v in inputs.items() if v is not None],
            "alert_rule_test": [{"eval_time": f"{t}s", "alertname": case.alert,
                                 "exp_alerts": expected} for t in times],
        })
    return {"rule_files": [rules_file], "evaluation_interval": f"{INTERVAL}s",
            "tests": tests}


def write_rules(directory: Path) -> list[str]:
    names = []
    for engine in ENGINES:
        (directory / f"alerts-{engine}.yml").write_text(rendered(engine))
        names.append(f"alerts-{engine}.yml")
    return names


def run(*args: str, cwd: Path) -> None:
    result = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------ promtool

def test_promtool_checks_the_rules_of_both_engines(tmp_path: Path) -> None:
    run("check", "rules", *write_rules(tmp_path), cwd=tmp_path)


def test_every_rule_fires_on_its_fault_and_not_when_healthy(tmp_path: Path) -> None:
    files = []
    for engine, rules_file in zip(ENGINES, write_rules(tmp_path), strict=True):
        path = tmp_path / f"test-{engine}.yml"
        path.write_text(yaml.safe_dump(unit_test_file(engine, rules_file), sort_keys=False,
                                       width=1000))
        files.append(path.name)
    run("test", "rules", *files, cwd=tmp_path)


# ------------------------------------------------------------- the cases cover it all

@pytest.mark.parametrize("engine", ENGINES)
def test_every_rule_has_a_fires_case_and_a_healthy_case(engine: str) -> None:
    names = set(rules(engine))
    mine = engine_cases(engine)
    fires = {c.alert for c in mine if not c.healthy}
    quiet = {c.alert for c in mine if c.healthy}
    assert not names - fires, f"rules without a case where they fire: {names - fires}"
    assert not names - quiet, f"rules without a healthy case: {names - quiet}"
    assert {c.alert for c in mine} <= names, "cases of rules that are not rendered"
    for case in mine:
        for expected in case.fires:
            assert expected.labels["severity"] == rules(engine)[case.alert]["labels"][
                "severity"], case.name
            assert {"instance", "cluster"} & set(expected.labels), case.name


def test_patroni_s_rules_only_under_patroni() -> None:
    patroni_only = set(rules("patroni")) - set(rules("manual"))
    assert patroni_only == {"PatroniNoLeader", "EtcdMemberDown", "EtcdNoLeader"}
    assert {c.alert for c in CASES if c.patroni} == patroni_only
    assert set(rules("manual")) == set(rules(None))  # ha_engine unset: the manual engine


# ------------------------------------------------------------ what each rule carries

def _commands() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no commands")


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions
            if isinstance(action, argparse._SubParsersAction) for name in action.choices}


def _takes_a_node(parser: argparse.ArgumentParser) -> bool:
    return any(action.dest in ("node", "nodes") and not action.option_strings
               for action in parser._actions)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_rule_says_how_bad_what_and_where_and_what_helps(engine: str) -> None:
    commands = _commands()
    for name, rule in rules(engine).items():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        summary, runbook = rule["annotations"]["summary"], rule["annotations"]["runbook"]
        assert "$value" in summary, f"{name}: its summary does not say how much"
        assert re.search(r"\$labels\.(instance|cluster)", summary), \
            f"{name}: its summary does not say where"
        used = re.findall(r"python -m pgcluster ([\w-]+)(?: (\{\{|[\w-]+))?", runbook)
        assert used, f"{name}: its runbook names no pgcluster command"
        for command, argument in used:
            assert command in commands, f"{name}: no command `pgcluster {command}`"
            subcommands = _subcommands(commands[command])
            if subcommands:
                assert argument in subcommands, f"{name}: `pgcluster {command} {argument}`"
            if _takes_a_node(commands[command]):
                assert argument in ("NODE", "{{"), f"{name}: `pgcluster {command}` needs a node"


def test_every_for_comes_from_group_data() -> None:
    data = {**ALL, "alert_for": "5min", "alert_split_brain_for": "45s",
            "monitor_scrape_interval": 15}
    found = {r["alert"]: r["for"] for g in yaml.safe_load(render_alerts(data))["groups"]
             for r in g["rules"]}
    assert found.pop("MoreThanOnePrimary") == "45s"
    assert found.pop("NewestFullBackupFailed") == "0s"  # a registry row: nothing to wait out
    assert found.pop("RestoreDrillFailed") == "0s"  # the same
    assert set(found.values()) == {"300s"}


def test_a_split_brain_waits_two_scrapes_whatever_its_setting() -> None:
    # The old primary's last sample lasts until its next scrape: a switchover must not
    # look like a split brain, so never less than two scrape intervals.
    for scrape, setting, waits in ((15, "30s", 30), (15, 0, 30), (60, "30s", 120),
                                   (15, "2min", 120)):
        ctx = alert_context({**ALL, "monitor_scrape_interval": scrape,
                             "alert_split_brain_for": setting})
        assert ctx["for_split_brain"] == waits, (scrape, setting)


def test_the_bounds_reach_the_rules() -> None:
    data = {**ALL, "alert_replication_lag_bytes": 1000, "alert_replication_lag": "2min",
            "alert_slot_retained_bytes": 2000, "alert_archive_wait": "15min",
            "alert_full_backup_age": "2d", "alert_connections_ratio": 0.5,
            "alert_certificate_days": 7, "alert_free_space_ratio": 0.25,
            "drill_max_age": "3d"}
    exprs = {r["alert"]: r["expr"] for g in yaml.safe_load(render_alerts(data))["groups"]
             for r in g["rules"]}
    for alert, bound in (("ReplicationLagBytes", "> 1000"), ("ReplicationLagSeconds", "> 120"),
                         ("SlotRetainingWal", "> 2000"), ("LastArchiveTooOld", "> 900 "),
                         ("NewestFullBackupTooOld", "> 172800 "),
                         ("BackupRepositoryBehind", "> 172800 "),
                         ("RestoreDrillTooOld", "> 259200 "),
                         ("ConnectionsNearMax", "> 0.5"), ("CertificateExpiring", "< 7"),
                         ("BackupRootFilling", "< 0.25"), ("DataDirectoryFilling", "< 0.25")):
        assert bound in exprs[alert], (alert, exprs[alert])


def test_no_drill_age_rule_when_any_age_will_do() -> None:
    # drill_max_age = None: status judges no drill's age, nor do the rules; a failed
    # drill is still one. With a bound, a drill never run (1e9) is left out by the rule.
    for engine in ENGINES:
        names = {r["alert"] for g in yaml.safe_load(
            render_alerts({**ALL, "ha_engine": engine, "drill_max_age": None}))["groups"]
            for r in g["rules"]}
        assert "RestoreDrillTooOld" not in names and "RestoreDrillFailed" in names, engine
    assert alert_context({**ALL, "drill_max_age": None})["drill_max_age"] is None
    without = {k: v for k, v in ALL.items() if k != "drill_max_age"}
    assert alert_context(without)["drill_max_age"] is None
    assert alert_context({**ALL, "drill_max_age": "2h"})["drill_max_age"] == 7200
    assert "< 1e9 and" in rules("manual")["RestoreDrillTooOld"]["expr"]


def test_the_filesystems_watched_are_backup_root_s_and_the_data_directory_s() -> None:
    ctx = alert_context({**ALL, "backup_root": "/srv/pg-backups",
                         "postgresql_cluster": "prod"})
    assert ctx["backup_root_free"] == free_fraction("/srv/pg-backups")
    assert ctx["data_dir_free"] == free_fraction("/var/lib/postgresql/15/prod")
    expr = free_fraction("/srv/pg-backups")
    # Each candidate mount point, deepest first; the shallower ones only where no deeper
    # one is mounted (a regex of the deeper ones, its metacharacters escaped).
    assert expr.index('{mountpoint="/srv/pg-backups"}') < expr.index('{mountpoint="/srv"}') \
        < expr.index('{mountpoint="/"}')
    assert 'unless on(cluster, instance) node_filesystem_size_bytes{mountpoint=~"/srv/pg\\\\-' \
        'backups|/srv"}' in expr
