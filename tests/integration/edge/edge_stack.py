"""Helpers for the edge integration tests.

The stackops.platform.edge role is applied to localhost with every path in a temporary prefix
(edge_manage_nginx: false, so the controller's own nginx and /etc are never touched); a throwaway
nginx then runs that configuration on 127.0.0.1:<free ports> in front of tiny backends that answer
with their name and the headers they received. Client source addresses 127.0.0.x stand for
different clients (the whole 127/8 is loopback on Linux).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_spec = importlib.util.spec_from_file_location(
    "integration_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
)
_integration = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("integration_conftest", _integration)
_spec.loader.exec_module(_integration)
# The shared runner of tests/integration/conftest.py (session fixtures cannot use its function-scoped fixture).
run_playbook = _integration.run_playbook
REPO_ROOT = _integration.REPO_ROOT

MAINTENANCE_OPERATOR = "127.0.0.3"
RATE_LIMIT_EXEMPT = "127.0.0.4"
TRUSTED_PROXY = "127.0.0.9"

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

MAIN_CONF = """\
user root;
daemon on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    # As Debian's nginx.conf: the edge must turn compression off itself.
    gzip on;
    client_body_temp_path {prefix}/tmp/client;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/edge.conf;
}}
"""


def role_play(role_vars: dict[str, Any], tasks_from: str | None = None) -> list[dict[str, Any]]:
    include: dict[str, Any] = {"name": "stackops.platform.edge"}
    if tasks_from:
        include["tasks_from"] = tasks_from
    return [
        {
            "name": "apply the edge role",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "Apply the role", "ansible.builtin.include_role": include, "vars": role_vars}],
        }
    ]


def failure_messages(run) -> str:
    """Every failure message of a run, the failed items of a loop included."""
    messages = []
    for event in run.results:
        if event["event"] == "runner_on_failed":
            messages.append(str(event["res"].get("msg", "")))
            messages.extend(str(item.get("msg", "")) for item in event["res"].get("results", []) if item.get("failed"))
    return " ".join(messages)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Backend:
    """Answers every GET/POST with 200 and JSON {backend, path, headers} (the request headers it received)."""

    def __init__(self, name: str):
        self.name = name
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle holds the body until the client's
            # delayed ACK (about 40 ms a request on loopback).
            disable_nagle_algorithm = True

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                data = json.dumps(
                    {
                        "backend": backend.name,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # Headers the edge replaces with its own.
                self.send_header("X-Request-ID", "from-the-backend")
                self.send_header("Server", f"backend-{backend.name}")
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

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


class Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class LoopbackTLS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and certificate check for `server_name` (no DNS for test names)."""

    def __init__(self, server_name: str, port: int, context: ssl.SSLContext, source: str):
        super().__init__(server_name, port, timeout=5, context=context, source_address=(source, 0))
        self.edge_context = context

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout, self.source_address)
        self.sock = self.edge_context.wrap_socket(sock, server_hostname=self.host)


class Edge:
    """A role-rendered edge in a temporary prefix, served by a throwaway nginx."""

    def __init__(self, prefix: Path):
        self.prefix = prefix
        for sub in ("logs", "tmp", "etc", "state"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.https_port = free_port()
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(MAIN_CONF.format(prefix=prefix))
        self.ca_dir = prefix / "ca"

    def role_vars(self, apps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        base = {
            "edge_manage_nginx": False,
            "edge_nginx_conf": str(self.conf),
            "edge_nginx_site": str(self.prefix / "edge.conf"),
            "edge_config_dir": str(self.prefix / "etc"),
            "edge_state_dir": str(self.prefix / "state"),
            "edge_log_dir": str(self.prefix / "logs"),
            "edge_tls_local_ca": True,
            "edge_tls_local_ca_dir": str(self.ca_dir),
            "edge_listen_address": "127.0.0.1",
            "edge_http_port": self.http_port,
            "edge_https_port": self.https_port,
            "edge_server_names": ["localhost"],
            "edge_environment": "staging",
            "edge_apps": apps,
        }
        base.update(extra)
        return base

    @property
    def site(self) -> Path:
        return self.prefix / "edge.conf"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args], capture_output=True, text=True, check=False
        )

    def start(self):
        started = self.nginx()
        assert started.returncode == 0, f"nginx did not start: {started.stderr} {self.error_log()}"
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, f"nginx does not listen on {self.https_port}: {self.error_log()}"
                time.sleep(0.1)

    def stop(self):
        self.nginx("-s", "quit")
        pid_file = self.prefix / "nginx.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_file.exists():
            subprocess.run(["kill", "-TERM", pid_file.read_text().strip()], check=False)

    def error_log(self) -> str:
        log = self.prefix / "logs" / "error.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def flag(self, app: str) -> Path:
        return self.prefix / "state" / "maintenance" / app

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def request(
        self,
        path: str = "/",
        *,
        host: str = "localhost",
        source: str = "127.0.0.1",
        https: bool = True,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One request on a fresh connection from `source`, with SNI and Host `host`, certificate verified."""
        if https:
            conn: http.client.HTTPConnection = LoopbackTLS(host, self.https_port, self.ssl_context(), source)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5, source_address=(source, 0))
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            answer = conn.getresponse()
            return Answer(answer.status, answer.headers, answer.read())
        finally:
            conn.close()


def s_client(port: int, *args: str) -> subprocess.CompletedProcess:
    """openssl s_client handshake against 127.0.0.1:port (SECLEVEL=0 so the client itself offers old protocols)."""
    return subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
