#!/usr/bin/env python3
"""The errors a local runner logged (RUST_LOG=warn, JSON lines), counted by kind.

    error_kinds.py RUNNER.log

A failed request logs "request failed" with its error chain, then "response failed" with the
status; this counts the first kind by its error text, with prepared-statement names (s0, s17, …)
folded into one, so that e.g. the old code's `prepared statement "sN" does not exist` behind
PgBouncer's transaction pooling is one line with its count. Used by scripts/bench.sh.
"""
import collections
import json
import re
import sys

counts = collections.Counter()
with open(sys.argv[1], errors="replace") as log:
    for line in log:
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") not in ("ERROR", "WARN"):
            continue
        if entry.get("message") == "response failed":
            continue  # the same request again, as its status
        text = entry.get("error") or entry.get("message", "")
        text = re.sub(r'statement "s\d+"', 'statement "sN"', text)
        counts[f'{entry["level"]}: {entry.get("message", "")}: {text}'[:200]] += 1
if not counts:
    print("  (none)")
for text, n in counts.most_common():
    print(f"  {n:8d}  {text}")
