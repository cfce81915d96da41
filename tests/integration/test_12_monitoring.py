"""Metrics and alerts on the shared test lab (lab/test.toml: the monitor container
pgtest-monitor publishes Prometheus on 127.0.0.1:29090 and Alertmanager on 29093).

Real parts only: Debian's postgres_exporter and node_exporter on every node, Prometheus
scraping them over TLS with basic auth, the alert rules of templates/monitoring, and
Alertmanager sending to a webhook this test serves on the lab network's gateway. The
drills break the cluster for real (a replica's server stopped, the archive made
unwritable) and wait for the alert to fire in Prometheus and reach the webhook, then
repair it and wait for both to resolve. Each test leaves the lab healthy.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pgcluster.lab.definition import Lab, LabNode, load_lab
from pgcluster.model.settings import duration_seconds
from tests.conftest import REPO, changed, run_pyinfra
from tests.integration.conftest import (
    LAB_ENV,
    connect,
    lab_ca,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
)
from tests.integration.prometheus import (
    ALERTMANAGER,
    PROMETHEUS,
    alert_for,
    api,
    firing,
    firing_now,
    healthy_targets,
    instant,
)
from tests.unit.helpers import ALL

WEBHOOK_PORT = 29099  # lab/test.toml's alertmanager_webhook_urls, on the gateway
# The test lab's scrape interval (lab/test.toml's [data], over group_data's).
SCRAPE = duration_seconds(dict(load_lab("test").data).get("monitor_scrape_interval",
                                                       ALL["monitor_scrape_interval"]))


class Webhook:
    """Alertmanager's webhook receiver: every notification it posts, as JSON."""

    def __init__(self, address: str, port: int) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, alert: str, instance: str) -> list[str]:
        return [a["status"] for n in self.received for a in n["alerts"]
                if a["labels"].get("alertname") == alert
                and a["labels"].get("instance") == instance]

    def close(self) -> None:
        self.server.shutdown()


CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--window-size=1400,2000", "--virtual-time-budget=20000",
    # Loopback only: no name resolves, no proxy, none of the browser's own services.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-proxy-server",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run",
    "--no-default-browser-check", "--metrics-recording-only",
]
# Where the console's screenshot goes (git-ignored; docs/images has the committed one).
ARTIFACTS = Path(os.environ.get("PGCLUSTER_TEST_ARTIFACTS", REPO / "test-artifacts"))


def chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's chromium, headless, on a page of the lab (a profile of its own)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run does)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                               url], capture_output=True, text=True, timeout=120)


class ConsolePage(HTMLParser):
    """What the console shows once its scripts ran: each node's row (its cells' text)
    and, per graph, how many lines Rickshaw drew."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.lines: dict[str, int] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._graph: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and "node" in (found.get("class") or "").split():
            self._row = found["data-node"] or ""
            self.rows[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        if self._graph is not None:
            self._depth += 1
            if tag == "path" and "path" in (found.get("class") or "").split():
                self.lines[self._graph] += 1
        elif tag == "div" and "pgcluster-graph-body" in (found.get("class") or "").split():
            self._graph, self._depth = found["id"] or "", 1
            self.lines[self._graph] = 0

    def handle_endtag(self, tag: str) -> None:
        if self._graph is not None:
            self._depth -= 1
            if self._depth == 0:
                self._graph = None
        if tag == "td" and self._row is not None and self._cell is not None:
            self.rows[self._row].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def webhook(lab: Lab) -> Iterator[Webhook]:
    hook = Webhook(lab.gateway, WEBHOOK_PORT)
    yield hook
    hook.close()


def scrape(node: LabNode, port: int, password: str | None) -> int:
    """An exporter's answer to this machine: the HTTP status."""
    context = ssl.create_default_context(cafile=str(lab_ca()))
    request = urllib.request.Request(f"https://{node.address}:{port}/metrics")
    if password is not None:
        token = base64.b64encode(f"prometheus:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def newest_full(lab: Lab) -> tuple[float | None, bool]:
    """The newest usable full backup's age in seconds, and whether the newest full attempt
    failed, from the registry itself (the rules' two questions)."""
    with connect(lab.node("primary"), dbname=ALL["backup_registry_database"]) as conn:
        age = conn.execute("select extract(epoch from now() - max(finished_at)) from "
                           "pgcluster.backups where kind = 'full' and status = 'ok' and "
                           "removed_at is null").fetchone()[0]
        last = conn.execute("select status from pgcluster.backups where kind = 'full' "
                            "order by started_at desc, id desc limit 1").fetchone()
    return (None if age is None else float(age)), (last is not None and last[0] == "failed")


def test_prometheus_scrapes_every_exporter_of_every_node(lab: Lab) -> None:
    names = {n.name for n in lab.nodes}

    def up() -> dict[str, set[str]]:
        return healthy_targets(lab)

    wait_for(lambda: all(up().get(job) == names for job in ("postgres", "node")),
             timeout=3 * SCRAPE + 30, what="every exporter scraped")
    assert up()["prometheus"] == up()["alertmanager"] == {lab.monitor.name}
    roles = instant(lab, "pgcluster_node_in_recovery")
    assert roles == {lab.node("primary").name: 0.0, lab.node("standby").name: 1.0,
                     lab.node("readonly").name: 1.0}
    assert set(instant(lab, "pgcluster_node_wal_receiver_streaming == 1")) == \
        names - {lab.node("primary").name}
    assert instant(lab, "pg_up") == dict.fromkeys(names, 1.0)
    # The backup registry as the exporter reads it, against the registry itself.
    newest, failed = newest_full(lab)
    ages = instant(lab, "pgcluster_backup_newest_full_age_seconds")
    assert set(ages) == names
    for age in ages.values():
        assert age == 1e9 if newest is None else abs(age - newest) < 3 * SCRAPE + 5
    assert instant(lab, "pgcluster_backup_newest_full_failed") == \
        dict.fromkeys(names, float(failed))
    # And the node's certificate's expiry, from node_exporter's textfile.
    expiry = instant(lab, "pgcluster_tls_certificate_expiry_timestamp_seconds")
    assert set(expiry) == names and all(v > time.time() + 86400 for v in expiry.values())


def test_no_alert_fires_on_a_healthy_cluster(lab: Lab) -> None:
    # Healthy includes a full backup whose newest attempt did not fail: a lab built for this
    # module alone has none yet (NewestFullBackupTooOld rightly says so), and the suite's
    # shared lab may come from test_03's failure drills (NewestFullBackupFailed).
    age, failed = newest_full(lab)
    if age is None or failed:
        backup = pgcluster_cli(lab, "backup", "full")
        assert backup.returncode == 0, backup.stdout[-2000:] + backup.stderr[-2000:]
        # Seen by every exporter and Prometheus before "no alert" means anything (a pending
        # NewestFullBackupTooOld is not firing yet).
        wait_for(lambda: (ages := instant(lab, "pgcluster_backup_newest_full_age_seconds"))
                 and all(v < 1e9 for v in ages.values()), timeout=3 * SCRAPE + 10,
                 what="the new backup in every exporter's series")
        wait_for(lambda: instant(lab, 'ALERTS{alertname=~"NewestFullBackup.*"}') == {},
                 timeout=3 * SCRAPE + 10, what="no backup alert pending or firing")

    wait_for(lambda: firing_now(lab) == [], timeout=3 * SCRAPE + 30, interval=2,
             what=f"no alert firing (firing: {firing_now(lab)})")
    groups = api(lab, PROMETHEUS, "/api/v1/rules", type="alert")["data"]["groups"]
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups


def test_the_exporters_answer_only_the_monitors_password(lab: Lab) -> None:
    node = lab.node("standby")
    for port in (9187, 9100):
        assert scrape(node, port, None) == 401
        assert scrape(node, port, "not-the-password") == 401
        assert scrape(node, port, "monitor123") == 200  # the lab's documented default
    # No plain HTTP either.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{node.address}:9187/metrics", timeout=5).read()


def test_the_exporter_role_reads_statistics_and_nothing_else(lab: Lab) -> None:
    primary = lab.node("primary")
    rows = query(primary, "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, "
                          "rolbypassrls, rolpassword is null, array(select b.rolname from "
                          "pg_auth_members m join pg_roles b on b.oid = m.roleid where "
                          "m.member = a.oid) from pg_authid a where rolname = 'monitor'")
    assert rows == [(False, False, False, False, False, True, ["pg_monitor"])]
    with connect(primary, dbname=ALL["backup_registry_database"]) as conn:
        assert conn.execute("select has_table_privilege('monitor', 'pgcluster.backups', "
                            "'SELECT')").fetchone() == (True,)
    assert query(primary, "select has_table_privilege('monitor', 'proyecto.usuarios', "
                          "'SELECT')") == [(False,)]


def test_the_console_page_shows_every_node_with_data_in_a_browser(lab: Lab) -> None:
    url = (f"http://{lab.bind_address}:{lab.published(PROMETHEUS)}"
           "/consoles/pgcluster.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "console.png"
    shot.unlink(missing_ok=True)
    taken = chromium(url, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = chromium(url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = ConsolePage()
    page.feed(dom.stdout)
    # Every node, with its role now, up, and its numbers (not the "-" of a missing series).
    assert set(page.rows) == {n.name for n in lab.nodes}, dom.stdout[:3000]
    for node in lab.nodes:
        name, role, state, streams, lag, _, connections, waiting, backup = page.rows[node.name]
        assert name == node.name
        assert (role, state) == ("primary" if node.role == "primary" else "replica", "up")
        assert streams == ("-" if node.role == "primary" else "yes")
        assert lag.endswith("B") and " of " in connections and waiting.endswith("segments")
        assert backup.endswith(" old"), page.rows[node.name]
    # Each graph drew a line per node that has the series (the slots' on the primary).
    assert page.lines == {"lag": 3, "tps": 3, "connections": 3, "archiving": 3,
                          "backups": 3}, page.lines


def test_every_grafana_panel_query_returns_data(lab: Lab) -> None:
    dashboard = json.loads((REPO / "templates/monitoring/grafana/pgcluster.json").read_text())
    # Grafana's variables as a user's Grafana gives them (the dashboard's cluster picker
    # lists label_values(pg_up, cluster)).
    clusters = {r["metric"]["cluster"] for r in api(
        lab, PROMETHEUS, "/api/v1/query", query="pg_up")["data"]["result"]}
    assert len(clusters) == 1, clusters
    values = {"$cluster": clusters.pop(), "$__rate_interval": "1m"}
    empty = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in values.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: a variable left in {expr}"
            answer = api(lab, PROMETHEUS, "/api/v1/query", query=expr)
            assert answer["status"] == "success", (panel["title"], answer)
            if not answer["data"]["result"]:
                empty.append(f"{panel['title']}: {expr}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)


def test_a_stopped_replica_fires_and_resolves_its_alert(lab: Lab, webhook: Webhook) -> None:
    replica = lab.node("readonly")
    host = node_host(replica)
    bound = alert_for(lab, "PostgresDown") + 2 * SCRAPE + SCRAPE  # + one evaluation
    stopped = time.monotonic()
    host.check_output("systemctl stop postgresql@15-main")
    try:
        wait_for(lambda: replica.name in firing(lab, "PostgresDown"), timeout=bound + 30,
                 interval=1, what="PostgresDown firing in Prometheus")
        took = time.monotonic() - stopped
        print(f"PostgresDown fired {took:.0f}s after the stop (for + two scrapes: {bound:.0f}s)")
        assert took <= bound + 5, f"fired after {took:.0f}s, later than for + two scrapes"
        wait_for(lambda: "firing" in webhook.statuses("PostgresDown", replica.name),
                 timeout=60, interval=1, what="Alertmanager's notification at the webhook")
        silenced = api(lab, ALERTMANAGER, "/api/v2/alerts")
        assert any(a["labels"]["alertname"] == "PostgresDown"
                   and a["labels"]["instance"] == replica.name for a in silenced)
    finally:
        host.check_output("systemctl start postgresql@15-main")
    wait_for(lambda: replica.name not in firing(lab, "PostgresDown"), timeout=3 * SCRAPE + 30,
             interval=1, what="PostgresDown resolved in Prometheus")
    wait_for(lambda: "resolved" in webhook.statuses("PostgresDown", replica.name),
             timeout=60, interval=2, what="the resolved notification at the webhook")


def test_broken_archiving_fires_and_resolves_its_alert(lab: Lab, webhook: Webhook) -> None:
    primary = lab.node("primary")
    host = node_host(primary)
    archive = ALL["wal_archive_dir"]
    mode = host.check_output(f"stat -c %a {archive}")
    host.check_output(f"chmod a-w {archive}")
    try:
        host.check_output("runuser -u postgres -- psql -XAtq -c 'select pg_switch_wal()' "
                          "-c 'create temporary table t as select 1' -c 'select pg_switch_wal()'")
        wait_for(lambda: primary.name in firing(lab, "ArchivingFailing"),
                 timeout=alert_for(lab, "ArchivingFailing") + 3 * SCRAPE + 60, interval=2,
                 what="ArchivingFailing firing in Prometheus")
        wait_for(lambda: "firing" in webhook.statuses("ArchivingFailing", primary.name),
                 timeout=60, interval=1, what="Alertmanager's notification at the webhook")
    finally:
        host.check_output(f"chmod {mode} {archive}")
        # After three failures the archiver sleeps a minute; a reload wakes it to retry
        # now (what an operator does after the repair, docs/troubleshooting.md).
        host.check_output("runuser -u postgres -- psql -XAtq -c 'select pg_reload_conf()'")
    # PostgreSQL retries the segment it kept: archiving catches up, nothing was lost.
    wait_for(lambda: query(primary, "select last_failed_time is null or last_archived_time "
                                    "> last_failed_time from pg_stat_archiver")[0][0],
             timeout=90, interval=2, what="the archiver catching up")
    wait_for(lambda: primary.name not in firing(lab, "ArchivingFailing"),
             timeout=3 * SCRAPE + 30, interval=2, what="ArchivingFailing resolved")
    wait_for(lambda: "resolved" in webhook.statuses("ArchivingFailing", primary.name),
             timeout=60, interval=2, what="the resolved notification at the webhook")


def test_a_second_deploy_changes_nothing_with_the_monitor(lab: Lab) -> None:
    result = run_pyinfra("inventory/docker.py", "deploys/cluster.py", env=LAB_ENV,
                         json_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert changed(result) == [], changed(result)
