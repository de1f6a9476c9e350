"""Build a STAND-IN for jaeger-<version>-linux-amd64.tar.gz (offline CI only: this is not Jaeger).

Layout as upstream v1: jaeger-<version>-linux-amd64/jaeger-all-in-one. The binary is a python3
script that reads the same environment variables as jaeger-all-in-one v1 for its listen
addresses, answers health on the admin port (GET / -> 200) and /metrics (one stackops_standin_info
series, so a Prometheus scrape works), and holds the OTLP gRPC/HTTP and
query ports open so port checks work. It stores no spans and speaks neither OTLP nor the query API.
"""

from __future__ import annotations

from standin_tar import build, cli, report

JAEGER_SCRIPT = r'''#!/usr/bin/env python3
"""STAND-IN, not Jaeger: health on the admin port plus open ports, for offline CI of the stackops jaeger role."""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

print("STAND-IN, not Jaeger", flush=True)

PORTS = {
    "ADMIN_HTTP_HOST_PORT": ":14269",
    "QUERY_HTTP_SERVER_HOST_PORT": ":16686",
    "COLLECTOR_OTLP_GRPC_HOST_PORT": ":4317",
    "COLLECTOR_OTLP_HTTP_HOST_PORT": ":4318",
}
HEALTH = json.dumps({"status": "Server available", "standin": "STAND-IN, not Jaeger"}).encode()


class Handler(BaseHTTPRequestHandler):
    role = "?"

    def do_GET(self):
        if self.role == "ADMIN_HTTP_HOST_PORT" and self.path == "/":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(HEALTH)))
            self.end_headers()
            self.wfile.write(HEALTH)
        elif self.role == "ADMIN_HTTP_HOST_PORT" and self.path == "/metrics":
            # Lets a Prometheus scrape of the admin port succeed; the one series says what this is.
            body = b'# HELP stackops_standin_info A STAND-IN, not Jaeger.\n# TYPE stackops_standin_info gauge\n'
            body += b'stackops_standin_info{component="jaeger"} 1\n'
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(501, "STAND-IN, not Jaeger")

    do_POST = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("standin-jaeger: " + (fmt % args) + "\n")


def split(host_port):
    host, _, port = host_port.rpartition(":")
    return (host or "0.0.0.0", int(port))


servers = []
for env, default in PORTS.items():
    address = split(os.environ.get(env) or default)
    handler = type(env, (Handler,), {"role": env})
    servers.append(ThreadingHTTPServer(address, handler))
    print(f"STAND-IN, not Jaeger: {env} on {address[0]}:{address[1]}", flush=True)
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
'''


def main() -> None:
    args = cli(__doc__ or "")
    top = f"jaeger-{args.version}-linux-amd64"
    files = {
        f"{top}/jaeger-all-in-one": (JAEGER_SCRIPT, 0o755),
        f"{top}/README.STANDIN": ("STAND-IN, not Jaeger. Built by tests/standins/build_jaeger_standin.py.\n", 0o644),
    }
    out = args.output_dir / f"jaeger-{args.version}.STANDIN-linux-amd64.tar.gz"
    report(build(files, out), out)


if __name__ == "__main__":
    main()
