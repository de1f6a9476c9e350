"""A throwaway nginx logging in the api role's format, in front of the sample app as blue and green, with load.

nginx runs with its own prefix, config, pid file and logs in tmp, on 127.0.0.1:<free port>; its log_format is the
one in roles/api/templates/nginx-site.conf.j2 (read from the template, so the test follows it). Each colour is the
real sample app (sample_app_STANDIN_backends.py: its /health treats the database and Redis as up, since neither
runs on the controller). The playbook tasks call `systemctl reload nginx` and `nginx -t`; a directory of
STANDIN shims on PATH sends both to this nginx (and refuses anything else).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
APP = "app"
TEMPLATE = REPO_ROOT / "roles" / "api" / "templates" / "nginx-site.conf.j2"
LAUNCHER = Path(__file__).resolve().parent / "sample_app_STANDIN_backends.py"

NGINX_CONF = """\
user root;
daemon on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {prefix}/tmp/client;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    map $http_x_request_id $app_req_id {{
        default $request_id;
    }}
    # The api role's routing file defines $app_color from the routing links; this stack switches by rewriting the
    # upstream (the module's reload path), so the field stays empty and the watch goes by the upstream address.
    map $upstream_addr $app_color {{
        default "";
    }}
    {log_format}
    include {prefix}/upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        access_log {prefix}/logs/{app}.access.log app_main;
        location / {{
            proxy_pass http://{app}_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

SYSTEMCTL_SHIM = """#!/bin/sh
# STANDIN for the deploy tasks' `systemctl reload nginx`: reload the test nginx; refuse anything else.
if [ "$1" = reload ] && [ "$2" = nginx ]; then exec {nginx} -p {prefix} -c {conf} -s reload; fi
echo "systemctl STANDIN: only 'reload nginx' is supported, got: $*" >&2
exit 2
"""

NGINX_SHIM = """#!/bin/sh
# STANDIN: the module's `nginx -t` checks the test nginx's configuration.
exec {nginx} -p {prefix} -c {conf} "$@"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_log_format() -> str:
    """The log_format directive of the api role's nginx site, with the template's variable name filled in."""
    text = TEMPLATE.read_text()
    match = re.search(r"^log_format .*?;\s*$", text, re.MULTILINE | re.DOTALL)
    assert match, f"no log_format in {TEMPLATE}"
    directive = match.group(0).replace("{{ _api_nginx_var }}", "app")
    assert "{{" not in directive, f"unexpected template expression in the log_format: {directive}"
    return directive


def get(port: int, path: str = "/") -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


class Colour:
    """The sample app from the repo, as one colour, on its own port."""

    def __init__(self, color: str, workdir: Path, error_ratio: float = 0.0):
        self.color = color
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = dict(os.environ, APP_COLOR=color, APP_HOST="127.0.0.1", APP_PORT=str(self.port), APP_VERSION=color)
        if error_ratio:
            env["APP_ERROR_RATIO"] = str(error_ratio)
        self.log = workdir / f"{color}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, str(LAUNCHER)], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                if get(self.port, "/health")[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, f"{color} exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{color} does not answer: {self.log.read_text()[-2000:]}"
            time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Load:
    """Keep-alive GET / through nginx from a few threads, paced; counts statuses and served colours."""

    def __init__(self, port: int, rate: float = 120.0, threads: int = 3):
        self.port = port
        self.interval = threads / rate
        self.threads = threads
        self.statuses: Counter = Counter()
        self.colours: Counter = Counter()
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _thread in range(threads)]

    def __enter__(self):
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for worker in self._workers:
            worker.join(10)

    def _run(self):
        conn = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                with self._lock:
                    self.statuses[resp.status] += 1
                    self.colours[resp.getheader("X-App-Color", "-")] += 1
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        if conn is not None:
            conn.close()


class WatchStack:
    def __init__(self, prefix: Path):
        self.prefix = prefix
        for sub in ("logs", "tmp", "state", "bin-STANDIN"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        self.conf = prefix / "nginx.conf"
        self.upstream_file = prefix / "upstream.conf"
        self.state_file = prefix / "state" / f"{APP}.json"
        self.access_log = prefix / "logs" / f"{APP}.access.log"
        self.port = free_port()
        self.colours: dict[str, Colour] = {}
        shims = {"systemctl": SYSTEMCTL_SHIM, "nginx": NGINX_SHIM}
        for name, text in shims.items():
            path = prefix / "bin-STANDIN" / name
            path.write_text(text.format(nginx=NGINX, prefix=prefix, conf=self.conf))
            path.chmod(0o755)
        self.path_env = f"{prefix / 'bin-STANDIN'}:{os.environ.get('PATH', '')}"

    # -- processes
    def start_colours(self, green_error_ratio: float = 0.0):
        self.stop_colours()
        self.colours = {
            "blue": Colour("blue", self.prefix),
            "green": Colour("green", self.prefix, error_ratio=green_error_ratio),
        }

    def stop_colours(self):
        for colour in self.colours.values():
            colour.stop()
        self.colours = {}

    @property
    def upstreams(self) -> dict[str, str]:
        return {color: c.address for color, c in self.colours.items()}

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args], capture_output=True, text=True, check=False
        )

    def start_nginx(self):
        self.conf.write_text(
            NGINX_CONF.format(prefix=self.prefix, port=self.port, app=APP, log_format=api_log_format())
        )
        self.point_at("blue", reload=False)
        started = self.nginx()
        assert started.returncode == 0, f"nginx did not start: {started.stderr} {self.error_log()}"

    def point_at(self, color: str, reload: bool = True):
        """Independent of the modules: point nginx at a colour by hand, record it, reload, wait until served."""
        address = self.upstreams[color]
        self.upstream_file.write_text(f"upstream {APP}_backend {{\n    server {address};\n    keepalive 8;\n}}\n")
        self.state_file.write_text(json.dumps({"active": color, "previous": None, "upstream": address}))
        if not reload:
            return
        done = self.nginx("-s", "reload")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while self.served(5) != {color}:
            assert time.monotonic() < deadline, f"nginx did not switch to {color}: {self.error_log()}"
            time.sleep(0.1)

    def stop_nginx(self):
        self.nginx("-s", "quit")
        pid_file = self.prefix / "nginx.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_file.exists():
            subprocess.run(["kill", "-TERM", pid_file.read_text().strip()], check=False)

    def served(self, n: int) -> set[str]:
        return {get(self.port)[1].get("x-app-color", "-") for _attempt in range(n)}

    def error_log(self) -> str:
        log = self.prefix / "logs" / "error.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def nginx_files(self) -> tuple[str, str]:
        return self.upstream_file.read_text(), self.state_file.read_text()

    # -- the deploy tasks under test
    def vars(self, deploy_root: Path, **overrides) -> dict:
        values = {
            "api_app_name": APP,
            "api_deploy_root": str(deploy_root),
            "api_health_path": "/health",
            "api_nginx_upstream_file": str(self.upstream_file),
            "api_nginx_upstream_keepalive": 8,
            "deploy_watch_log_path": str(self.access_log),
            "deploy_verify_header": "X-App-Color",
            "deploy_health_interval": 0.1,
            "deploy_watch_interval": 0.5,
            "__deploy_upstreams": self.upstreams,
            "__deploy_state_file": str(self.state_file),
            "__deploy_verify_url": f"http://127.0.0.1:{self.port}/",
            "__deploy_src": {"__deploy_release_id": "r2"},
            # This nginx has the reload layout (no routing file): switch_color.yml sends no routing_dir.
            "__deploy_routing_dir": "{{ omit }}",
        }
        values.update(overrides)
        return values

    def switch_and_watch_play(self, deploy_root: Path, switch_release: str = "", **overrides) -> list[dict]:
        """deploy_host.yml's steps from the switch on: mark the log, switch to the idle colour, watch.

        switch_release: deploy_host.yml without a watch, the switch puts that release live (current follows).
        """
        tasks_dir = REPO_ROOT / "playbooks" / "tasks"
        return [
            {
                "name": "switch and watch",
                "hosts": "localhost",
                "gather_facts": False,
                "vars": self.vars(deploy_root, **overrides),
                "tasks": [
                    {"name": "Find the active and the idle colour",
                     "ansible.builtin.include_tasks": str(tasks_dir / "active_color.yml")},
                    {"name": "Mark the log", "ansible.builtin.include_tasks": str(tasks_dir / "watch_begin.yml")},
                    {"name": "Switch nginx to the new colour",
                     "ansible.builtin.include_tasks": str(tasks_dir / "switch_color.yml"),
                     "vars": {"__deploy_switch_to": "{{ __deploy_idle }}", "__deploy_switch_release": switch_release}},
                    {"name": "Watch the new colour",
                     "ansible.builtin.include_tasks": str(tasks_dir / "watch_after_switch.yml")},
                ],
            }
        ]  # fmt: skip
