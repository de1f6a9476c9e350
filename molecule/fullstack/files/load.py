"""Bounded load for the full-stack scenario: GET a URL at a fixed rate for N seconds.

Writes {"total", "failed", "statuses", "colors", "errors"} as JSON. Runs on a test container
against its own nginx only; stops by itself.
"""

import argparse
import json
import time
import urllib.error
import urllib.request
from collections import Counter

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--seconds", type=float, default=10)
parser.add_argument("--rate", type=float, default=50)
parser.add_argument("--out", required=True)
args = parser.parse_args()

statuses, colors, errors = Counter(), Counter(), Counter()
deadline = time.monotonic() + min(args.seconds, 60)
interval = 1.0 / max(args.rate, 1)
total = failed = 0
while time.monotonic() < deadline:
    started = time.monotonic()
    total += 1
    try:
        with urllib.request.urlopen(args.url, timeout=5) as resp:
            statuses[resp.status] += 1
            colors[resp.headers.get("X-App-Color", "?")] += 1
            if resp.status >= 400:
                failed += 1
    except urllib.error.HTTPError as exc:
        statuses[exc.code] += 1
        failed += 1
    except OSError as exc:
        errors[type(exc).__name__] += 1
        failed += 1
    time.sleep(max(0.0, interval - (time.monotonic() - started)))

with open(args.out, "w", encoding="utf-8") as fh:
    json.dump({"total": total, "failed": failed, "statuses": statuses, "colors": colors, "errors": errors}, fh)
