"""Throwaway Prometheus test instances (and node exporter) on loopback free ports, for the observability tests.

`backfilled_prometheus` loads OpenMetrics text with `promtool tsdb create-blocks-from openmetrics`, then serves
it from a Prometheus that scrapes nothing, so a test can assert exact figures. `scraping_prometheus` scrapes the
given targets every second. Both stop their process on exit and print its log when it would not start.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need(*binaries: str | None) -> None:
    if not all(binaries):
        pytest.skip("prometheus, promtool and prometheus-node-exporter (Debian packages) are needed")


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


@contextlib.contextmanager
def _process(argv: list[str], ready_url: str, log: Path):
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(ready_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _prometheus(workdir: Path, scrape_configs: list[dict]):
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": scrape_configs}))
    port = free_port()
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Backfilled samples are from a fixed past date: never let retention delete them.
        "--storage.tsdb.retention.time=100y",
    ]
    return _process(argv, f"http://127.0.0.1:{port}/-/ready", workdir / "prometheus.log"), f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def backfilled_prometheus(workdir: Path, openmetrics: str):
    """A Prometheus test instance serving exactly the samples in `openmetrics`; yields its base URL."""
    need(PROMETHEUS, PROMTOOL)
    source = workdir / "samples.om"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(openmetrics)
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(workdir / "data")],
        check=True,
        capture_output=True,
        text=True,
    )
    proc, url = _prometheus(workdir, [])
    with proc:
        yield url


@contextlib.contextmanager
def scraping_prometheus(workdir: Path, job: str, targets: list[str]):
    """A Prometheus test instance scraping `targets` every second; yields its base URL."""
    need(PROMETHEUS)
    proc, url = _prometheus(workdir, [{"job_name": job, "static_configs": [{"targets": targets}]}])
    with proc:
        yield url


@contextlib.contextmanager
def node_exporter(workdir: Path, textfile_dir: Path):
    """A node exporter test instance with only the textfile collector; yields host:port."""
    need(NODE_EXPORTER)
    port = free_port()
    argv = [
        NODE_EXPORTER,
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    with _process(argv, f"http://127.0.0.1:{port}/metrics", workdir / "node_exporter.log"):
        yield f"127.0.0.1:{port}"


def query(base_url: str, expr: str, at: float | str | None = None) -> dict:
    """The JSON answer of an instant query."""
    params = {"query": expr}
    if at is not None:
        params["time"] = str(at)
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)
