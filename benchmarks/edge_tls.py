"""Edge TLS benchmark: requests/s and p99 latency through the HTTPS edge against plain HTTP to the app's nginx.

Everything runs on loopback in a temporary directory, on free ports, in one run:
  - the app's nginx (plain HTTP, 127.0.0.1:<A>) answering a small JSON body itself: a STANDIN for the app's nginx
    in front of a fast app, so the app is never the bottleneck and the difference is the edge's cost;
  - the edge: stackops.platform.edge applied to the temporary prefix (local CA, edge_manage_nginx false), one app
    whose backend is 127.0.0.1:<A>, the benchmark client on the rate-limit allowlist; served by its own nginx.
wrk (Debian package) then measures, for each mode, the plain path (client -> app nginx) and the edge path
(client -> TLS edge -> app nginx) back to back with the same threads, connections and duration:
  - keepalive: connections reused (TLS handshake once per connection);
  - new-connection: "Connection: close" on every request (a full TLS handshake per request through the edge).
Prints requests/s, p50 and p99 for each and the edge/plain ratios. Each wrk run is bounded (--duration <= 30 s).

    . scripts/env.sh && python benchmarks/edge_tls.py [--duration 10] [--connections 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN_CONF = """\
user root;
daemon on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/client;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/site.conf;
}}
"""

# STANDIN for the app's nginx + app: answers itself, keepalive on.
APP_SITE = """\
server {{
    listen 127.0.0.1:{port};
    keepalive_requests 100000;
    location / {{
        default_type application/json;
        return 200 '{{"status":"ok","app":"STANDIN"}}';
    }}
}}
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_prefix(root: Path, name: str) -> Path:
    prefix = root / name
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True)
    (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix))
    return prefix


def nginx(prefix: Path, *args: str) -> None:
    subprocess.run([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), *args], check=True, capture_output=True)


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def apply_edge_role(root: Path, edge: Path, app_port: int, https_port: int) -> None:
    """The real role renders the edge's configuration into the edge prefix (not timed)."""
    role_vars = {
        "edge_manage_nginx": False,
        "edge_nginx_conf": str(edge / "nginx.conf"),
        "edge_nginx_site": str(edge / "site.conf"),
        "edge_config_dir": str(edge / "etc"),
        "edge_state_dir": str(edge / "state"),
        "edge_log_dir": str(edge / "logs"),
        "edge_tls_local_ca": True,
        "edge_tls_local_ca_dir": str(root / "ca"),
        "edge_listen_address": "127.0.0.1",
        "edge_http_port": free_port(),
        "edge_https_port": https_port,
        "edge_server_names": ["localhost"],
        "edge_environment": "benchmark",
        "edge_rate_limit_allowlist": ["127.0.0.1/32"],
        "edge_apps": [{"name": "app", "backends": [f"127.0.0.1:{app_port}"]}],
    }
    play = [
        {"hosts": "localhost", "gather_facts": False, "roles": [{"role": "stackops.platform.edge", "vars": role_vars}]}
    ]
    playbook = root / "edge.yml"
    playbook.write_text(json.dumps(play))
    done = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         str(playbook)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"the edge role failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, args: argparse.Namespace, close: bool) -> dict[str, float]:
    argv = ["wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=args.duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (at most 30)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.duration <= 30:
        parser.error("--duration must be 1..30 seconds")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="edge-tls-bench-") as tmp:
        root = Path(tmp)
        app, edge = nginx_prefix(root, "app"), nginx_prefix(root, "edge")
        app_port, https_port = free_port(), free_port()
        (app / "site.conf").write_text(APP_SITE.format(port=app_port))
        log("applying the edge role to the temporary prefix (not timed)")
        apply_edge_role(root, edge, app_port, https_port)
        started = []
        try:
            for prefix, port in ((app, app_port), (edge, https_port)):
                nginx(prefix)
                started.append(prefix)
                wait_port(port)
            plain_url, edge_url = f"http://127.0.0.1:{app_port}/", f"https://127.0.0.1:{https_port}/"
            rows = []
            for mode, close in (("keepalive", False), ("new-connection", True)):
                for path, url in (("plain HTTP to app nginx", plain_url), ("HTTPS through the edge", edge_url)):
                    log(f"wrk {mode}: {path} ({args.duration}s, {args.connections} connections)")
                    rows.append((mode, path, wrk(url, args, close)))
        finally:
            for prefix in started:
                nginx(prefix, "-s", "quit")

    print(f"edge TLS benchmark: wrk -t{args.threads} -c{args.connections} -d{args.duration}s on loopback, "
          "worker_processes 1 each")  # fmt: skip
    print(f"{'mode':<15} {'path':<26} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  socket errors")
    for mode, path, r in rows:
        figures = f"{r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['non2xx']:>8}"
        print(f"{mode:<15} {path:<26} {figures}  {r['socket_errors']}")
    for mode in ("keepalive", "new-connection"):
        plain, through = (r for m, dummy, r in rows if m == mode)
        print(f"{mode}: edge/plain throughput ratio {through['rps'] / plain['rps']:.2f}, "
              f"p99 ratio {through['p99'] / plain['p99']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
