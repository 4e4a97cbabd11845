#!/usr/bin/env python3
"""prom_value.py < ANSWER.json: a Prometheus HTTP API instant-query answer
as lines "NAME LABEL=VALUE ... SAMPLE", one per series, for awk
(tests/lib/observe.sh prom_value)."""
import json
import sys

for r in json.load(sys.stdin)["data"]["result"]:
    m = r["metric"]
    labels = " ".join(f"{k}={v}" for k, v in sorted(m.items()) if k != "__name__")
    print(m.get("__name__", ""), labels, r["value"][1])
