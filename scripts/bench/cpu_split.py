#!/usr/bin/env python3
"""CPU seconds per program while a command runs: where the machine's cores go under a load.

    cpu_split.py [--label PID=NAME ...] [--units FILE.json:FIELD] [--json OUT.json] -- <command ...>

Reads utime+stime of every process from /proc before and after, groups them by program name and
prints the shares. Processes that end during the run are counted through their parent, which
reaps them (its cutime/cstime grows by all they used: e.g. the backends of pgbench's connections,
reaped by the postmaster, or wrk, reaped by load-bench under this script); what such a process
had used before the run began is taken off again. Every process whose name starts with
"postgres" counts as postgres (backends, walwriter, checkpointer, ...).

--label names one process by its pid instead of its program name (e.g. the runner under test when
another runner is up as well). --units divides each program's CPU by a count the command wrote
into a JSON file (e.g. `post.json:accepted`, the accepted orders of a load-bench post run, or
`floor.json:transactions`, pgbench's transactions), so that two different loads are compared by
the same rule: CPU time per unit of work over the command's whole wall time. --json writes the
figures there too.

Used by scripts/bench.sh to say what limits POST /orders on this machine (docs/BENCHMARKS.md).
"""
import argparse
import json
import os
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def snapshot():
    """(pid, start time) -> (name, own CPU seconds, CPU seconds of its reaped children, parent pid).

    Keyed by pid and start time, not by name: a kernel worker's name changes with the work it
    does (kworker/1:1-events, then kworker/1:1-mm_percpu_wq), and it must still be the same
    process before and after.
    """
    cpu = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        cpu[(pid, fields[19])] = (comm, (utime + stime) / TICKS, (cutime + cstime) / TICKS, fields[1])
    return cpu


def units_from(spec):
    path, _, field = spec.rpartition(":")
    with open(path) as f:
        value = json.load(f)[field]
    return float(value), field


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--label", action="append", default=[], metavar="PID=NAME")
    parser.add_argument("--units", metavar="FILE.json:FIELD")
    parser.add_argument("--json", metavar="OUT.json")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    args = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not args:
        parser.error("no command")
    labels = dict(item.split("=", 1) for item in opts.label)

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    before = snapshot()
    started = time.monotonic()
    child = subprocess.run(args)
    wall = time.monotonic() - started
    after = snapshot()
    children = os.times()
    by_program = {}

    def group(pid, comm):
        if pid in labels:
            return labels[pid]
        if comm.startswith("postgres"):
            return "postgres"
        if comm.startswith("kworker/"):
            return "kworker (kernel threads)"
        return comm

    def add(name, seconds):
        by_program[name] = by_program.get(name, 0.0) + seconds

    me = str(os.getpid())
    for key, (comm, own, reaped, _) in after.items():
        _, own_before, reaped_before, _ = before.get(key, (comm, 0.0, 0.0, None))
        if key[0] == me:
            reaped = reaped_before  # the command's own line below (+children) holds that
        add(group(key[0], comm), own - own_before + reaped - reaped_before)
    # Ended during the run: its parent's reaped time holds all of it, the part before included.
    parents = {key[0]: group(key[0], value[0]) for key, value in after.items()}
    for key, (_, own, reaped, parent) in before.items():
        if key not in after and parent in parents and parent != me:
            add(parents[parent], -(own + reaped))
    by_program = {k: v for k, v in by_program.items() if v > 0}
    # The command itself and what it ran (e.g. wrk), reaped by now.
    by_program[os.path.basename(args[0]) + " (+children)"] = children.children_user + children.children_system
    total = sum(by_program.values())
    cores = os.cpu_count()
    units, unit_name = units_from(opts.units) if opts.units else (None, None)

    head = f"  {'core-ms per unit':>18}" if units else ""
    print(f"cpu split over {wall:.1f} s wall, {cores} cores ({cores * wall:.1f} core-s available), "
          f"load average at the start {' '.join(load)}:")
    print(f"  {'program':<28} {'used':>14}  {'share':>7}{head}")
    ranked = sorted(by_program.items(), key=lambda kv: -kv[1])
    for name, used in ranked[:10]:
        extra = f"  {1000 * used / units:18.3f}" if units else ""
        print(f"  {name:<28} {used:7.1f} core-s  {100 * used / total:5.1f} %{extra}")
    rest = sum(used for _, used in ranked[10:])
    if rest:
        extra = f"  {1000 * rest / units:18.3f}" if units else ""
        print(f"  {'(other)':<28} {rest:7.1f} core-s  {100 * rest / total:5.1f} %{extra}")
    extra = f"  {1000 * total / units:18.3f}" if units else ""
    print(f"  {'total':<28} {total:7.1f} core-s  ({100 * total / (cores * wall):.0f} % of the machine){extra}")
    if units:
        print(f"  last column: core-ms per unit, {units:.0f} {unit_name} in the run")

    if opts.json:
        os.makedirs(os.path.dirname(os.path.abspath(opts.json)), exist_ok=True)
        with open(opts.json, "w") as f:
            json.dump({
                "command": args,
                "wall_s": wall,
                "cores": cores,
                "load_average_at_start": [float(v) for v in load],
                "units": units,
                "unit": unit_name,
                "core_seconds": dict(ranked),
                "ms_per_unit": {k: 1000 * v / units for k, v in ranked} if units else None,
            }, f, indent=2)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
