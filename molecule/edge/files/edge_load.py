"""Bounded HTTPS load through the edge for the edge scenario: a few keep-alive clients GET one URL at a fixed
total rate until a stop file appears or --seconds pass (hard cap 300), and count what came back.

Writes {"total", "failed", "statuses", "hosts", "colors", "served", "errors", "seconds", "stopped_by"} as JSON:
hosts, colors and served ("<host>/<colour>") from the sample app's JSON body (which api host and colour served).
Runs on a test container only.
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time
from collections import Counter

parser = argparse.ArgumentParser()
parser.add_argument("--address", required=True, help="edge address to connect to")
parser.add_argument("--host", required=True, help="Host / SNI name")
parser.add_argument("--path", default="/")
parser.add_argument("--cafile", required=True)
parser.add_argument("--seconds", type=float, default=30)
parser.add_argument("--rate", type=float, default=40, help="requests per second, all clients together")
parser.add_argument("--clients", type=int, default=4)
parser.add_argument("--stop-file", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

lock = threading.Lock()
statuses, hosts, colors, served, errors = Counter(), Counter(), Counter(), Counter(), Counter()
totals = {"total": 0, "failed": 0}
started = time.monotonic()
deadline = started + min(args.seconds, 300)
context = ssl.create_default_context(cafile=args.cafile)


class EdgeConnection(http.client.HTTPConnection):
    """TLS to the edge's address with the host name as SNI and for certificate verification."""

    def connect(self):
        super().connect()
        self.sock = context.wrap_socket(self.sock, server_hostname=args.host)


def stop():
    return time.monotonic() >= deadline or os.path.exists(args.stop_file)


def client():
    interval = args.clients / max(args.rate, 1)
    conn = None
    while not stop():
        began = time.monotonic()
        status, body, error = None, b"", None
        try:
            if conn is None:
                conn = EdgeConnection(args.address, 443, timeout=5)
            conn.request("GET", args.path, headers={"Host": args.host})
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            totals["total"] += 1
            if error:
                errors[error] += 1
                totals["failed"] += 1
            else:
                statuses[status] += 1
                if status >= 400:
                    totals["failed"] += 1
                else:
                    data = json.loads(body)
                    hosts[data.get("hostname", "?")] += 1
                    colors[data.get("color", "?")] += 1
                    served[f"{data.get('hostname', '?')}/{data.get('color', '?')}"] += 1
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
    if conn is not None:
        conn.close()


threads = [threading.Thread(target=client) for _client in range(args.clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
result = dict(
    totals,
    statuses=statuses,
    hosts=hosts,
    colors=colors,
    served=served,
    errors=errors,
    seconds=round(time.monotonic() - started, 1),
    stopped_by="stop-file" if os.path.exists(args.stop_file) else "time cap",
)
with open(args.out, "w", encoding="utf-8") as fh:
    json.dump(result, fh)
