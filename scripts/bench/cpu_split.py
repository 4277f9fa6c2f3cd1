#!/usr/bin/env python3
"""CPU seconds per program while a command runs: where the machine's cores go under a load.

    cpu_split.py [--label PID=NAME ...] [--postgres-db NAME ...] [--units FILE.json:FIELD]
                 [--json OUT.json] -- <command ...>

Reads utime+stime of every process from /proc before and after and groups them by program name.
The command itself and everything it ran (e.g. wrk or pgbench under load-bench) is one line,
"<command> (+children)", from this process's reaped-children times. Processes are told apart by
pid and start time, not by name: a kernel worker's name changes with its work.

Postgres: every process whose name starts with "postgres" counts as postgres. On a shared server
(other engineers' tests, throwaway clusters of a soak) that is more than the benchmark's cost, so
with --postgres-db the postgres processes are split by their process title
("postgres: 15/main: postgres bench_floor 127.0.0.1(5123) idle"):
  postgres: backends of the benchmark db   connections to a database named by --postgres-db
  postgres: server processes               walwriter, checkpointer, background writer, ... of
                                           the benchmark database's cluster (shared by all its
                                           databases, mostly busy with the benchmark's writes)
  postgres: other databases and clusters   everybody else's backends, other clusters
Backends that end during the run (pgbench's, at its end) are sampled every 0.2 s while they live,
so at most their last 0.2 s are missed; the postmaster's reaped-children time, which would hold
them whole but also every other database's short connections, is not used.

--label names one process by its pid (e.g. the runner under test when another runner is up as
well). --units divides each line by a count the command wrote into a JSON file (e.g.
`post.json:accepted`, the accepted orders of a load-bench post run, or `floor.json:transactions`,
pgbench's transactions), so that two different loads are compared by the same rule: CPU time per
unit of work over the command's whole wall time. --json writes the figures there too.

Used by scripts/bench.sh to say what limits POST /orders on this machine (docs/BENCHMARKS.md).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.2

BACKENDS = "postgres: backends of the benchmark db"
SERVER = "postgres: server processes"
OTHER_PG = "postgres: other databases and clusters"


def read_stat(pid):
    """(name, own CPU seconds, parent pid, start time) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICKS, fields[1], fields[19]


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def postgres_role(text):
    """("backend", cluster, db) or ("server", cluster, None) from a postgres process title."""
    if not text.startswith("postgres: "):
        return ("server", None, None)  # the postmaster: its command line, not a title
    words = text[len("postgres: ") :].split()
    cluster = None
    if words and words[0].endswith(":"):
        cluster, words = words[0][:-1], words[1:]
    # A backend: "<user> <database> <host(port)|[local]> <state...>".
    if len(words) >= 3 and ("(" in words[2] or words[2] == "[local]"):
        return ("backend", cluster, words[1])
    return ("server", cluster, None)


class Processes:
    """What is known of every process: its key (pid, start time) → name, CPU, parent, title."""

    def __init__(self):
        self.seen = {}
        self.postgres_pids = set()
        self.other_pids = set()
        self.lock = threading.Lock()

    def scan(self, everything):
        """Reads every process (everything) or only postgres ones and those not seen yet."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or (not everything and pid in self.other_pids):
                continue
            stat = read_stat(pid)
            if stat is None:
                continue
            comm, cpu, parent, start = stat
            key = (pid, start)
            with self.lock:
                known = self.seen.get(key)
                text = known["title"] if known else (title(pid) if comm.startswith("postgres") else "")
                self.seen[key] = {"comm": comm, "cpu": cpu, "parent": parent, "title": text}
                (self.postgres_pids if comm.startswith("postgres") else self.other_pids).add(pid)

    def snapshot(self):
        self.scan(everything=True)
        with self.lock:
            return {key: dict(value) for key, value in self.seen.items()}


def units_from(spec):
    path, _, field = spec.rpartition(":")
    with open(path) as f:
        value = json.load(f)[field]
    return float(value), field


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--label", action="append", default=[], metavar="PID=NAME")
    parser.add_argument("--postgres-db", action="append", default=[], metavar="NAME")
    parser.add_argument("--units", metavar="FILE.json:FIELD")
    parser.add_argument("--json", metavar="OUT.json")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    args = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not args:
        parser.error("no command")
    labels = dict(item.split("=", 1) for item in opts.label)
    bench_dbs = set(opts.postgres_db)

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    processes = Processes()
    before = processes.snapshot()
    started = time.monotonic()
    child = subprocess.Popen(args)
    done = threading.Event()

    def sample():
        while not done.wait(SAMPLE_EVERY):
            processes.scan(everything=False)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    child.wait()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    seen_during = processes.snapshot()
    alive = {key for key in seen_during if (read_stat(key[0]) or (None,) * 4)[3] == key[1]}
    children = os.times()

    # The command's descendants are in its (+children) line.
    descendants = {str(child.pid)}
    grew = True
    while grew:
        grew = False
        for (pid, _), info in seen_during.items():
            if info["parent"] in descendants and pid not in descendants:
                descendants.add(pid)
                grew = True
    labels.setdefault(str(os.getpid()), "cpu_split.py (this script)")
    bench_clusters = {
        postgres_role(info["title"])[1]
        for info in seen_during.values()
        if info["comm"].startswith("postgres") and postgres_role(info["title"])[2] in bench_dbs
    }

    def group(pid, info):
        if pid in labels:
            return labels[pid]
        comm = info["comm"]
        if comm.startswith("postgres"):
            if not bench_dbs:
                return "postgres"
            role, cluster, db = postgres_role(info["title"])
            if role == "backend":
                return BACKENDS if db in bench_dbs else OTHER_PG
            if cluster in bench_clusters or (cluster is None and not info["title"].startswith("postgres: ")):
                # A postmaster (no title) counts with the server processes; its own CPU is small.
                return SERVER
            return OTHER_PG
        if comm.startswith("kworker/"):
            return "kworker (kernel threads)"
        return comm

    by_program = {}
    for key, info in seen_during.items():
        pid = key[0]
        if pid in descendants:
            continue
        used = info["cpu"] - before.get(key, {"cpu": 0.0})["cpu"]
        if key not in alive and key not in before and not info["comm"].startswith("postgres"):
            continue  # someone else's short-lived process, seen once: not sampled, not counted
        if used > 0:
            name = group(pid, info)
            by_program[name] = by_program.get(name, 0.0) + used
    by_program[os.path.basename(args[0]) + " (+children)"] = children.children_user + children.children_system
    total = sum(by_program.values())
    cores = os.cpu_count()
    units, unit_name = units_from(opts.units) if opts.units else (None, None)

    head = f"  {'core-ms per unit':>18}" if units else ""
    print(f"cpu split over {wall:.1f} s wall, {cores} cores ({cores * wall:.1f} core-s available), "
          f"load average at the start {' '.join(load)}:")
    print(f"  {'program':<40} {'used':>14}  {'share':>7}{head}")
    ranked = sorted(by_program.items(), key=lambda kv: -kv[1])
    shown = ranked[:12]
    for name, used in shown:
        extra = f"  {1000 * used / units:18.3f}" if units else ""
        print(f"  {name:<40} {used:7.1f} core-s  {100 * used / total:5.1f} %{extra}")
    rest = sum(used for _, used in ranked[12:])
    if rest:
        extra = f"  {1000 * rest / units:18.3f}" if units else ""
        print(f"  {'(other)':<40} {rest:7.1f} core-s  {100 * rest / total:5.1f} %{extra}")
    extra = f"  {1000 * total / units:18.3f}" if units else ""
    print(f"  {'total':<40} {total:7.1f} core-s  ({100 * total / (cores * wall):.0f} % of the machine){extra}")
    if units:
        ours = by_program.get(BACKENDS, 0.0) + by_program.get(SERVER, 0.0)
        if bench_dbs:
            print(f"  postgres for the benchmark (its backends + server processes): "
                  f"{1000 * ours / units:.3f} core-ms per unit "
                  f"(backends alone {1000 * by_program.get(BACKENDS, 0.0) / units:.3f})")
        print(f"  last column: core-ms per unit, {units:.0f} {unit_name} in the run")

    if opts.json:
        os.makedirs(os.path.dirname(os.path.abspath(opts.json)), exist_ok=True)
        with open(opts.json, "w") as f:
            json.dump({
                "command": args,
                "wall_s": wall,
                "cores": cores,
                "load_average_at_start": [float(v) for v in load],
                "postgres_dbs": sorted(bench_dbs),
                "units": units,
                "unit": unit_name,
                "core_seconds": dict(ranked),
                "ms_per_unit": {k: 1000 * v / units for k, v in ranked} if units else None,
            }, f, indent=2)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
