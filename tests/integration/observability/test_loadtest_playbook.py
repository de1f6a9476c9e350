"""playbooks/loadtest.yml against a throwaway nginx with limit_req on a loopback free port.

Short stages (a few seconds, tens of RPS) keep the run bounded; the rate-limit stage sends 40 rps at a
10 r/s limit and must see 429s with Retry-After, and the same stage against a location without a limit, with a
limit that answers 503 (nginx's default limit_req_status) or with 429s that do not say when to retry, must fail.
The stage against the edge role's own nginx: tests/integration/edge/test_edge_loadtest.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prom_helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = str(REPO_ROOT / "playbooks" / "loadtest.yml")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """\
user root;
daemon on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    limit_req_zone $binary_remote_addr zone=edge:1m rate=10r/s;
    limit_req_zone $binary_remote_addr zone=edge503:1m rate=10r/s;
    limit_req_zone $binary_remote_addr zone=edgenoretry:1m rate=10r/s;
    default_type text/plain;
    # try_files, not return: return answers in the rewrite phase, before limit_req would run.
    root {prefix}/www;
    server {{
        listen 127.0.0.1:{port};
        location = /limited {{
            limit_req zone=edge burst=5 nodelay;
            limit_req_status 429;
            add_header Retry-After 1 always;
            try_files /ok.txt =404;
        }}
        location = /limited-no-retry-after {{
            limit_req zone=edgenoretry burst=5 nodelay;
            limit_req_status 429;
            try_files /ok.txt =404;
        }}
        location = /limited-503 {{
            limit_req zone=edge503 burst=5 nodelay;
            try_files /ok.txt =404;
        }}
        location / {{ try_files /ok.txt =404; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """nginx on 127.0.0.1:<free port>: / unlimited, /limited at 10 r/s (burst 5) answering 429."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is needed")
    prefix = tmp_path_factory.mktemp("edge")
    (prefix / "tmp").mkdir()
    (prefix / "www").mkdir()
    (prefix / "www" / "ok.txt").write_text("ok\n")
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port))
    subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(prefix)], check=True, capture_output=True)
    subprocess.run([NGINX, "-c", str(conf), "-p", str(prefix)], check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        subprocess.run([NGINX, "-c", str(conf), "-p", str(prefix), "-s", "stop"], check=False, capture_output=True)


def _vars(url, result, **extra):
    return {
        "loadtest_url": url,
        "loadtest_stages": [{"rps": 20, "duration": 4}, {"rps": 40, "duration": 4}],
        "loadtest_p95_seconds": 0.3,
        "loadtest_error_ratio": 0.01,
        # A shared 2-core CI machine: accept 80 % of the target rate as reached (the default is 90 %).
        "loadtest_min_rate_ratio": 0.8,
        "loadtest_result": str(result),
        **extra,
    }


RATE_LIMIT = {"rps": 10, "burst": 5, "stage_rps": 40, "duration": 6, "path": "/limited"}


def test_staged_load_and_rate_limit_pass(playbook, edge, tmp_path):
    result = tmp_path / "result.json"
    run = playbook(PLAYBOOK, inventory="[monitoring]\n", extravars=_vars(edge, result, loadtest_rate_limit=RATE_LIMIT))
    print("\n".join(run.task("Show the figures per stage")["msg"]))
    assert run.failed() == 0, run.results
    figures = json.loads(result.read_text())
    load, limit = figures["stages"][:2], figures["stages"][2]
    for stage, rps in zip(load, (20, 40), strict=True):
        assert stage["passed"], stage
        assert stage["achieved_rps"] >= 0.8 * rps
        assert stage["errors"] == 0 and stage["status_429"] == 0
        assert stage["p50_ms"] <= stage["p95_ms"] <= stage["p99_ms"]
    assert limit["kind"] == "rate_limit" and limit["passed"], limit
    assert limit["status_429"] > 0
    assert limit["status_429_retry_after"] == limit["status_429"]
    # 10 r/s over 6 s plus a burst of 5: about 65 got through, everything else was refused with 429.
    assert limit["requests"] - limit["status_429"] - limit["errors"] <= 10 * 6 * 1.2 + 5 + 1
    assert limit["passed_rps"] < limit["target_rps"] / 2


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/", "no 429 while sending 40 rps over a limit of 10 rps"),
        ("/limited-503", "answers were 5xx or none (a limit should answer 429)"),
        ("/limited-no-retry-after", "429 answers had no Retry-After header"),
    ],
)
def test_rate_limit_stage_fails_without_429(playbook, edge, tmp_path, path, reason):
    result = tmp_path / "result.json"
    extravars = _vars(
        edge,
        result,
        loadtest_stages=[{"rps": 5, "duration": 2}],
        loadtest_rate_limit={**RATE_LIMIT, "path": path, "duration": 4},
    )
    run = playbook(PLAYBOOK, inventory="[monitoring]\n", extravars=extravars)
    assert run.failed() == 1
    limit = json.loads(result.read_text())["stages"][-1]
    print(limit)
    assert not limit["passed"]
    assert any(reason in r for r in limit["reasons"]), limit["reasons"]
    assert reason in str(run.task("Check every stage against the thresholds"))


def test_slow_stage_fails_its_p95_threshold(playbook, edge, tmp_path):
    result = tmp_path / "result.json"
    extravars = _vars(edge, result, loadtest_stages=[{"rps": 10, "duration": 3}], loadtest_p95_seconds=0.000001)
    run = playbook(PLAYBOOK, inventory="[monitoring]\n", extravars=extravars)
    assert run.failed() == 1
    (stage,) = json.loads(result.read_text())["stages"]
    print(stage)
    assert not stage["passed"]
    assert any(reason.startswith("p95 ") for reason in stage["reasons"]), stage["reasons"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"loadtest_url": "ftp://x"}, "Set stackops_public_url"),
        ({"loadtest_stages": [{"rps": 0, "duration": 5}]}, "loadtest_stages[0].rps must be a number above 0"),
        ({"loadtest_rate_limit": {"rps": 10, "stage_rps": 5}}, "must exceed loadtest_rate_limit.rps"),
        ({"loadtest_error_ratio": 2}, "loadtest_error_ratio must be a ratio"),
    ],
)
def test_bad_input_fails_before_any_load(playbook, edge, tmp_path, extra, needle):
    result = tmp_path / "result.json"
    run = playbook(PLAYBOOK, inventory="[monitoring]\n", extravars=_vars(edge, result, **extra))
    assert run.failed() == 1
    failed = [e for e in run.results if e["event"] == "runner_on_failed"]
    assert needle in json.dumps(failed[-1]["res"]), failed[-1]["res"]
    assert not result.exists()
