"""Behaviour an API operator relies on: colour units hardened and bound to loopback, nginx in front with
request ids and stub_status, the app answering with its database and queue, a secret env file."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

APP = "api"
ROOT = "/srv/api"
NGINX = "http://127.0.0.1:80"
BLUE = "http://127.0.0.1:8001"
SCENARIO_DIR = Path(__file__).resolve().parent.parent


def curl(host, url, *args):
    """(status, headers dict lower-cased, body) of one request."""
    out = host.run("curl -s -S -m 10 -D - %s " + " ".join(["%s"] * len(args)), url, *args)
    assert out.rc == 0, out.stderr
    head, _sep, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, body


def journal(host, unit=f"{APP}@blue", lines=50):
    return host.run("journalctl -u %s --no-pager -n %s", unit, str(lines)).stdout


@pytest.fixture(autouse=True)
def journal_on_failure(host, request):
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(journal(host))
        print(host.run("tail -n 20 /var/log/nginx/error.log /var/log/nginx/api.error.log").stdout)


def test_units_exist_and_blue_active(host):
    assert host.file(f"/etc/systemd/system/{APP}@.service").exists
    for color, port in (("blue", 8001), ("green", 8002)):
        dropin = host.file(f"/etc/systemd/system/{APP}@{color}.service.d/10-listen.conf")
        assert f"APP_PORT={port}" in dropin.content_string
    blue = host.service(f"{APP}@blue")
    assert blue.is_running, journal(host)
    assert blue.is_enabled
    # Green has no release yet: not started by the role.
    assert not host.service(f"{APP}@green").is_running


def test_colour_runs_its_linked_release(host):
    link = host.file(f"{ROOT}/colors/blue")
    assert link.is_symlink
    assert link.linked_to == f"{ROOT}/releases/1.0.0"
    pid = host.run("systemctl show -p MainPID --value %s", f"{APP}@blue").stdout.strip()
    assert host.run("readlink /proc/%s/cwd", pid).stdout.strip() == f"{ROOT}/releases/1.0.0"


def test_app_port_only_on_loopback(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":8001")]
    assert listening == ["tcp://127.0.0.1:8001"]


def test_nginx_only_on_configured_address(host):
    listening = [s for s in host.socket.get_listening_sockets() if re.search(r":80$", s)]
    assert listening == ["tcp://127.0.0.1:80"]
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.run("nginx -t").rc == 0


def test_request_through_nginx_reaches_blue(host):
    status, _headers, body = curl(host, NGINX + "/")
    data = json.loads(body)
    assert status == 200
    assert data["color"] == "blue" and data["version"] == "1.0.0" and data["hostname"]


def test_request_id_generated_when_absent(host):
    _status, headers, _body = curl(host, NGINX + "/")
    assert len(headers["x-request-id"]) == 1, headers
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"][0])
    # The app saw the same id nginx returned (one line per request in the journal).
    rid = headers["x-request-id"][0]
    deadline = time.monotonic() + 10
    while f"request_id={rid}" not in journal(host, lines=200) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert f"request_id={rid}" in journal(host, lines=200)
    assert f"req_id={rid}" in host.file("/var/log/nginx/api.access.log").content_string


def test_request_id_echoed_when_given(host):
    _status, headers, _body = curl(host, NGINX + "/", "-H", "X-Request-ID: molecule-abc-123")
    assert headers["x-request-id"] == ["molecule-abc-123"]
    # An unusable id is replaced, not reflected.
    _status, headers, _body = curl(host, NGINX + "/", "-H", "X-Request-ID: <script>")
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"][0])


def test_health_ok_with_db_and_redis(host):
    status, _headers, body = curl(host, NGINX + "/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "db": "ok", "redis": "ok", "version": "1.0.0", "color": "blue"}


def test_fail_health_hook(host):
    marker = f"{ROOT}/releases/1.0.0/FAIL_HEALTH"
    host.run("touch %s", marker)
    try:
        status, _headers, body = curl(host, BLUE + "/health")
        assert status == 503 and "forced" in json.loads(body)["failed"]
    finally:
        host.run("rm -f %s", marker)
    assert curl(host, BLUE + "/health")[0] == 200


def test_items_and_jobs(host):
    status, _headers, body = curl(
        host, NGINX + "/items", "-X", "POST", "-H", "Content-Type: application/json", "-d", '{"name": "molecule-item"}'
    )
    assert status == 201, body
    status, _headers, body = curl(host, NGINX + "/items")
    assert "molecule-item" in [i["name"] for i in json.loads(body)["items"]]
    status, _headers, body = curl(host, NGINX + "/jobs", "-X", "POST", "-d", '{"n": 1}')
    assert status == 202, body
    job = json.loads(body)["id"]
    status, _headers, body = curl(host, NGINX + f"/jobs/{job}")
    assert status == 200 and json.loads(body)["status"] == "queued"
    assert host.run("redis-cli -h 127.0.0.1 LLEN jobs").stdout.strip() != "0"


def test_metrics(host):
    curl(host, NGINX + "/")
    _status, _headers, body = curl(host, BLUE + "/metrics")
    assert re.search(r'http_requests_total\{method="GET",path="/",status="200"\} [1-9]', body)
    assert 'http_request_duration_seconds_bucket{le="+Inf"}' in body
    assert "http_request_errors_total" in body
    assert 'app_info{version="1.0.0",color="blue"} 1' in body


def test_nginx_status_from_loopback(host):
    status, _headers, body = curl(host, NGINX + "/nginx_status")
    assert status == 200 and "Active connections" in body


def test_env_file_secret(host):
    env = host.file(f"{ROOT}/shared/.env")
    assert env.mode == 0o600
    assert env.user == APP and env.group == APP
    assert host.file(f"{ROOT}/shared").mode == 0o750
    pid = host.run("systemctl show -p MainPID --value %s", f"{APP}@blue").stdout.strip()
    environ = dict(
        line.split("=", 1) for line in host.run("tr '\\0' '\\n' < /proc/%s/environ", pid).stdout.splitlines()
    )
    assert environ["APP_GREETING"] == 'hello $USER "quoted"'
    assert environ["APP_COLOR"] == "blue" and environ["APP_PORT"] == "8001"


def test_app_user_has_no_login_shell(host):
    user = host.user(APP)
    assert user.shell == "/usr/sbin/nologin"
    assert host.run("systemctl show -p User --value %s", f"{APP}@blue").stdout.strip() == APP


def test_systemd_hardening(host):
    props = host.run(
        "systemctl show %s -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p ProtectHome "
        "-p CapabilityBoundingSet -p RestrictAddressFamilies -p ReadWritePaths -p TimeoutStopUSec",
        f"{APP}@blue",
    ).stdout
    for expected in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                     "CapabilityBoundingSet=\n", f"ReadWritePaths={ROOT}/shared", "TimeoutStopUSec=30s"):
        assert expected in props + "\n", props
    assert "AF_INET" in props
    # The release is read-only for the app.
    out = host.run("runuser -u %s -- touch %s", APP, f"{ROOT}/releases/1.0.0/x")
    assert out.rc != 0


def nginx_workers(host):
    master = host.file("/run/nginx.pid").content_string.strip()
    return set(host.run("pgrep -P %s", master).stdout.split())


def test_routing_file_and_links_route_to_blue(host):
    text = host.file("/etc/nginx/conf.d/api_upstream.conf").content_string
    assert "# stackops routing: /var/lib/stackops/routing/api" in text
    assert "upstream api_blue" in text and "server 127.0.0.1:8001;" in text
    assert "upstream api_green" in text and "server 127.0.0.1:8002;" in text
    assert host.file("/var/lib/stackops/routing/api/split").linked_to == "/var/lib/stackops/routing/api/sets/bbbbbbbbbb"
    assert host.run("readlink -f /var/lib/stackops/routing/api/split/slot9").stdout.strip().endswith("/blue")
    # The access log names the colour and its upstream address.
    curl(host, NGINX + "/")
    last = host.file("/var/log/nginx/api.access.log").content_string.strip().splitlines()[-1]
    assert "upstream=127.0.0.1:8001 " in last and last.endswith("color=blue"), last


def test_sigterm_stops_quickly_despite_keepalive(host):
    for _attempt in range(5):
        curl(host, NGINX + "/")  # leaves idle keepalive connections from nginx to blue
    started = time.monotonic()
    assert host.run("systemctl restart %s", f"{APP}@blue").rc == 0
    assert time.monotonic() - started < 10
    assert "stopped (closed" in journal(host, lines=100)
    deadline = time.monotonic() + 20
    while curl(host, NGINX + "/health")[0] != 200:
        assert time.monotonic() < deadline, journal(host)
        time.sleep(0.5)


def run_playbook(name):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or "ansible-playbook"
    run = subprocess.run(
        [ansible_playbook, "-i", os.path.dirname(inventory), str(SCENARIO_DIR / name)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"}, check=False,
    )
    return run.returncode, re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)


def test_invalid_nginx_setting_refused_and_site_kept(host):
    site = "/etc/nginx/sites-available/api.conf"
    before = host.file(site).sha256sum
    rc, output = run_playbook("broken_nginx.yml")
    assert rc != 0, output[-3000:]
    assert "nginx rejected the configuration" in output, output[-3000:]
    assert host.file(site).sha256sum == before
    assert host.run("nginx -t").rc == 0
    assert "~" not in host.run("ls /etc/nginx/sites-available").stdout  # no backup left behind
    assert curl(host, NGINX + "/health")[0] == 200


def test_deploy_contract_green_then_role_keeps_upstream(host):
    workers = nginx_workers(host)
    rc, output = run_playbook("deploy_green.yml")
    assert rc == 0, output[-3000:]
    assert host.service(f"{APP}@green").is_running
    assert host.file(f"{ROOT}/colors/green").linked_to == f"{ROOT}/releases/1.0.1"
    status, _headers, body = curl(host, NGINX + "/")
    assert status == 200 and json.loads(body)["color"] == "green" and json.loads(body)["version"] == "1.0.1"
    # Blue still runs the old release (instant rollback target).
    assert json.loads(curl(host, BLUE + "/")[2])["version"] == "1.0.0"
    # The switch renamed a symlink: nginx was not reloaded (the same workers serve).
    assert host.file("/var/lib/stackops/routing/api/split").linked_to == "/var/lib/stackops/routing/api/sets/gggggggggg"
    assert nginx_workers(host) == workers
    # Re-applying the role leaves the routing alone and changes nothing.
    rc, output = run_playbook("converge.yml")
    assert rc == 0, output[-3000:]
    assert re.search(r"api-instance\s*:\s*ok=\d+\s+changed=0\s", output), output[-2000:]
    assert host.file("/var/lib/stackops/routing/api/split").linked_to == "/var/lib/stackops/routing/api/sets/gggggggggg"
    assert json.loads(curl(host, NGINX + "/")[2])["color"] == "green"
    assert nginx_workers(host) == workers
