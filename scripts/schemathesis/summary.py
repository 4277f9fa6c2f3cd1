"""Requests per operation of a schemathesis run, from its NDJSON report.

Schemathesis's own summary counts test cases for the whole run; this prints, for each operation
of the document, how many requests were sent in each phase and which statuses came back, and
fails (exit 1) if an operation with inputs (parameters or a body) got fewer than MIN requests, so
that a run which quietly stopped generating for one operation cannot pass. An operation without
inputs (GET /health) has one distinct request, so it has no minimum.

    python3 summary.py REPORT.ndjson OPENAPI.json MIN
"""

import collections
import json
import sys

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def main() -> int:
    report, document, minimum = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(document, encoding="utf-8") as f:
        paths = json.load(f)["paths"]
    documented = {
        f"{method.upper()} {path}": bool(op.get("parameters") or op.get("requestBody"))
        for path, item in paths.items()
        for method, op in item.items()
        if method in METHODS
    }
    requests = collections.Counter()
    by_phase = collections.defaultdict(collections.Counter)
    statuses = collections.defaultdict(collections.Counter)
    with open(report, encoding="utf-8") as lines:
        for line in lines:
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            cases = recorder.get("cases", {})
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = cases.get(case_id, {}).get("value", {})
                operation = f"{case.get('method', '?')} {case.get('path', '?')}"
                if operation not in documented:
                    operation = "methods the document lacks (unsupported_method)"
                response = interaction.get("response") or {}
                requests[operation] += 1
                by_phase[operation][finished["phase"]] += 1
                statuses[operation][response.get("status_code", "no response")] += 1
    rows = [*documented, *(op for op in requests if op not in documented)]
    width = max(len(op) for op in rows)
    print(f"{'operation':<{width}}  requests  (by phase; by status)")
    too_few = []
    for operation in rows:
        phases = ", ".join(f"{phase} {n}" for phase, n in sorted(by_phase[operation].items()))
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(statuses[operation].items(), key=str))
        print(f"{operation:<{width}}  {requests[operation]:>8}  ({phases}; {codes})")
        if documented.get(operation) and requests[operation] < minimum:
            too_few.append(operation)
    print(f"{'total':<{width}}  {sum(requests.values()):>8}")
    if too_few:
        print(f"error: fewer than {minimum} requests for: {', '.join(too_few)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
