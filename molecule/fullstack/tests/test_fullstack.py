"""End to end on the converged, deployed stack (testinfra runs every test on every host;
each test keeps to the hosts of its group)."""

import json
import time
import urllib.parse

import pytest


def groups(host):
    return host.ansible.get_variables()["group_names"]


def only(host, group):
    if group not in groups(host):
        pytest.skip(f"not a {group} host")


def address(host):
    return host.interface("eth0").addresses[0]


# The app's own nginx: inventories/local/group_vars/all/edge.yml (stackops_app_nginx_port) puts it on 8080, the
# edge's 80/443 being taken on an api host that is its own edge.
APP_NGINX_PORT = 8080


def app_url(host, path):
    return f"http://{address(host)}:{APP_NGINX_PORT}{path}"


def http(host, url, method="GET", data=None, headers=()):
    cmd = ["curl", "-sS", "-m", "10", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method]
    for header in headers:
        cmd += ["-H", header]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data", json.dumps(data)]
    out = host.run(" ".join(["%s"] * (len(cmd) + 1)), *cmd, url)
    assert out.rc == 0, out.stderr
    body, _newline, status = out.stdout.rpartition("\n")
    return int(status), body


def test_request_through_nginx_reaches_api_db_and_redis(host):
    only(host, "api")
    status, body = http(host, app_url(host, "/health"), headers=["X-Request-ID: fullstack-check-1"])
    assert status == 200, body
    health = json.loads(body)
    assert health["db"] == "ok" and health["redis"] == "ok"
    log = host.run("grep -h fullstack-check-1 /var/log/nginx/*.log").stdout
    assert "fullstack-check-1" in log


def test_api_serves_rows_from_postgresql(host):
    only(host, "api")
    status, body = http(host, app_url(host, "/items"))
    assert status == 200
    assert any(item["name"].startswith("fullstack-") for item in json.loads(body)["items"])


def test_worker_processes_a_job(host):
    only(host, "worker")
    status, body = http(host, app_url(host, "/jobs"), method="POST", data={"task": "fullstack"})
    assert status in (200, 201, 202), body
    job = json.loads(body)
    job_id = job.get("id") or job.get("job_id")
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline:
        status, body = http(host, app_url(host, f"/jobs/{job_id}"))
        state = json.loads(body).get("status")
        if state == "done":
            break
        time.sleep(1)
    assert state == "done", body


def test_blue_green_switch_under_load_failed_no_request(host):
    only(host, "api")
    result = json.loads(host.file("/tmp/fullstack-load.json").content_string)
    assert result["total"] > 100
    assert result["failed"] == 0, result


def test_prometheus_every_target_up_and_rules_loaded(host):
    only(host, "monitoring")
    # side_effect's last rollback restarted a colour seconds ago: its last scrape may predate the restart, so
    # wait up to four scrape intervals for a fresh one before calling a target down.
    deadline = time.monotonic() + 60
    while True:
        status, body = http(host, f"http://{address(host)}:9090/api/v1/targets")
        assert status == 200
        targets = json.loads(body)["data"]["activeTargets"]
        down = [(t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
        if not down or time.monotonic() > deadline:
            break
        time.sleep(5)
    jobs = {t["labels"]["job"] for t in targets}
    assert len(targets) >= 5, jobs
    assert not down, down
    status, body = http(host, f"http://{address(host)}:9090/api/v1/rules")
    names = {r["name"] for g in json.loads(body)["data"]["groups"] for r in g["rules"]}
    assert {"TargetDown", "PostgresDown", "RedisDown"} <= names, names


def test_app_histogram_in_prometheus(host):
    only(host, "monitoring")
    status, body = http(host, f"http://{address(host)}:9090/api/v1/query?query=http_request_duration_seconds_count")
    assert status == 200
    assert json.loads(body)["data"]["result"], body


def test_backup_metrics_in_prometheus(host):
    # side_effect ran stackops-pg-backup@app.service on the db host: its textfile metrics travel
    # through that host's node exporter into Prometheus.
    only(host, "monitoring")
    now = float(host.run("date +%s").stdout)

    def series(promql):
        deadline = time.monotonic() + 90
        while True:
            url = f"http://{address(host)}:9090/api/v1/query?query={urllib.parse.quote(promql)}"
            status, body = http(host, url)
            assert status == 200, body
            result = json.loads(body)["data"]["result"]
            if result or time.monotonic() > deadline:
                return result
            time.sleep(3)

    result = series('stackops_pg_backup_last_success_timestamp_seconds{database="app"}')
    assert len(result) == 1, result
    assert result[0]["metric"]["host"] == "fullstack-db", result
    assert now - 3600 < float(result[0]["value"][1]) <= now + 5, result
    assert [float(r["value"][1]) for r in series('stackops_pg_backup_last_run_success{database="app"}')] == [1], result
    assert float(series('stackops_pg_backup_count{database="app"}')[0]["value"][1]) >= 1


def test_grafana_and_jaeger_healthy(host):
    only(host, "monitoring")
    status, body = http(host, f"http://{address(host)}:3000/api/health")
    assert status == 200 and json.loads(body)["database"] == "ok", body
    status, body = http(host, f"http://{address(host)}:14269/")
    assert status == 200, body


def test_restore_kept_previous_database(host):
    only(host, "postgres")
    out = host.run(
        "runuser -u postgres -- psql -Atc \"SELECT datname FROM pg_database WHERE datname LIKE 'app_pre_restore_%'\""
    )
    assert out.rc == 0 and out.stdout.strip(), out.stderr
