"""The edge's exporter: the real mtail binary runs the role's program over the logs a real edge nginx writes.

The edge role renders the nginx configuration and the mtail program into a temporary prefix (edge_manage_nginx:
false, nothing under /etc is touched); a throwaway nginx serves it on free loopback ports, mtail reads its logs
and serves /metrics on a free port. Requests of known statuses go through the edge; the scraped counters must
show exactly them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
from edge_stack import Edge, failure_messages, free_port, role_play, run_playbook

MTAIL = shutil.which("mtail") or "/usr/bin/mtail"
API_MAX = 3

pytestmark = pytest.mark.skipif(shutil.which("mtail") is None, reason="mtail missing: run scripts/setup.sh")


class StatusBackend:
    """Answers GET /status/<code> with that status (any other path: 200)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle holds the body until the client's
            # delayed ACK (about 40 ms a request on loopback).
            disable_nagle_algorithm = True

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                code = int(parts[-1]) if len(parts) >= 2 and parts[-2] == "status" else 200
                body = json.dumps({"status": code}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def scrape(url: str) -> dict[str, float]:
    """Prometheus text exposition as {'name{label="v",...}': value} (labels as mtail writes them, sorted)."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def series(name: str, **labels: str) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    backend = StatusBackend()
    edge = Edge(tmp_path_factory.mktemp("edge-mtail"))
    apps = [
        {"name": "shop", "backends": [backend.address]},
        {
            "name": "api",
            "path_prefix": "/api/v1",
            "backends": [backend.address],
            "rate_limit": {"window": 60, "max": API_MAX},
        },
        # Nothing listens on its only backend: the edge answers 502.
        {"name": "gone", "path_prefix": "/gone", "backends": [f"127.0.0.1:{free_port()}"]},
    ]
    edge.vars = edge.role_vars(apps, edge_mtail_enabled=True, edge_mtail_program_dir=str(edge.prefix / "etc" / "mtail"))
    edge.first_run = run_playbook(role_play(edge.vars), tmp_path_factory.mktemp("edge-mtail-runner"))
    assert edge.first_run.failed() == 0, failure_messages(edge.first_run)
    edge.start()
    port = free_port()
    log = edge.prefix / "mtail.log"
    program_dir = edge.prefix / "etc" / "mtail"
    argv = [MTAIL, "--progs", str(program_dir), "--logs", str(edge.prefix / "logs" / "edge-*.access.log"),
            "--logs", str(edge.prefix / "logs" / "edge.access.log"), "--address", "127.0.0.1", "--port", str(port),
            "--emit_prog_label=false", "--logtostderr"]  # fmt: skip
    with log.open("w") as out:
        mtail = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                scrape(url)
                break
            except OSError:
                assert mtail.poll() is None, f"mtail exited: {log.read_text()}"
                assert time.monotonic() < deadline, f"mtail does not answer on {url}: {log.read_text()}"
                time.sleep(0.2)
        yield edge, url, program_dir, log
    finally:
        mtail.terminate()
        mtail.wait(timeout=10)
        edge.stop()
        backend.stop()


def wait_for(url: str, wanted: dict[str, float], log, timeout: float = 15.0) -> dict[str, float]:
    """Scrape until every wanted series has its value (mtail reads the logs shortly after nginx writes them)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if all(samples.get(k) == v for k, v in wanted.items()) or time.monotonic() > deadline:
            missing = {k: (samples.get(k), v) for k, v in wanted.items() if samples.get(k) != v}
            assert not missing, f"(seen, wanted) per series: {missing}\nmtail log: {log.read_text()[-2000:]}"
            return samples
        time.sleep(0.25)


def test_role_writes_the_program_it_checked(stack):
    _edge, _url, program_dir, _log = stack
    program = (program_dir / "edge_access.mtail").read_text()
    assert program.startswith("#"), "the program starts with the ansible_managed header"
    assert "histogram edge_http_request_duration_seconds by app" in program


def test_counters_show_each_response_by_app_and_status_class(stack):
    edge, url, _program_dir, log = stack
    statuses = {200: 4, 404: 3, 500: 2}
    for code, times in statuses.items():
        for _attempt in range(times):
            assert edge.request(f"/status/{code}", source="127.0.0.21").status == code
    assert edge.request("/gone/x", source="127.0.0.22").status == 502
    assert edge.request("/", https=False, source="127.0.0.23").status == 301
    refused = []
    for _request in range(API_MAX + 2):
        answer = edge.request("/api/v1/x", source="127.0.0.24")
        assert answer.status in (200, 429)
        if answer.status == 429:
            refused.append(answer.header("Retry-After"))
    assert len(refused) == 2 and all(refused), refused

    samples = wait_for(
        url,
        {
            series("edge_http_requests_total", app="shop", status_class="2xx"): 4,
            series("edge_http_requests_total", app="shop", status_class="4xx"): 3,
            series("edge_http_requests_total", app="shop", status_class="5xx"): 2,
            series("edge_http_requests_total", app="gone", status_class="5xx"): 1,
            series("edge_http_requests_total", app="-", status_class="3xx"): 1,
            series("edge_http_requests_total", app="api", status_class="2xx"): API_MAX,
            series("edge_http_requests_total", app="api", status_class="4xx"): 2,
            series("edge_http_rate_limited_total", app="api"): 2,
            series("edge_http_request_duration_seconds_count", app="shop"): 9,
            series("edge_http_request_duration_seconds_bucket", app="shop", le="+Inf"): 9,
        },
        log,
    )
    assert not [k for k in samples if k.startswith("edge_log_lines_unparsed_total")], "every edge log line parsed"
    assert samples[series("edge_http_response_bytes_total", app="shop")] > 0


def test_role_refuses_unsorted_buckets_before_any_change(stack, tmp_path):
    edge, _url, program_dir, _log = stack
    before = (program_dir / "edge_access.mtail").read_text()
    run = run_playbook(role_play({**edge.vars, "edge_mtail_duration_buckets": [0.5, 0.1]}), tmp_path / "runner")
    assert run.failed() == 1
    assert "edge_mtail_duration_buckets" in failure_messages(run)
    assert "[0.5, 0.1]" in failure_messages(run)
    assert (program_dir / "edge_access.mtail").read_text() == before
