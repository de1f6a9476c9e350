"""Build a STAND-IN for grafana-<version>.linux-amd64.tar.gz (offline CI only: this is not Grafana).

Layout as upstream: grafana-v<version>/bin/grafana, conf/defaults.ini, public/. bin/grafana is a
python3 script that reads http_addr/http_port from the --config ini file and serves /api/health
with {"database": "ok", "version": "standin"}. Nothing else of Grafana exists in it.
"""

from __future__ import annotations

from standin_tar import build, cli, report

GRAFANA_SCRIPT = r'''#!/usr/bin/env python3
"""STAND-IN, not Grafana: serves /api/health only, for offline CI of the stackops grafana role."""
import configparser
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

print("STAND-IN, not Grafana", flush=True)


def option(argv, name, default):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


argv = sys.argv[1:]
if argv and argv[0] == "server":
    argv = argv[1:]
config_path = option(argv, "--config", "/etc/grafana/grafana.ini")
ini = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
with open(config_path, encoding="utf-8") as fh:
    ini.read_file(fh)
addr = ini.get("server", "http_addr", fallback="127.0.0.1") or "0.0.0.0"
port = ini.getint("server", "http_port", fallback=3000)
BODY = json.dumps({"database": "ok", "version": "standin", "commit": "STAND-IN, not Grafana"}).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?", 1)[0] == "/api/health":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        else:
            self.send_error(404, "STAND-IN, not Grafana: only /api/health exists")

    def log_message(self, fmt, *args):
        sys.stderr.write("standin-grafana: " + (fmt % args) + "\n")


print(f"STAND-IN, not Grafana: listening on {addr}:{port}", flush=True)
ThreadingHTTPServer((addr, port), Handler).serve_forever()
'''


def main() -> None:
    args = cli(__doc__ or "")
    top = f"grafana-v{args.version}"
    files = {
        f"{top}/bin/grafana": (GRAFANA_SCRIPT, 0o755),
        f"{top}/conf/defaults.ini": ("; STAND-IN, not Grafana\n[server]\nhttp_addr =\nhttp_port = 3000\n", 0o644),
        f"{top}/public/STANDIN.txt": ("STAND-IN, not Grafana: no frontend here.\n", 0o644),
        f"{top}/README.STANDIN": ("STAND-IN, not Grafana. Built by tests/standins/build_grafana_standin.py.\n", 0o644),
    }
    out = args.output_dir / f"grafana-{args.version}.STANDIN.linux-amd64.tar.gz"
    report(build(files, out), out)


if __name__ == "__main__":
    main()
