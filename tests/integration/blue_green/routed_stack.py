"""A throwaway nginx configured by the api role's own templates (symlink routing), in front of two backends.

The role's routing file (upstream.conf.j2) and site (nginx-site.conf.j2) are rendered by ansible's template
module with test values (own routing directory in tmp, 127.0.0.1:<free port>), included by a minimal nginx.conf
in the same prefix. Switches are done by stackops.platform.blue_green with routing_dir.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from blue_green_stack import NGINX, Backend, free_port, get

APP = "bgroute"
ROLE_TEMPLATES = Path(__file__).resolve().parents[3] / "roles" / "api" / "templates"

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
    include {prefix}/conf.d/*.conf;
    include {prefix}/sites/*.conf;
}}
"""


class RoutedStack:
    def __init__(self, prefix: Path, name: str = APP):
        self.prefix = prefix
        self.name = name
        self.conf = prefix / "nginx.conf"
        self.routing_file = prefix / "conf.d" / f"{name}_upstream.conf"
        self.site = prefix / "sites" / f"{name}.conf"
        self.routing_dir = prefix / "routing" / name
        self.state_file = prefix / "state" / f"{name}.json"
        self.access_log = Path(f"/var/log/nginx/{name}.access.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.backends = {color: Backend(color) for color in ("blue", "green")}
        for sub in ("logs", "tmp", "state", "routing", "conf.d", "sites"):
            (prefix / sub).mkdir(exist_ok=True)

    @property
    def upstreams(self) -> dict[str, str]:
        return {color: b.address for color, b in self.backends.items()}

    def template_vars(self) -> dict:
        ports = {color: int(address.rsplit(":", 1)[1]) for color, address in self.upstreams.items()}
        return {
            "api_app_name": self.name,
            "_api_nginx_var": self.name,
            "_api_routing_dir": str(self.routing_dir),
            "api_nginx_upstream_file": str(self.routing_file),
            "api_listen_address": "127.0.0.1",
            "api_ports": ports,
            "api_nginx_upstream_keepalive": 8,
            "api_nginx_listen": f"127.0.0.1:{self.port}",
            "api_server_name": "_",
            "api_nginx_status_allow": ["127.0.0.1"],
            "api_nginx_client_max_body_size": "1m",
            "api_nginx_proxy_read_timeout": 10,
        }

    def render_play(self) -> list[dict]:
        tasks = [
            {
                "name": f"Render {src}",
                "ansible.builtin.template": {"src": str(ROLE_TEMPLATES / src), "dest": str(dest), "mode": "0644"},
            }
            for src, dest in (("upstream.conf.j2", self.routing_file), ("nginx-site.conf.j2", self.site))
        ]
        tasks.append(
            {
                "name": "Write nginx.conf",
                "ansible.builtin.copy": {
                    "content": NGINX_CONF.format(prefix=self.prefix),
                    "dest": str(self.conf),
                    "mode": "0644",
                },
            }
        )
        return [
            {
                "name": "render the api role's nginx files",
                "hosts": "localhost",
                "gather_facts": False,
                "vars": self.template_vars(),
                "tasks": tasks,
            }
        ]

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args], capture_output=True, text=True, check=False
        )

    def worker_pids(self) -> set[int]:
        """nginx's worker processes: a reload replaces them all, a symlink switch none."""
        master = (self.prefix / "nginx.pid").read_text().strip()
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", master], capture_output=True, text=True, check=False)
        return {int(pid) for pid in out.stdout.split()}

    def split_target(self) -> str | None:
        link = self.routing_dir / "split"
        return str(link.readlink()) if link.is_symlink() else None

    def nginx_files(self) -> tuple[bytes, bytes, bytes]:
        return tuple(p.read_bytes() for p in (self.conf, self.routing_file, self.site))

    def shares(self, n: int) -> Counter:
        """How many of n requests through nginx each colour answered (non-colour answers count as 'other')."""
        counts: Counter = Counter()
        for _request in range(n):
            status, body = get(self.url)
            counts[body if status == 200 and body in ("blue", "green") else f"other {status}"] += 1
        return counts

    def log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def log_colors(self, lines: list[str]) -> Counter:
        return Counter(m.group(1) for m in (re.search(r" color=(\S+)", line) for line in lines) if m)

    def error_log(self) -> str:
        log = self.prefix / "logs" / "error.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def wait_served(self, color: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.shares(5) != Counter({color: 5}):
            assert time.monotonic() < deadline, f"nginx does not serve {color}: {self.error_log()}"
            time.sleep(0.1)

    def module_args(self, color: str, **options) -> dict:
        args = {
            "name": self.name,
            "color": color,
            "upstreams": self.upstreams,
            "upstream_file": str(self.routing_file),
            "state_file": str(self.state_file),
            "routing_dir": str(self.routing_dir),
            "health_path": "/health",
            "healthy_threshold": 2,
            "health_interval": 0.05,
            "health_timeout": 3,
            "verify_url": self.url,
            "verify_header": "X-Color",
            # A reload would be a failure of this mode: make any attempt fail loudly.
            "nginx_reload_cmd": ["false"],
            "nginx_test_cmd": ["false"],
        }
        args.update(options)
        return args

    def play(self, color: str, **options) -> list[dict]:
        return [
            {
                "name": f"route to {color}",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"name": "Route", "stackops.platform.blue_green": self.module_args(color, **options)}],
            }
        ]
