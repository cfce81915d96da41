#!/usr/bin/env python3
"""Provisioning benchmark: a cold build to three nodes streaming, then a no-op re-run.

    .venv/bin/python bench/provision.py [--runs N] [--keep]

Uses its own lab (lab/bench.toml), destroyed before and after, so neither the seed lab nor
the test lab is touched. The base image must be present (it is built once, offline,
by lab/build-base-image.sh); the node image is reused when present, and the figures say
whether it was. Targets (issue 2): cold build <= 120 s, no-op re-run <= 10 s with zero
changes. Prints the figures and saves them to bench/results/provision.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import Bench, save  # noqa: E402
from pgcluster.lab.definition import load_lab  # noqa: E402
from pgcluster.lab.docker import inspect, node_image_current  # noqa: E402

BENCH = Bench("bench")
RESULTS = REPO / "bench" / "results" / "provision.json"


def destroy() -> None:
    BENCH.pgcluster("destroy", "--yes")


def streaming_rows(lab) -> int:
    primary = lab.node("primary").name
    result = BENCH.run("docker", "exec", primary, "runuser", "-u", "postgres", "--", "psql", "-Atc",
                    "select count(*) from pg_stat_replication where state = 'streaming'")
    return int(result.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="cold builds to time (default 1)")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()
    lab = load_lab("bench")
    if inspect("image", lab.base_image) is None:
        BENCH.run(str(REPO / "lab" / "build-base-image.sh"), lab.base_image)
    node_image_cached = node_image_current(lab.image)

    cold, noop, changes = [], [], []
    for _ in range(args.runs):
        destroy()
        lab_time, _ = BENCH.pyinfra("@local", "deploys/lab.py")
        deploy_time, _ = BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py")
        assert streaming_rows(lab) == 2, "the cold build did not end with two streaming replicas"
        cold.append({"lab_s": round(lab_time, 1), "deploy_s": round(deploy_time, 1),
                     "total_s": round(lab_time + deploy_time, 1)})
        rerun_time, rerun = BENCH.pyinfra("--json", "inventory/docker.py", "deploys/cluster.py")
        noop.append(round(rerun_time, 1))
        changes.append(json.loads(rerun.stdout)["results"]["totals"]["success"])
    if not args.keep:
        destroy()

    totals = [c["total_s"] for c in cold]
    figures = {
        "node_image_cached": node_image_cached,
        "cold_build_runs": cold,
        "cold_build_median_s": statistics.median(totals),
        "cold_build_goal_s": 120,
        "noop_rerun_s": noop,
        "noop_rerun_median_s": statistics.median(noop),
        "noop_rerun_goal_s": 10,
        "noop_rerun_changed_operations": changes,
    }
    save(RESULTS, "provision", figures)
    ok = figures["cold_build_median_s"] <= 120 and figures["noop_rerun_median_s"] <= 10
    ok = ok and not any(changes)
    print(f"\n{'within' if ok else 'OUTSIDE'} the targets; saved to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
