#!/usr/bin/env python3
"""Scaling benchmark: cold builds of 3, 5 and 7 nodes in one run, and each no-op re-run.

    .venv/bin/python bench/scale.py [--sizes 3,5,7] [--keep]

Uses its own labs (scalebench-*, 172.16.0.0/16, ports 38432-38439 on 127.0.0.1), derived
at run time from the 7-node bench/scale-lab.toml by leaving out nodes: a lab of N nodes is
one primary, ceil((N-1)/2) standbys and floor((N-1)/2) read-only replicas (3: 1+1+1, 5:
1+2+2, 7: 1+3+3). For each size, in the order given: destroy whatever scalebench-* lab is
there (through the 7-node definition, which names every size's containers and volumes) and
check nothing of it is left; create the containers (`pyinfra @local deploys/lab.py`,
timed on its own: one container after another, each until systemd runs); time the cold
cluster deploy (`pyinfra inventory/docker.py deploys/cluster.py`, the wall clock around
the command: primary initialised, every replica cloned and streaming); check that
pg_stat_replication on the primary shows every replica streaming; time a second deploy
and check that it changes nothing (pyinfra's --json totals). The last lab is destroyed
too, unless --keep. The node image is reused when current (the figures say whether it
was: when not, the first size's container time includes building it).

Target (issue 17): the cold deploy of 7 nodes at most 1.5 x that of 3 (the replicas are
cloned in parallel, not one after another). A miss is reported, not an error; the exit
status is non-zero when a deploy fails, a replica does not stream or a re-run changes
something. Prints a table and saves the figures (those measured so far, when it stops
early) to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import Bench, save  # noqa: E402
from pgcluster.lab.definition import Lab, load_lab  # noqa: E402
from pgcluster.lab.docker import inspect, node_image_current  # noqa: E402
from tests.conftest import changed, totals  # noqa: E402

TEMPLATE = REPO / "bench" / "scale-lab.toml"  # the largest lab; the others leave nodes out
RESULTS = REPO / "bench" / "results" / "scale.json"
CLUSTER = ("inventory/docker.py", "deploys/cluster.py")
RATIO_GOAL = 1.5  # cold deploy of 7 nodes / cold deploy of 3
RATIO_SIZES = (3, 7)


def roles_of(size: int) -> dict[str, int]:
    """How many nodes of each role a lab of SIZE nodes has."""
    replicas = size - 1
    return {"primary": 1, "standby": math.ceil(replicas / 2), "readonly": replicas // 2}


def definition(size: int) -> str:
    """bench/scale-lab.toml's text with only the [[nodes]] tables of a SIZE-node lab: the
    primary, then the first standbys and read-only replicas in the file's order."""
    header, *blocks = re.split(r"(?m)^(?=\[\[nodes\]\][ \t]*$)", TEMPLATE.read_text())
    wanted = roles_of(size)
    kept = []
    for block in blocks:
        parsed = tomllib.loads(block)
        if list(parsed) != ["nodes"] or len(parsed["nodes"]) != 1:
            sys.exit(f"{TEMPLATE}: only [[nodes]] tables may follow the first one")
        role = parsed["nodes"][0]["role"]
        if wanted.get(role, 0) > 0:
            wanted[role] -= 1
            kept.append(block)
    if any(wanted.values()):
        sys.exit(f"{TEMPLATE} has too few nodes for {size}: "
                 f"{', '.join(f'{n} more {role}' for role, n in wanted.items() if n)}")
    return (f"# Written by bench/scale.py: the {size}-node lab, {TEMPLATE.name} without the "
            "other nodes.\n" + header + "".join(kept))


def write_lab(size: int, directory: Path) -> Path:
    """The SIZE-node lab's definition, written as DIRECTORY/SIZE/scale-lab.toml: the same
    file name as the template's, so every size is the same lab (its containers' label)
    and the template's destroy removes any of them. Checked by the lab loader."""
    path = directory / str(size) / TEMPLATE.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(definition(size))
    lab = load_lab(str(path))
    counts = {role: sum(n.role == role for n in lab.nodes) for role in roles_of(size)}
    if counts != roles_of(size) or len(lab.nodes) != size:
        sys.exit(f"{path}: {counts} is not a lab of {size} nodes {roles_of(size)}")
    return path


def leftovers(lab: Lab) -> list[str]:
    """What of the largest lab (and its scratch node) is still there after a destroy."""
    objects = [("container", c) for c in [*lab.containers, lab.scratch.name]]
    objects += [("volume", v) for v in [*lab.volumes, lab.scratch.data_volume]]
    objects += [("network", lab.network)]
    return [f"{kind} {name}" for kind, name in objects if inspect(kind, name) is not None]


def destroy_all(largest: Bench, lab: Lab) -> None:
    """Remove any scalebench-* lab, of whatever size; stop when something is left (a
    container the lab did not create is kept by `pgcluster destroy`)."""
    largest.destroy()
    left = leftovers(lab)
    if left:
        sys.exit(f"not removed by `PGCLUSTER_LAB={TEMPLATE.relative_to(REPO)} pgcluster "
                 f"destroy --yes`: {', '.join(left)}; remove them, then run again")


def streaming(bench: Bench, lab: Lab) -> list[str]:
    """The replicas pg_stat_replication on the primary shows streaming."""
    out = bench.node_sh(lab.node("primary").name, "cd / && psql -XAtq -c \"select "
                        "application_name from pg_stat_replication where state = "
                        "'streaming' order by 1\"", user="postgres")
    return out.split()


def measure(size: int, path: Path) -> dict[str, Any]:
    """Build a SIZE-node lab (the caller destroyed the one before), deploy it cold, check
    its replicas, re-run the deploy; the figures."""
    bench = Bench(str(path))
    lab = load_lab(str(path))
    figures: dict[str, Any] = {"nodes": size, "roles": roles_of(size),
                               "node_image_cached": node_image_current(lab.image)}
    print(f"{size} nodes: containers", flush=True)
    seconds, _ = bench.pyinfra("@local", "deploys/lab.py")
    figures["containers_seconds"] = round(seconds, 1)
    print(f"{size} nodes: cold deploy", flush=True)
    seconds, _ = bench.pyinfra(*CLUSTER)
    figures["cold_deploy_seconds"] = round(seconds, 1)
    replicas = sorted(n.name for n in lab.nodes if n.role != "primary")
    streams = streaming(bench, lab)
    figures.update({"streaming": len(streams), "replicas": len(replicas),
                    "not_streaming": sorted(set(replicas) - set(streams))})
    print(f"{size} nodes: re-run", flush=True)
    seconds, rerun = bench.pyinfra("--json", *CLUSTER)
    counts = totals(rerun)
    figures.update({"rerun_seconds": round(seconds, 1), "rerun_changes": counts["success"],
                    "rerun_no_change": counts["no_change"]})
    if counts["success"]:
        figures["rerun_changed_operations"] = changed(rerun)
    return figures


def ratio(sizes: dict[int, dict[str, Any]]) -> float | None:
    small, large = (sizes.get(n, {}).get("cold_deploy_seconds") for n in RATIO_SIZES)
    return round(large / small, 2) if small and large is not None else None


def report(sizes: dict[int, dict[str, Any]]) -> list[str]:
    """The table; what failed (a replica not streaming, a re-run that changed something)."""
    failed = []
    print(f"\n  {'nodes':>5}  {'containers s':>12}  {'cold deploy s':>13}  {'re-run s':>8}  "
          f"{'re-run changes':>14}  {'streaming':>9}")
    for size, f in sizes.items():
        print(f"  {size:>5}  {f['containers_seconds']:>12.1f}  {f['cold_deploy_seconds']:>13.1f}"
              f"  {f['rerun_seconds']:>8.1f}  {f['rerun_changes']:>14}  "
              f"{f['streaming']:>5}/{f['replicas']:<3}")
        if f["not_streaming"]:
            failed.append(f"{size} nodes: not streaming after the cold deploy: "
                          f"{', '.join(f['not_streaming'])}")
        if f["rerun_changes"]:
            failed.append(f"{size} nodes: the re-run changed {f['rerun_changes']} "
                          f"operation(s): {'; '.join(f['rerun_changed_operations'])}")
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,5,7",
                        help="node counts, comma-separated, in the order built (default 3,5,7;"
                        " each from 2 to the template's 7)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the last lab running (and its definition's directory)")
    args = parser.parse_args()
    try:
        wanted = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: comma-separated node counts, e.g. 3,5,7")
    if not wanted or len(set(wanted)) != len(wanted) or min(wanted) < 2:
        parser.error(f"--sizes {args.sizes!r}: different node counts, each at least 2")
    for size in wanted:  # every size's definition, before anything is built
        definition(size)
    largest_lab = load_lab(str(TEMPLATE))
    largest = Bench(str(TEMPLATE))
    if not largest.subnet_free(largest_lab.subnet, largest_lab.network):
        sys.exit(f"another Docker network uses {largest_lab.subnet}: edit {TEMPLATE}")
    directory = Path(tempfile.mkdtemp(prefix="scalebench-"))
    paths = {size: write_lab(size, directory) for size in wanted}

    sizes: dict[int, dict[str, Any]] = {}
    figures: dict[str, Any] = {"sizes": sizes}
    try:
        for size in wanted:
            destroy_all(largest, largest_lab)
            sizes[size] = measure(size, paths[size])
    except BaseException as stop:  # a deploy failed (Bench.run exits), or ^C: save the rest
        why = stop.code if isinstance(stop, SystemExit) else repr(stop)
        figures["stopped"] = {"size": next(s for s in wanted if s not in sizes),
                              "why": str(why)[-3000:]}
        raise
    finally:
        if not args.keep:
            largest.destroy()
            shutil.rmtree(directory, ignore_errors=True)
        cold_ratio = ratio(sizes)
        figures.update({
            "cold_ratio_7_to_3": cold_ratio, "cold_ratio_goal": RATIO_GOAL,
            "cold_ratio_passed": None if cold_ratio is None else cold_ratio <= RATIO_GOAL})
        save(RESULTS, "scale", {**figures, "sizes": {str(n): f for n, f in sizes.items()}})

    failed = report(sizes)
    if cold_ratio is None:
        print("\n  cold deploy 7 / 3: not measured (it needs 3 and 7 in --sizes, both deployed)")
    else:
        verdict = "within the target" if cold_ratio <= RATIO_GOAL else "TARGET MISSED"
        print(f"\n  cold deploy 7 / 3: {cold_ratio:.2f} (target <= {RATIO_GOAL:g}): {verdict}")
    if args.keep:
        print(f"\nkept: the {wanted[-1]}-node lab (its definition {paths[wanted[-1]]}); remove "
              f"it with PGCLUSTER_LAB={TEMPLATE.relative_to(REPO)} .venv/bin/python -m "
              "pgcluster destroy --yes")
    print(f"saved to {RESULTS.relative_to(REPO)}")
    if failed:
        sys.exit("FAILED:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
