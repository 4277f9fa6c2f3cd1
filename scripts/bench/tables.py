#!/usr/bin/env python3
"""The Markdown tables of docs/BENCHMARKS.md sections 1 and 2, from what scripts/bench.sh wrote.

    tables.py [RESULTS_DIR]        (default bench/results)

Reads post-direct.json and post-pgbouncer.json (load-bench post, old and new side by side),
floor.json and floor-pgbouncer.json (load-bench floor), cpu-split-*.json (cpu_split.py) and
statements.json (load-bench statements), and prints one table each, numbers as the document
writes them, so that nothing is copied by hand. A file that is missing is skipped.
"""
import json
import os
import sys

DIR = sys.argv[1] if len(sys.argv) > 1 else "bench/results"


def load(name):
    path = os.path.join(DIR, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def n(value, digits=0):
    """1709.4 → "1 709"; 12.345 with digits=2 → "12.35"."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    return text.replace(",", " ")


def medians(post):
    """{(label, connections): median run}."""
    out = {}
    for target in post.get("targets", []):
        for row in target["rows"]:
            m = row["median"]
            out[(target["label"], m["connections"])] = m
    return out


def post_table(via):
    post = load(f"post-{via}.json")
    if not post:
        return
    m = medians(post)
    labels = [t["label"] for t in post["targets"]]
    conns = sorted({c for _, c in m})
    print(f"\n#### POST /orders, {via} (median of {post.get('runs')} runs of {post['seconds']} s)\n")
    print("| connections | code | requests/s | 201/s | p50 ms | p90 ms | p99 ms | max ms | non-201 | socket errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        for label in labels:
            r = m.get((label, c))
            if not r:
                continue
            code = label.split("-")[0]
            print(f"| {c} | {code} | {n(r['requests_per_s'])} | {n(r.get('accepted_per_s'))} | "
                  f"{n(r['p50_ms'], 2)} | {n(r['p90_ms'], 2)} | {n(r['p99_ms'], 2)} | {n(r['max_ms'], 1)} | "
                  f"{n(r['non_2xx'])} | {n(r.get('socket_errors', 0))} |")
    # Every run, for the spread.
    print("\nAll runs (201/s), in the order they ran:\n")
    print("| connections | " + " | ".join(labels) + " |")
    print("|---:|" + "---|" * len(labels))
    for c in conns:
        cells = []
        for target in post["targets"]:
            for row in target["rows"]:
                if row["median"]["connections"] == c:
                    cells.append(" / ".join(n(r.get("accepted_per_s")) for r in row["runs"]))
        print(f"| {c} | " + " | ".join(cells) + " |")


def floor_table():
    floor = load("floor.json")
    if not floor:
        return
    direct = load("post-direct.json")
    m = medians(direct) if direct else {}
    labels = [t["label"] for t in direct["targets"]] if direct else []
    bouncer = load("floor-pgbouncer.json")
    through = {r["clients"]: r["tps"] for r in bouncer["rows"]} if bouncer else {}
    print(f"\n#### The floor (pgbench, median of {len(floor['rows'][0]['runs'])} runs of {floor['seconds']} s)\n")
    head = "| clients | tps | " + " | ".join(f"{l.split('-')[0]} POST as % of floor" for l in labels)
    print(head + " | tps through PgBouncer (8) |")
    print("|---:|---:|" + "---:|" * len(labels) + "---:|")
    for row in floor["rows"]:
        c, tps = row["clients"], row["tps"]
        cells = []
        for label in labels:
            r = m.get((label, c))
            cells.append(f"{100 * r['accepted_per_s'] / tps:.0f} %" if r else "–")
        print(f"| {c} | {n(tps)} | " + " | ".join(cells) + f" | {n(through.get(c))} |")
    for c, tps in sorted(through.items()):
        if c not in {r["clients"] for r in floor["rows"]}:
            print(f"| {c} | – | " + " | ".join("–" for _ in labels) + f" | {n(tps)} |")


def cpu_table():
    names = sorted(f for f in os.listdir(DIR) if f.startswith("cpu-split-") and f.endswith(".json"))
    if not names:
        return
    splits = [(f[len("cpu-split-") : -len(".json")], load(f)) for f in names]
    programs = []
    for _, s in splits:
        for p in s["core_seconds"]:
            if p not in programs and s["core_seconds"][p] >= 0.2:
                programs.append(p)
    print("\n#### Where the CPU went (core-s in the run, and core-ms per unit of work)\n")
    print("| process | " + " | ".join(name for name, _ in splits) + " |")
    print("|---|" + "---:|" * len(splits))
    for p in programs:
        cells = []
        for _, s in splits:
            used = s["core_seconds"].get(p)
            per = (s["ms_per_unit"] or {}).get(p)
            cells.append("–" if used is None else f"{used:.1f} ({per:.3f})" if per is not None else f"{used:.1f}")
        print(f"| {p} | " + " | ".join(cells) + " |")
    print("| **units in the run** | " + " | ".join(f"{n(s['units'])} {s['unit']}" for _, s in splits) + " |")
    print("| wall s / load average at the start | "
          + " | ".join(f"{s['wall_s']:.1f} / {s['load_average_at_start'][0]:.2f}" for _, s in splits) + " |")


def statements_table():
    st = load("statements.json")
    if not st:
        return
    print(f"\n#### Round trips and statements per request, counted ({st['requests']} requests of each kind)\n")
    print("| request | code | round trips | statements | planning ms | executing ms | WAL flushes | active backends: wait events | what each round trip carried (per request) |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for runner in st["runners"]:
        for kind in runner["kinds"]:
            trips = "; ".join(f"{t['per_request']:.3f} × [{t['what']}]" for t in kind["round_trips"])
            waits = kind.get("waits", {}).get("by_event", {})
            busy = sum(waits.values()) or 1
            ranked = sorted(waits.items(), key=lambda kv: -kv[1])  # the JSON object's keys are sorted by name
            top = ", ".join(f"{k} {100 * v / busy:.0f} %" for k, v in ranked[:4])
            print(f"| {kind['kind']} | {runner['label']} | {kind['round_trips_per_request']:.2f} | "
                  f"{kind['statements_per_request']:.2f} | {kind.get('plan_ms_per_request', float('nan')):.3f} | "
                  f"{kind.get('exec_ms_per_request', float('nan')):.3f} | "
                  f"{kind['wal_per_request']['syncs']:.2f} | {top or '–'} | {trips} |")


if __name__ == "__main__":
    post_table("direct")
    post_table("pgbouncer")
    floor_table()
    cpu_table()
    statements_table()
