"""`pgcluster drill`: its command line and the checks made before anything is touched, where
the writer connects (the proxy or libpq's multi-host string), what is asked and refused,
the exit codes, and the drills' flow against fakes (no Docker, no server)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pgcluster.cli import build_parser, main
from pgcluster.commands import drill as command
from pgcluster.control import compare, drill
from pgcluster.control.scratch import ScratchTarget
from pgcluster.control.status import NodeStatus, Report
from pgcluster.errors import ClusterStateError, ConfigError
from pgcluster.lab.definition import load_lab
from pgcluster.model.cluster import Cluster, HostEntry
from pgcluster.model.drill import Verdict
from tests.unit.fakes import Clock
from tests.unit.helpers import entry, three_nodes

LAB = "inventory/docker.py"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["drill", *argv])


# ------------------------------------------------------------------- the command line


def test_drill_parses_every_kind_with_defaults() -> None:
    args = parse("failover")
    assert args.func is command.cmd_drill
    assert (args.kind, args.duration, args.rate, args.report, args.yes, args.verbose) == (
        "failover", 30.0, 50.0, None, False, False)
    args = parse("all", "--duration", "60", "--rate", "100", "--report", "out", "--yes", "-v")
    assert (args.kind, args.duration, args.rate, args.report, args.yes, args.verbose) == (
        "all", 60.0, 100.0, "out", True, True)
    assert command.kinds("all") == ("switchover", "failover", "restore")
    assert command.kinds("restore") == ("restore",)


@pytest.mark.parametrize("argv,message", [
    (["sideways"], "invalid choice: 'sideways'"),
    (["failover", "--duration", "soon"], "'soon' is not a number of seconds (e.g. 30)"),
    (["failover", "--rate", "fast"], "'fast' is not a number of commits per second"),
    (["failover", "--duration", "nan"], "'nan' is not a number of seconds"),
])
def test_bad_values_are_refused_by_argparse(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def _options(tmp_path: Path, *argv: str, inventory: str = LAB) -> drill.Options:
    args = build_parser().parse_args(["--inventory", inventory, "drill", *argv])
    if args.report is None:
        args.report = str(tmp_path / "reports")
    return command.options(args)


@pytest.mark.parametrize("argv,message", [
    (["failover", "--duration", "5"], "--duration 5 is too short for a failover drill"),
    (["switchover", "--duration", "9.5"], "use at least 10 seconds (e.g. --duration 30)"),
    (["all", "--duration", "7200"], "--duration 7200 is more than an hour"),
    (["failover", "--rate", "0"], "--rate 0 must be more than 0 commits per second"),
    (["failover", "--rate", "-3"], "--rate -3 must be more than 0"),
    (["switchover", "--rate", "500"], "--rate 500 is more than 200 commits per second"),
])
def test_durations_and_rates_out_of_range_are_refused(tmp_path: Path, argv: list[str],
                                                      message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _options(tmp_path, *argv)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _options(tmp_path, "failover", "--duration", "1", "--rate", "1000")
    assert len(caught.value.problems) == 2


def test_a_restore_drill_takes_any_duration(tmp_path: Path) -> None:
    options = _options(tmp_path, "restore", "--duration", "1")
    assert options.duration == 1 and options.report_dir == tmp_path / "reports"


def test_the_report_directory_must_be_usable(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        _options(tmp_path, "failover", "--report", str(a_file))
    with pytest.raises(ConfigError, match="cannot be created"):
        _options(tmp_path, "failover", "--report", str(a_file / "below"))
    deep = tmp_path / "new" / "deeper"
    assert _options(tmp_path, "failover", "--report", str(deep)).report_dir == deep
    assert not deep.exists()  # checked, not made: nothing is touched before the drill


def test_the_default_report_directory_is_named_after_the_time(tmp_path: Path) -> None:
    args = parse("failover")
    now = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert command.options(args, now).report_dir == Path("drills/20261207T140000Z")


def test_a_restore_drill_off_the_lab_is_refused_before_anything(capsys) -> None:
    for kind in ("restore", "all"):
        assert main(["--inventory", "inventory/production.py", "drill", kind, "--yes"]) == 2
        err = capsys.readouterr().err
        assert ("a restore drill: inventory/production.py has no `drill` host and is not "
                "the Docker lab, so there is nowhere outside the cluster to restore onto: add "
                "a `drill` group with one host to it") in err


# -------------------------------------------------------- where the writer connects


def _lab_cluster(lab_name: str) -> tuple[Cluster, dict[str, Any]]:
    lab = load_lab(lab_name)
    entries = [entry(f"@lab/{n.name}", n.role, **lab.host_data(n)) for n in lab.nodes]
    if lab.proxy:
        entries.append(HostEntry(f"@lab/{lab.proxy.name}", ("proxy",),
                                 lab.proxy_host_data(lab.proxy)))
    return Cluster.from_entries(entries), dict(entries[0].data)


def test_with_a_proxy_the_writer_is_the_application_on_the_read_write_port() -> None:
    lab = load_lab("seed")
    cluster, data = _lab_cluster("seed")
    endpoint = drill.writer_endpoint(cluster, data, lab, "/ca.crt")
    assert endpoint.conninfo.startswith(
        "host=127.0.0.1 port=5000 dbname=proyecto_db user=app sslmode=verify-full "
        "sslrootcert=/ca.crt channel_binding=prefer connect_timeout=2 keepalives=1")
    assert endpoint.password_key == "app_password"
    assert "postgresql-proxy" in endpoint.description and "as app" in endpoint.description


def test_a_real_proxy_is_reached_at_its_own_address() -> None:
    entries = [*three_nodes(), HostEntry("px", ("proxy",), {"node_address": "10.0.2.1"})]
    cluster = Cluster.from_entries(entries)
    endpoint = drill.writer_endpoint(cluster, entries[0].data, None, "/ca.crt")
    assert "host=10.0.2.1 port=5000 " in endpoint.conninfo


def test_without_a_proxy_the_writer_uses_every_node_as_the_admin() -> None:
    lab = load_lab("test")
    cluster, data = _lab_cluster("test")
    endpoint = drill.writer_endpoint(cluster, data, lab, "/ca.crt")
    assert endpoint.conninfo.startswith(
        "host=127.0.0.1,127.0.0.1,127.0.0.1 port=25432,25433,25434 dbname=proyecto_db "
        "user=admin target_session_attrs=read-write sslmode=verify-full sslrootcert=/ca.crt "
        "channel_binding=require")
    assert endpoint.password_key == "admin_password"
    real = three_nodes()
    endpoint = drill.writer_endpoint(Cluster.from_entries(real), real[0].data, None, "/c")
    assert "host=10.0.0.1,10.0.0.2,10.0.0.3 port=5432,5432,5432 " in endpoint.conninfo


def test_nodes_are_reached_at_the_published_port_in_the_lab_else_at_their_own() -> None:
    lab = load_lab("test")
    cluster, _ = _lab_cluster("test")
    assert drill.reach(cluster.find("primary"), lab) == ("127.0.0.1", 25432)
    assert drill.reach(lab.scratch, lab) == ("127.0.0.1", lab.scratch.published_port)
    real = Cluster.from_entries(three_nodes(postgresql_port=5433))
    assert drill.reach(real.find("standby"), None) == ("10.0.0.2", 5433)


def test_passwords_and_the_ca_come_from_the_inventory_data(tmp_path: Path) -> None:
    nodes = three_nodes(app_password="it's secret", tls_dir=str(tmp_path / "tls"))
    cluster = Cluster.from_entries([*nodes, HostEntry("px", ("proxy",),
                                                      {"node_address": "10.0.2.1"})])
    reach = drill.Reach("inventory/x.py", cluster, nodes[0].data)
    assert reach.ca_file == tmp_path / "tls" / "ca.crt"
    assert reach.writer_dsn().endswith(r"password='it\'s secret'")
    admin = reach.admin(cluster.find("db2"), "proyecto_db")
    assert admin.startswith("host=10.0.0.2 port=5432 user=admin password=s3cret-admin "
                            "dbname=proyecto_db sslmode=verify-full")
    assert "channel_binding=require" in admin
    own_ca = drill.Reach("x", cluster, {**nodes[0].data, "tls_ca_file": "/etc/ca.pem"})
    assert own_ca.ca_file == Path("/etc/ca.pem")
    assert reach.goals == drill.Goals(30.0, 0)


# ----------------------------------------------------------- planning, asking, refusing


def node(name: str, role: str, inventory_role: str | None = None, lsn: str | None = None
         ) -> NodeStatus:
    return NodeStatus(name=name, inventory_role=inventory_role or role.lower(),
                      address="10.0.0.1", port=5432, published_port=None, reachable=True,
                      running=role not in ("DOWN", "UNREACHABLE"), role=role, replay_lsn=lsn)


def status(roles: dict[str, str] | None = None, streaming: tuple[str, ...] = ("db2", "db3"),
           engine: str = "manual", last_backup: dict | None = None,
           lsns: dict[str, str] | None = None) -> Report:
    roles = roles or {"db1": "PRIMARY", "db2": "STANDBY", "db3": "READONLY"}
    nodes = [node(name, role, lsn=(lsns or {}).get(name)) for name, role in roles.items()]
    primaries = [n.name for n in nodes if n.role == "PRIMARY"]
    return Report(healthy=True, issues=[], nodes=nodes,
                  primary=primaries[0] if len(primaries) == 1 else None,
                  replication=[{"application_name": n, "state": "streaming"}
                               for n in streaming],
                  archiver=None, last_backup=last_backup, collected_at=0.0, engine=engine)


def test_a_drill_needs_one_primary_and_every_replica_streaming() -> None:
    assert drill.not_ready(status()) == []
    assert drill.not_ready(status(streaming=("db2",))) == [
        "db3 does not stream from db1 (readonly)"]
    assert drill.not_ready(status({"db1": "PRIMARY", "db2": "PRIMARY", "db3": "READONLY"}))[0] \
        == "2 primaries (db1, db2): a drill needs exactly one"
    no_standby = status({"db1": "PRIMARY", "db3": "READONLY"}, streaming=("db3",))
    assert drill.not_ready(no_standby) == [
        "no standby to promote (a node of role standby, running in recovery)"]
    with pytest.raises(ClusterStateError, match="refusing the failover drill: db3 does not "
                                                "stream from db1"):
        drill.plan(["failover"], status(streaming=("db2",)), None)
    # A restore drill only needs a primary.
    assert drill.plan(["restore"], status(streaming=()), "lab-scratch")[0].scratch == \
        "lab-scratch"


def test_the_switchover_target_is_the_most_advanced_standby() -> None:
    report = status({"db1": "PRIMARY", "db2": "STANDBY", "db4": "STANDBY", "db3": "READONLY"},
                    streaming=("db2", "db3", "db4"), lsns={"db2": "0/5000000",
                                                           "db4": "0/6000000", "db3": "1/0"})
    assert drill.switchover_target(report) == "db4"
    plans = drill.plan(drill.ALL, report, "s")
    assert [(p.kind, p.primary, p.target) for p in plans] == [
        ("switchover", "db1", "db4"), ("failover", "db1", None), ("restore", "db1", None)]


def test_the_questions_name_the_inventory_and_the_nodes() -> None:
    failover, switchover, restore = drill.plan(drill.ALL, status(), "pgtest-scratch")
    assert failover.kind == "switchover"
    failover, switchover = switchover, failover
    assert failover.question("inventory/docker.py") == (
        "Stop the primary db1 of inventory/docker.py to drill a failover?")
    assert switchover.question("inventory/docker.py") == (
        "Switch the primary of inventory/docker.py over from db1 to db2 and back to drill a "
        "switchover?")
    assert "onto pgtest-scratch (outside the cluster)" in restore.question("inventory/docker.py")


@pytest.fixture()
def cluster_status(monkeypatch) -> list[str]:
    """The command's status round answered by a fake; what else it reached is recorded."""
    touched: list[str] = []
    monkeypatch.setattr(command, "report", lambda inventory: (status(), []))
    monkeypatch.setattr(drill, "load_reach",
                        lambda inventory, scratch=None: touched.append("reach"))
    monkeypatch.setattr(drill.Drills, "run", lambda self, plans: touched.append("run") or [])
    return touched


def test_without_a_terminal_and_without_yes_nothing_is_drilled(monkeypatch, capsys,
                                                               cluster_status) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert main(["--inventory", "inventory/x.py", "drill", "failover",
                 "--report", "/tmp/pgcluster-unit-drills"]) == 2
    err = capsys.readouterr().err
    assert ("Stop the primary db1 of inventory/x.py to drill a failover? -> refusing without "
            "confirmation: pass --yes") in err
    assert cluster_status == []  # no writer, no session, nothing stopped


def test_a_no_at_the_terminal_drills_nothing(monkeypatch, cluster_status) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda question: "n")
    assert main(["--inventory", "inventory/x.py", "drill", "switchover",
                 "--report", "/tmp/pgcluster-unit-drills"]) == 2
    assert cluster_status == []


def test_a_cluster_that_is_not_ready_is_refused_with_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setattr(command, "report", lambda inventory: (status(streaming=()), []))
    assert main(["--inventory", "inventory/x.py", "drill", "failover", "--yes",
                 "--report", "/tmp/pgcluster-unit-drills"]) == 2
    assert "db2 does not stream from db1" in capsys.readouterr().err


# ---------------------------------------------------------------------- exit codes


def test_the_exit_code_follows_the_verdicts() -> None:
    ok, bad = drill.Outcome("failover", True, ""), drill.Outcome("restore", False, "")
    assert drill.exit_code([ok, ok]) == 0
    assert drill.exit_code([ok, bad]) == 1
    assert drill.exit_code([]) == 1  # nothing judged is no pass


@pytest.mark.parametrize("passed,code", [((True, True), 0), ((True, False), 1)])
def test_the_command_exits_0_only_when_every_drill_passed(monkeypatch, tmp_path: Path,
                                                          passed, code) -> None:
    monkeypatch.setattr(command, "report", lambda inventory: (status(), []))
    monkeypatch.setattr(drill, "load_reach", lambda inventory, scratch=None: None)
    outcomes = [drill.Outcome("switchover", p, "") for p in passed]
    monkeypatch.setattr(drill.Drills, "run", lambda self, plans: outcomes)
    assert main(["--inventory", "inventory/x.py", "drill", "switchover", "--yes",
                 "--report", str(tmp_path)]) == code


def test_a_verdict_takes_the_drill_s_own_findings() -> None:
    assert drill.with_reasons(Verdict(True, []), []) == Verdict(True, [])
    assert drill.with_reasons(Verdict(True, []), ["x"]) == Verdict(False, ["x"])
    assert drill.with_reasons(Verdict(False, ["a"]), ["b"]) == Verdict(False, ["a", "b"])


# ---------------------------------------------------------------------- pure helpers


def test_small_helpers() -> None:
    assert drill.lead_in(10) == 2.5 and drill.lead_in(300) == drill.LEAD_IN
    assert drill.restore_point_name(datetime(2026, 12, 7, 14, 0, 1, tzinfo=UTC)) == (
        "drill_20261207T140001Z")
    assert drill.recovered_when(["a", "b", "c"], "b", "a") == {"c"}  # failover: old is down
    assert drill.recovered_when(["a", "b", "c"], "b", None) == {"a", "c"}  # switchover
    assert drill.service_unit({"postgresql_version": 15, "postgresql_cluster": "main"},
                              "manual") == "postgresql@15-main"
    assert drill.service_unit({}, "patroni") == "patroni"
    assert drill.CommandRun("pgcluster x", 0, 1.0).problem() is None
    assert "failed (exit 3)" in drill.CommandRun("pgcluster x", 3, 1.0).problem()
    assert "--break-lock" in drill.CommandRun("pgcluster x", None, 1.0).problem()


def _row_diff(*rows: compare.DifferingRow, missing: int = 0, changed: int = 0,
              truncated: bool = False) -> compare.RowDiff:
    extra = sum(r.kind == "extra" for r in rows)
    return compare.RowDiff("postgres", "pgcluster.backups", ("id",), missing, extra, changed,
                           rows, truncated)


def test_only_the_restore_s_own_registry_row_is_an_expected_difference() -> None:
    mine = compare.DifferingRow("extra", "7", None, "(7,restore,...)")
    other = compare.DifferingRow("extra", "8", None, "(8,full,...)")
    assert drill.registry_rows_explained(_row_diff(mine), {"7"})
    assert not drill.registry_rows_explained(_row_diff(mine, other), {"7"})
    assert not drill.registry_rows_explained(_row_diff(mine, missing=1), {"7"})
    assert not drill.registry_rows_explained(_row_diff(mine, truncated=True), {"7"})
    assert not drill.registry_rows_explained(_row_diff(), set())


def test_a_differing_table_is_recorded_with_fingerprints_and_rows() -> None:
    difference = compare.TableDifference("proyecto_db", "proyecto.usuarios",
                                         compare.TableFingerprint(5, "10"),
                                         compare.TableFingerprint(4, "9"))
    rows = compare.RowDiff("proyecto_db", "proyecto.usuarios", ("id",), 1, 0, 0,
                           (compare.DifferingRow("missing", "3", "(3,x)", None),))
    record = drill.difference_record(difference, rows)
    assert record["expected"] == {"rows": 5, "checksum": "10"}
    assert record["rows"]["shown"][0] == {"kind": "missing", "key": "3", "expected": "(3,x)",
                                          "actual": None, "copies": 1}
    json.dumps(record)  # goes into the JSON report as it is
    assert drill.restore_reasons([record]) == [
        "proyecto_db: proyecto.usuarios: 5 rows expected, 4 restored (1 missing, 0 extra, "
        "0 changed rows; keys 3)"]


# --------------------------------------------------------------- the flow, with fakes


class Lab:
    """The cluster as the fakes see it: who is primary since when, who streams from whom."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.history: list[tuple[float, str | None]] = [(0.0, "db1")]
        self.streams: dict[str, set[str]] = {"db1": {"db2", "db3"}}
        self.calls: list[str] = []
        self.last_backup: dict | None = None

    @property
    def primary(self) -> str | None:
        return self.history[-1][1]

    def promote(self, name: str | None) -> None:
        self.history.append((self.clock.now, name))

    def primary_at(self, moment: float) -> str | None:
        return [who for since, who in self.history if since <= moment][-1]


class FakeWriter:
    """Acknowledges a commit every 0.1 s while there is a primary."""

    def __init__(self, lab: Lab) -> None:
        self.lab, self.dsn, self.failures = lab, "dsn", 0
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self, prepare: bool = True) -> FakeWriter:
        assert prepare is False
        self.started = self.lab.clock.now
        return self

    def stop(self) -> None:
        self.stopped = self.lab.clock.now

    @property
    def acknowledged(self) -> list[tuple[int, float, str]]:
        assert self.started is not None
        end, acks, moment, n = self.stopped or self.lab.clock.now, [], self.started, 0
        while moment <= end:
            n += 1
            if self.lab.primary_at(moment) is not None:
                acks.append((n, moment, "5000"))
            moment += 0.1
        return acks


class FakeProbe:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def is_primary(self, name: str) -> bool:
        return self.lab.primary == name

    def streaming(self, name: str) -> set[str] | None:
        return set(self.lab.streams.get(name, set()))


@pytest.fixture()
def fakes(monkeypatch, tmp_path: Path):
    clock = Clock()
    lab = Lab(clock)
    monkeypatch.setattr(drill, "time", clock)

    class Now:  # the Background thread, run at once (the fakes need no concurrency)
        def __init__(self, action):
            self.problem, self.done = action(), True

        def join(self, timeout: float) -> bool:
            return True

    monkeypatch.setattr(drill, "Background", Now)

    def container(action: str, name: str) -> None:
        lab.calls.append(f"docker {action} {name}")
        clock.sleep(2)
        if action == "stop":
            lab.streams.pop(name, None)
            lab.promote(None)

    def command(inventory: str, *argv: str, timeout: float, verbose: bool) -> drill.CommandRun:
        lab.calls.append(" ".join(argv))
        clock.sleep(3)
        if argv[0] in ("failover", "switchover"):
            new = "db2" if argv[0] == "failover" else argv[2]
            old = lab.primary or "db1"
            lab.promote(new)
            lab.streams[new] = {"db3"} | ({old} if argv[0] == "switchover" else set())
            lab.streams.pop(old, None)
        if argv[0] == "rejoin":
            lab.streams[lab.primary].add(argv[1])
        return drill.CommandRun("pgcluster " + " ".join(argv), 0, 3.0)

    monkeypatch.setattr(drill, "container", container)
    nodes = three_nodes()
    reach = drill.Reach(LAB, Cluster.from_entries(nodes), nodes[0].data,
                        {"db1": "c-db1", "db2": "c-db2", "db3": "c-db3"})
    writers: list[FakeWriter] = []

    def writer(self, primary: str) -> FakeWriter:
        writers.append(FakeWriter(lab))
        return writers[-1]

    monkeypatch.setattr(drill.Drills, "writer", writer)
    monkeypatch.setattr(drill.Drills, "present",
                        lambda self, dsn: {i for i, _, _ in writers[-1].acknowledged})

    def current() -> Report:
        roles = {n: ("PRIMARY" if n == lab.primary else "READONLY" if n == "db3" else "STANDBY")
                 for n in ("db1", "db2", "db3")}
        return status(roles, streaming=tuple(lab.streams.get(lab.primary or "", ())),
                      last_backup=lab.last_backup)

    runner = drill.Drills(reach, drill.Options(duration=12, rate=10,
                                               report_dir=tmp_path / "report"),
                          status=current, say=lambda text: None, probe=FakeProbe(lab),
                          command=command)
    return SimpleNamespace(lab=lab, runner=runner, clock=clock, dir=tmp_path / "report")


def test_a_failover_drill_stops_the_primary_fails_over_rejoins_and_reports(fakes) -> None:
    outcomes = fakes.runner.run(drill.plan(["failover"], status(), None))
    assert fakes.lab.calls == ["docker stop c-db1", "failover --yes", "rejoin db1 --yes"]
    assert [o.passed for o in outcomes] == [True], outcomes[0].summary
    data = json.loads((fakes.dir / "failover.json").read_text())
    assert data["passed"] is True and data["figures"]["lost"] == []
    events = {name: e["since_fault"] for name, e in data["events"].items()}
    assert events["promoted"] == pytest.approx(5.0)  # docker stop 2 s + the failover 3 s
    assert events["recovered"] == pytest.approx(5.0)
    assert events["end"] >= 12 - drill.lead_in(12)  # the writer ran its --duration
    assert "rejoined" in events
    assert data["figures"]["first_write_after_fault"] == pytest.approx(5.0, abs=0.11)
    assert sorted(p.name for p in outcomes[0].paths) == [
        "failover.json", "failover.md", "failover.png"]


def test_a_failover_drill_under_patroni_lets_patroni_promote(fakes, monkeypatch) -> None:
    def stop(self, name: str, engine: str) -> None:
        fakes.lab.calls.append(f"stop {name} ({engine})")
        fakes.clock.sleep(1)
        fakes.lab.promote("db2")  # Patroni's doing
        fakes.lab.streams = {"db2": {"db3"}}

    def start(self, name: str, engine: str) -> None:
        fakes.lab.calls.append(f"start {name} ({engine})")
        fakes.lab.streams["db2"].add(name)

    monkeypatch.setattr(drill.Drills, "stop", stop)
    monkeypatch.setattr(drill.Drills, "start", start)
    outcomes = fakes.runner.run(drill.plan(["failover"], status(engine="patroni"), None))
    assert fakes.lab.calls == ["stop db1 (patroni)", "start db1 (patroni)"]
    assert outcomes[0].passed, outcomes[0].summary


def test_a_failover_that_misses_its_goal_fails_with_the_reason(fakes, monkeypatch) -> None:
    monkeypatch.setattr(drill.Reach, "goals", property(lambda self: drill.Goals(1, 0)))
    outcomes = fakes.runner.run(drill.plan(["failover"], status(), None))
    assert not outcomes[0].passed
    assert "goal 1 s (drill_max_rto_seconds)" in outcomes[0].summary
    assert drill.exit_code(outcomes) == 1


def test_a_failover_nobody_promotes_is_bounded_and_puts_the_primary_back(fakes,
                                                                        monkeypatch) -> None:
    def refused(inventory: str, *argv: str, timeout: float, verbose: bool) -> drill.CommandRun:
        fakes.lab.calls.append(" ".join(argv))
        if argv[0] == "start":
            fakes.lab.promote("db1")
            fakes.lab.streams["db1"] = {"db2", "db3"}
        return drill.CommandRun("pgcluster " + " ".join(argv), 0 if argv[0] == "start" else 1,
                                1.0)

    fakes.runner._command = refused
    outcomes = fakes.runner.run(drill.plan(["failover"], status(), None))
    assert fakes.lab.calls == ["docker stop c-db1", "failover --yes", "start db1"]
    assert not outcomes[0].passed
    assert "`pgcluster failover --yes` failed (exit 1)" in outcomes[0].summary
    assert fakes.lab.primary == "db1"


def test_a_failover_that_never_recovers_times_out(fakes, monkeypatch) -> None:
    monkeypatch.setattr(drill, "PROMOTION_WAIT", 5.0)

    def silent(inventory: str, *argv: str, timeout: float, verbose: bool) -> drill.CommandRun:
        fakes.lab.calls.append(" ".join(argv))
        return drill.CommandRun("pgcluster " + " ".join(argv), 0, 1.0)

    fakes.runner._command = silent
    outcomes = fakes.runner.run(drill.plan(["failover"], status(), None))
    assert "no node other than db1 became the primary within 5 s of the fault" in \
        outcomes[0].summary
    assert "db1 is not the primary again" in outcomes[0].summary  # and it says so


def test_a_switchover_drill_goes_there_and_back(fakes) -> None:
    outcomes = fakes.runner.run(drill.plan(["switchover"], status(), None))
    assert fakes.lab.calls == ["switchover --to db2 --yes", "switchover --to db1 --yes"]
    assert [o.passed for o in outcomes] == [True, True], [o.summary for o in outcomes]
    assert outcomes[1].summary.startswith("Back to db1:")
    assert (fakes.dir / "switchover.json").is_file()
    assert (fakes.dir / "switchover-back" / "switchover.json").is_file()
    assert fakes.lab.primary == "db1"


def test_a_writer_that_commits_nothing_stops_the_drill_before_the_fault(fakes,
                                                                       monkeypatch) -> None:
    monkeypatch.setattr(FakeWriter, "acknowledged", property(lambda self: []))
    with pytest.raises(ClusterStateError, match=r"committed nothing .* nothing was stopped"):
        fakes.runner.run(drill.plan(["failover"], status(), None))
    assert fakes.lab.calls == []


def test_in_drill_all_a_later_drill_that_finds_the_cluster_unready_fails_alone(
        fakes, monkeypatch) -> None:
    plans = drill.plan(["switchover", "failover"], status(), None)
    real = fakes.runner.status
    # the status between the switchover's legs, then before the failover
    calls = iter([real, lambda: status(streaming=("db2",))])
    fakes.runner.status = lambda: next(calls)()
    outcomes = fakes.runner.run(plans)
    assert [o.passed for o in outcomes] == [True, True, False]
    assert outcomes[2].summary == ("Failover drill: NOT RUN: db3 does not stream from db1 "
                                   "(readonly)")


def _restore_fakes(monkeypatch, fakes, expected, actual, rows=None, restore_ids=()):
    lab = load_lab("test")
    fakes.runner.reach = drill.Reach(LAB, fakes.runner.reach.cluster, fakes.runner.reach.data,
                                     {}, lab, ScratchTarget(lab.scratch.name, lab.scratch,
                                                            "inventory/scratch.py"))
    monkeypatch.setattr(compare, "fingerprint_at_restore_point",
                        lambda connect, name: ("0/5000060", expected))
    monkeypatch.setattr(compare, "fingerprint", lambda connect: actual)
    monkeypatch.setattr(compare, "differing_rows", lambda *args: rows)
    monkeypatch.setattr(drill, "archive_current_segment", lambda connect, timeout: None)
    monkeypatch.setattr(drill, "restore_ids", lambda dsn: set(restore_ids))


FINGERPRINTS = {"postgres": {"pgcluster.backups": compare.TableFingerprint(2, "5")},
                "proyecto_db": {"proyecto.usuarios": compare.TableFingerprint(5, "9")}}


def test_a_restore_drill_that_restores_everything_passes(fakes, monkeypatch) -> None:
    _restore_fakes(monkeypatch, fakes, FINGERPRINTS, FINGERPRINTS)
    outcomes = fakes.runner.run(drill.plan(["restore"], status(last_backup=None),
                                           "pgtest-scratch"))
    assert fakes.lab.calls[0] == "backup full"  # no backup yet: one is taken first
    assert fakes.lab.calls[1].startswith("restore --scratch --name drill_")
    assert fakes.lab.calls[1].endswith(" --yes")
    assert outcomes[0].passed, outcomes[0].summary
    figures = json.loads((fakes.dir / "restore.json").read_text())["figures"]
    assert figures["tables_compared"] == 2 and figures["databases_compared"] == 2
    assert figures["differing_tables"] == [] and figures["fresh_backup"] is True
    assert figures["restore_point"].startswith("drill_")
    assert {"restore_seconds", "compare_seconds"} <= figures.keys()


def test_the_restore_s_own_registry_row_does_not_fail_it(fakes, monkeypatch) -> None:
    restored = {**FINGERPRINTS,
                "postgres": {"pgcluster.backups": compare.TableFingerprint(3, "8")}}
    rows = _row_diff(compare.DifferingRow("extra", "3", None, "(3,restore,...)"))
    _restore_fakes(monkeypatch, fakes, FINGERPRINTS, restored, rows, {"3"})
    fakes.lab.last_backup = {"name": "20261207T020000Z", "age_seconds": 60}
    outcomes = fakes.runner.run(drill.plan(["restore"], status(last_backup={"name": "x"}),
                                           "pgtest-scratch"))
    assert fakes.lab.calls[0].startswith("restore --scratch")  # a backup exists already
    assert outcomes[0].passed, outcomes[0].summary
    figures = json.loads((fakes.dir / "restore.json").read_text())["figures"]
    assert figures["expected_differences"][0].startswith("postgres: pgcluster.backups: 2 rows "
                                                         "expected, 3 restored")


def test_a_restore_that_lost_rows_fails_naming_the_table_and_keys(fakes, monkeypatch) -> None:
    restored = {**FINGERPRINTS,
                "proyecto_db": {"proyecto.usuarios": compare.TableFingerprint(4, "7")}}
    rows = compare.RowDiff("proyecto_db", "proyecto.usuarios", ("id",), 1, 0, 0,
                           (compare.DifferingRow("missing", "5", "(5,Laura)", None),))
    _restore_fakes(monkeypatch, fakes, FINGERPRINTS, restored, rows)
    outcomes = fakes.runner.run(drill.plan(["restore"], status(last_backup={"name": "x"}),
                                           "pgtest-scratch"))
    assert not outcomes[0].passed
    assert "proyecto_db: proyecto.usuarios: 5 rows expected, 4 restored (1 missing" in \
        outcomes[0].summary
    data = json.loads((fakes.dir / "restore.json").read_text())
    assert data["figures"]["differing_tables"][0]["rows"]["shown"][0]["key"] == "5"
    assert "{'database'" not in outcomes[0].summary  # the table's description, not its record
    assert "differing tables: proyecto_db: proyecto.usuarios: 5 rows expected" in \
        outcomes[0].summary


def test_a_restore_drill_needs_somewhere_outside_the_cluster(fakes) -> None:
    with pytest.raises(ClusterStateError, match="nowhere outside the cluster to restore onto"):
        fakes.runner.run([drill.Plan("restore", "db1", scratch=None)])
