#!/usr/bin/env python3
"""The cost of watching: pgbench TPS on the primary with the exporters and Prometheus
running and with them stopped, in the same run, and what each scrape takes per node.

    .venv/bin/python bench/monitoring.py [--rounds 3] [--seconds 30] [--keep]

On its own lab (bench/monitoring-lab.toml: pgmonbench-*, 172.21.0.0/16, Prometheus on
127.0.0.1:37090), built from scratch and destroyed at the end unless --keep. pgbench runs
on this machine against the primary's published port, over TLS as the superuser, with its
default (TPC-B like, writes) script at scale 10, 4 clients and 2 threads.

Each round measures both states, alternating which comes first so that a drift of the
machine (a busy neighbour, the page cache warming) falls on both: "on" with
postgres_exporter and node_exporter on every node and Prometheus and Alertmanager on the
monitor running, "off" with all of them stopped. The figure is the ratio of the medians,
on / off (target: at least 0.97, watching costs at most 3%). The scrape durations are
Prometheus' own scrape_duration_seconds over the "on" periods, per node and exporter, and
the exporters' resident memory is read from /proc after the last round.

Prints the figures and saves them to bench/results/monitoring.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import Bench, save  # noqa: E402
from pgcluster.control import secrets  # noqa: E402
from pgcluster.control.writer import conninfo  # noqa: E402
from pgcluster.lab.definition import Lab, load_lab  # noqa: E402

LAB_FILE = REPO / "bench" / "monitoring-lab.toml"
BENCH = Bench(str(LAB_FILE))
ADMIN = ("admin", secrets.LAB_DEFAULTS["admin_password"])
CA = secrets.inventory_dir("tls", inventory="docker") / "ca.crt"  # every Docker lab's
DATABASE = "bench"
EXPORTERS = ("prometheus-postgres-exporter", "prometheus-node-exporter")
MONITOR = ("prometheus", "prometheus-alertmanager")
TARGET = 0.97


def dsn(lab: Lab, database: str) -> str:
    return conninfo([lab.node("primary").published_port], *ADMIN, sslrootcert=CA,
                    dbname=database)


def systemctl(container: str, verb: str, services: tuple[str, ...]) -> None:
    BENCH.run("docker", "exec", container, "systemctl", verb, *services)


def watching(lab: Lab, on: bool) -> None:
    verb = "start" if on else "stop"
    for node in lab.nodes:
        systemctl(node.name, verb, EXPORTERS)
    assert lab.monitor is not None
    systemctl(lab.monitor.name, verb, MONITOR)


def pgbench(lab: Lab, seconds: int) -> float:
    out = BENCH.run("pgbench", "-n", "-c", "4", "-j", "2", "-T", str(seconds),
                    dsn(lab, DATABASE)).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    if not match:
        sys.exit(f"pgbench printed no tps:\n{out[-2000:]}")
    return float(match.group(1))


def prometheus(lab: Lab, promql: str) -> list[dict[str, Any]]:
    url = (f"http://{lab.bind_address}:{lab.published(9090)}/api/v1/query?"
           + urllib.parse.urlencode({"query": promql}))
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


def scrape_durations(lab: Lab, window: int) -> dict[str, dict[str, float]]:
    """Per node and exporter: the mean and the longest scrape over the last `window` s."""
    found: dict[str, dict[str, float]] = {}
    for stat in ("avg", "max"):
        for r in prometheus(lab, f'{stat}_over_time(scrape_duration_seconds'
                                 f'{{job=~"postgres|node"}}[{window}s])'):
            key = f"{r['metric']['instance']} {r['metric']['job']}"
            found.setdefault(key, {})[f"{stat}_ms"] = round(float(r["value"][1]) * 1000, 1)
    return dict(sorted(found.items()))


def resident_memory(lab: Lab) -> dict[str, float]:
    """Each daemon's resident memory (MiB), from its main process."""
    found = {}
    assert lab.monitor is not None
    hosts = [(n.name, EXPORTERS) for n in lab.nodes] + [(lab.monitor.name, MONITOR)]
    for container, services in hosts:
        for service in services:
            pid = BENCH.run("docker", "exec", container, "systemctl", "show", "-p", "MainPID",
                            "--value", service).stdout.strip()
            rss = BENCH.run("docker", "exec", container, "ps", "-o", "rss=", "-p",
                            pid).stdout.strip()
            found[f"{container} {service}"] = round(int(rss) / 1024, 1)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    lab = load_lab(str(LAB_FILE))
    if lab.monitor is None:
        sys.exit(f"{LAB_FILE} has no [monitor]: nothing to measure")
    tps: dict[str, list[float]] = {"on": [], "off": []}
    try:
        BENCH.destroy()
        BENCH.pyinfra("@local", "deploys/lab.py")
        BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py")
        BENCH.run("psql", dsn(lab, "postgres"), "-qc", f"create database {DATABASE}")
        BENCH.run("pgbench", "-i", "-s", "10", "-q", dsn(lab, DATABASE))
        on_seconds = 0.0
        for round_ in range(args.rounds):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for state in order:
                watching(lab, state == "on")
                time.sleep(5)  # the daemons up (or gone) and a scrape done before pgbench
                started = time.monotonic()
                tps[state].append(pgbench(lab, args.seconds))
                if state == "on":
                    on_seconds += time.monotonic() - started
                print(f"round {round_ + 1} {state:>3}: {tps[state][-1]:.0f} tps", flush=True)
        watching(lab, True)
        time.sleep(20)  # a scrape of every target with the daemons started afresh
        # Prometheus keeps what it scraped while on; the window reaches back over the runs.
        window = int(args.rounds * 2 * (args.seconds + 10) + 40)
        durations = scrape_durations(lab, window)
        memory = resident_memory(lab)
    finally:
        if not args.keep:
            BENCH.destroy()
    on, off = statistics.median(tps["on"]), statistics.median(tps["off"])
    results = {
        "pgbench": {"script": "tpcb-like", "scale": 10, "clients": 4, "threads": 2,
                    "seconds": args.seconds, "rounds": args.rounds},
        "tps_on": tps["on"], "tps_off": tps["off"],
        "median_tps_on": round(on, 1), "median_tps_off": round(off, 1),
        "ratio_on_off": round(on / off, 3), "target_ratio": TARGET,
        "scrape_duration": durations, "resident_memory_mib": memory,
        "watched_seconds": round(on_seconds),
    }
    saved = save(REPO / "bench" / "results" / "monitoring.json", "monitoring", results)
    verdict = "met" if saved["ratio_on_off"] >= TARGET else "MISSED"
    print(f"\npgbench with the exporters and Prometheus / without: {saved['ratio_on_off']}x "
          f"(target >= {TARGET}: {verdict})")
    for target, figures in durations.items():
        print(f"  scrape {target:<40} mean {figures.get('avg_ms')} ms, "
              f"longest {figures.get('max_ms')} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
