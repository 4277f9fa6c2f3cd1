#!/usr/bin/env python3
"""CPU seconds per program while a command runs: where the machine's cores go under a load.

    cpu_split.py -- <command ...>

Reads utime+stime of every process from /proc before and after (processes that exit during the
run are counted through their parent's cutime/cstime when reaped, e.g. wrk under this script),
groups them by program name and prints the shares. Used by scripts/bench.sh to say what limits
POST /orders on this machine (docs/BENCHMARKS.md).
"""
import os
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def snapshot():
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
        utime, stime = int(fields[11]), int(fields[12])
        cpu[(pid, comm)] = (utime + stime) / TICKS
    return cpu


def main():
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    before = snapshot()
    started = time.monotonic()
    child = subprocess.run(args)
    wall = time.monotonic() - started
    after = snapshot()
    children = os.times()
    by_program = {}
    for key, seconds in after.items():
        used = seconds - before.get(key, 0.0)
        if used > 0:
            name = "postgres" if key[1].startswith("postgres") else key[1]
            by_program[name] = by_program.get(name, 0.0) + used
    # The command itself and what it ran (e.g. wrk), reaped by now.
    by_program[os.path.basename(args[0]) + " (+children)"] = children.children_user + children.children_system
    total = sum(by_program.values())
    print(f"cpu split over {wall:.1f} s wall, {os.cpu_count()} cores ({os.cpu_count() * wall:.1f} core-s available):")
    for name, used in sorted(by_program.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name:<28} {used:7.1f} core-s  {100 * used / total:5.1f} %")
    print(f"  {'total':<28} {total:7.1f} core-s  ({100 * total / (os.cpu_count() * wall):.0f} % of the machine)")
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
