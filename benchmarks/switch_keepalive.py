"""Keep-alive clients across blue/green switches: symlink routing (no reload) against the reload-based switch.

On loopback only: a throwaway nginx (own prefix in a temporary directory, 127.0.0.1:<free port>) in front of two
tiny backends (one process per colour), configured like the api role's site (split_clients slots, a symlink
resolved per request, map $realpath_root to the colour's upstream with keepalive). wrk (Debian package; it never
retries) holds keep-alive connections through nginx while stackops.platform.blue_green switches colours
--switches times, first with routing_dir (symlink routing), then, as the contrast in the same run, with the
reload-based layout (upstream file rewritten, nginx -s reload). Prints requests, non-2xx and socket errors of
each. Exits 1 when the symlink routing saw a non-2xx answer or a socket error.

    . scripts/env.sh && python benchmarks/switch_keepalive.py [--switches 10] [--interval 1.0] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = "bench"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk")
MAX_SWITCHES = 30
MAX_INTERVAL = 2.0

BACKEND = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
color = sys.argv[1]
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    def do_GET(self):
        data = color.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Color", color)
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.request_queue_size = 512
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
"""

# The api role's routing file and site (roles/api/templates/upstream.conf.j2, nginx-site.conf.j2), trimmed.
NGINX_CONF = """\
daemon on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/tmp/client;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    log_format main '$status upstream=$upstream_addr color=${app}_color';
    include {prefix}/{layout}.conf;
{extra}    server {{
        listen 127.0.0.1:{port};
        access_log {prefix}/logs/access.log main;
        location / {{
{location}
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

ROUTED_LOCATION = """\
            root {routing}/split/slot${app}_slot;
            if (${app}_backend = "") {{ return 503; }}
            proxy_pass http://${app}_backend;"""

ROUTING_FILE = """\
# stackops routing: {routing}
upstream {app}_blue {{ server {blue}; keepalive 32; }}
upstream {app}_green {{ server {green}; keepalive 32; }}
split_clients "${{request_id}}" ${app}_slot {{ {slots} * 9; }}
map $realpath_root ${app}_backend {{ default ""; "~/blue$" {app}_blue; "~/green$" {app}_green; }}
map $realpath_root ${app}_color {{ default none; "~/blue$" blue; "~/green$" green; }}
"""

RELOAD_LOCATION = "            proxy_pass http://{app}_backend;"
RELOAD_EXTRA = '    map $host ${app}_color {{ default "-"; }}\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_http(url: str, want: str | None = None, timeout: float = 10.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=1) as answer:
                body = answer.read().decode()
                if want is None or body == want:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer {want or 'anything'} within {timeout}s")
        time.sleep(0.1)


class Bench:
    def __init__(self, prefix: Path):
        self.prefix = prefix
        # nginx workers (user nobody) resolve the routing links: they must traverse the directories.
        prefix.chmod(0o755)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.upstreams = {color: f"127.0.0.1:{free_port()}" for color in ("blue", "green")}
        self.routing = prefix / "routing" / APP
        self.backends = []
        for sub in ("logs", "tmp", "state", "routing"):
            (prefix / sub).mkdir()

    def start_backends(self) -> None:
        for color, address in self.upstreams.items():
            port = address.rsplit(":", 1)[1]
            self.backends.append(subprocess.Popen([sys.executable, "-c", BACKEND, color, port]))
        for address in self.upstreams.values():
            wait_http(f"http://{address}/")

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        argv = [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def configure(self, layout: str) -> None:
        """Write nginx.conf for a layout ('routed' or 'reload'); the module writes/keeps the included file."""
        if layout == "routed":
            slots = " ".join(f"10% {i};" for i in range(9))
            text = ROUTING_FILE.format(routing=self.routing, app=APP, slots=slots, **self.upstreams)
            (self.prefix / "routed.conf").write_text(text)
            location = ROUTED_LOCATION.format(routing=self.routing, app=APP)
        else:
            upstream = f"upstream {APP}_backend {{ server {self.upstreams['blue']}; keepalive 32; }}\n"
            (self.prefix / "reload.conf").write_text(upstream)
            location = RELOAD_LOCATION.format(app=APP)
        extra = RELOAD_EXTRA.format(app=APP) if layout == "reload" else ""
        conf = NGINX_CONF.format(
            prefix=self.prefix, port=self.port, app=APP, layout=layout, location=location, extra=extra
        )
        (self.prefix / "nginx.conf").write_text(conf)

    def switch_params(self, layout: str, color: str) -> dict:
        params = {
            "name": APP,
            "color": color,
            "upstreams": self.upstreams,
            "state_file": str(self.prefix / "state" / f"{APP}-{layout}.json"),
            "upstream_file": str(self.prefix / f"{layout}.conf"),
            "health_path": "/",
            "healthy_threshold": 1,
            "health_interval": 0.05,
            "health_timeout": 5,
            "verify_url": self.url,
            "verify_header": "X-Color",
            "nginx_binary": NGINX,
            "nginx_prefix": str(self.prefix),
            "nginx_conf": str(self.prefix / "nginx.conf"),
        }
        if layout == "routed":
            params["routing_dir"] = str(self.routing)
        return params

    def run(self, layout: str, switches: int, interval: float, connections: int) -> dict:
        switch = import_switch(self.prefix)

        def runner(argv):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            return done.returncode, done.stdout, done.stderr

        self.configure(layout)
        # Initial routing before nginx (re)loads this layout: nothing to verify through nginx yet.
        switch(self.switch_params(layout, "blue") | {"verify_url": None, "verify_header": None}, runner)
        started = self.nginx() if not (self.prefix / "nginx.pid").exists() else self.nginx("-s", "reload")
        if started.returncode != 0:
            raise SystemExit(f"nginx ({layout}): {started.stderr}")
        wait_http(self.url, "blue")
        if layout == "routed":
            # The reload above only loads this layout's configuration; the switches below must not need one.
            time.sleep(1.0)
        (self.prefix / "logs" / "access.log").write_text("")
        seconds = int(switches * interval + 3)
        wrk = subprocess.Popen(
            [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", self.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(1.0)
        durations = []
        color = "blue"
        for _switch in range(switches):
            color = "green" if color == "blue" else "blue"
            began = time.monotonic()
            result = switch(self.switch_params(layout, color), runner)
            durations.append(time.monotonic() - began)
            assert result["active"] == color, result
            time.sleep(interval)
        out, _err = wrk.communicate(timeout=seconds + 30)
        return parse_wrk(out) | {
            "layout": layout,
            "switches": switches,
            "switch_p50_ms": round(sorted(durations)[len(durations) // 2] * 1000, 1),
            "colors": color_counts(self.prefix / "logs" / "access.log"),
        }

    def stop(self) -> None:
        self.nginx("-s", "quit")
        for proc in self.backends:
            proc.terminate()
        for proc in self.backends:
            proc.wait(timeout=10)


def import_switch(workdir: Path):
    """The module's switch, imported as the module does (ansible_collections.stackops.platform...)."""
    ns = workdir / "collections" / "ansible_collections" / "stackops"
    if not ns.exists():
        ns.mkdir(parents=True)
        (ns / "platform").symlink_to(REPO_ROOT)
        sys.path.insert(0, str(workdir / "collections"))
    from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import switch  # noqa: PLC0415

    return switch


def parse_wrk(out: str) -> dict:
    requests = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not requests:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    errors = [int(x) for x in sock.groups()] if sock else [0, 0, 0, 0]
    return {
        "requests": int(requests.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(errors),
        "socket_detail": dict(zip(("connect", "read", "write", "timeout"), errors, strict=True)),
        "rps": float(rate.group(1)) if rate else 0.0,
    }


def color_counts(path: Path) -> dict:
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key = line.split(" ", 1)[0] + " " + line.rsplit("color=", 1)[-1]
        counts[key] = counts.get(key, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two switches")
    parser.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections")
    parser.add_argument("--no-contrast", action="store_true", help="skip the reload-based run")
    args = parser.parse_args()
    if not 1 <= args.switches <= MAX_SWITCHES or not 0.2 <= args.interval <= MAX_INTERVAL:
        parser.error(f"--switches 1..{MAX_SWITCHES}, --interval 0.2..{MAX_INTERVAL} (runs stay under 30 s each)")
    if not WRK or not os.path.exists(NGINX):
        parser.error("needs nginx and wrk (apt-get install nginx wrk)")
    with tempfile.TemporaryDirectory(prefix="switch-keepalive-") as tmp:
        bench = Bench(Path(tmp))
        results = []
        try:
            bench.start_backends()
            log(f"symlink routing: {args.switches} switches under wrk -c{args.connections}")
            results.append(bench.run("routed", args.switches, args.interval, args.connections))
            if not args.no_contrast:
                log(f"reload-based switch (contrast): {args.switches} switches")
                results.append(bench.run("reload", args.switches, args.interval, args.connections))
        finally:
            bench.stop()
    print(f"{'switch':<28}{'requests':>10}{'req/s':>9}{'non-2xx':>9}{'socket errors':>15}{'switch p50':>12}")
    for res in results:
        name = "symlink routing (no reload)" if res["layout"] == "routed" else "upstream file + reload"
        print(
            f"{name:<28}{res['requests']:>10}{res['rps']:>9.0f}{res['non_2xx']:>9}{res['socket_errors']:>15}"
            f"{res['switch_p50_ms']:>10}ms"
        )
    for res in results:
        print(f"{res['layout']}: socket errors {res['socket_detail']}, answers by status/colour {res['colors']}")
    routed = results[0]
    ok = routed["non_2xx"] == 0 and routed["socket_errors"] == 0
    print(f"symlink routing: {'PASS' if ok else 'FAIL'} (non-2xx and socket errors must both be 0)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
