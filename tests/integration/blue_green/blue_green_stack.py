"""Helpers for the blue_green integration tests.

A throwaway nginx (own prefix, config, pid file and logs in tmp, on 127.0.0.1:<free port>) in front of
two tiny backends, blue and green, that answer with their colour and can be made unhealthy.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

APP = "app"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """\
user root;
daemon on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/client;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{app}_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class Backend:
    """One colour: GET / -> 200 '<colour>' with X-Color, GET /health -> 200 or 503 when unhealthy."""

    def __init__(self, color: str):
        self.color = color
        self.healthy = True
        # True: every /health request flips `healthy` first, so the answers alternate whatever the timing.
        self.flap = False
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer (no Nagle delay between header and body writes on keep-alive connections).
            wbufsize = 65536

            def do_GET(self):
                if self.path == "/health" and backend.flap:
                    backend.healthy = not backend.healthy
                if self.path == "/health" and backend.healthy:
                    status, body = 200, f"{backend.color} ok"
                elif self.path == "/health":
                    status, body = 503, f"{backend.color} unhealthy"
                elif self.path == "/":
                    status, body = 200, backend.color
                else:
                    status, body = 404, "not found"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Color", backend.color)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Stack:
    def __init__(self, prefix: Path):
        self.prefix = prefix
        self.conf = prefix / "nginx.conf"
        self.upstream_file = prefix / "upstream.conf"
        self.state_file = prefix / "state" / f"{APP}.json"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.backends = {color: Backend(color) for color in ("blue", "green")}

    @property
    def upstreams(self) -> dict[str, str]:
        return {color: b.address for color, b in self.backends.items()}

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args], capture_output=True, text=True, check=False
        )

    def write_config(self):
        self.conf.write_text(NGINX_CONF.format(prefix=self.prefix, port=self.port, app=APP))

    def reset(self, color: str = "blue"):
        """Independent of the module: point nginx at a colour by hand, record it, reload, wait until served."""
        for backend in self.backends.values():
            backend.healthy = True
            backend.flap = False
        self.write_config()
        self.upstream_file.write_text(f"upstream {APP}_backend {{\n    server {self.upstreams[color]};\n}}\n")
        self.state_file.parent.mkdir(exist_ok=True)
        self.state_file.write_text(json.dumps({"active": color, "previous": None, "upstream": self.upstreams[color]}))
        done = self.nginx("-s", "reload")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while self.served_n(5) != {color}:
            assert time.monotonic() < deadline, f"nginx did not switch to {color}: {self.error_log()}"
            time.sleep(0.1)

    def served_n(self, n: int) -> set[str]:
        """The colours that answered n requests through nginx."""
        return {get(self.url)[1] for dummy in range(n)}

    def files(self) -> tuple[bytes | None, bytes | None]:
        return tuple(p.read_bytes() if p.exists() else None for p in (self.upstream_file, self.state_file))

    def error_log(self) -> str:
        log = self.prefix / "logs" / "error.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def switch_play(self, color: str, **options) -> list[dict]:
        args = {
            "name": APP,
            "color": color,
            "upstreams": self.upstreams,
            "upstream_file": str(self.upstream_file),
            "state_file": str(self.state_file),
            "nginx_binary": NGINX,
            "nginx_prefix": str(self.prefix),
            "nginx_conf": str(self.conf),
            "health_path": "/health",
            "healthy_threshold": 3,
            "health_interval": 0.1,
            "health_timeout": 5,
            "verify_url": self.url,
            "verify_header": "X-Color",
        }
        args.update(options)
        return [
            {
                "name": f"switch to {color}",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"name": "Switch colour", "stackops.platform.blue_green": args}],
            }
        ]
