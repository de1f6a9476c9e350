"""Behaviour a Prometheus user relies on: bound where configured, checked configs, generated
targets and rules, a broken rule refused, and a real alert reaching a receiver exactly once."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

PROM = "http://127.0.0.1:9090"
# prometheus_extra_rules land in their own group file (broken_rule.yml breaks that one).
RULES_FILE = "/etc/prometheus/rules/extra.rules.yml"
RULES_DIR = "/etc/prometheus/rules"
NOTIFICATIONS = "/var/lib/molecule-webhook/notifications.jsonl"
TARGET = "127.0.0.1:9911"
TARGET_UNIT = "molecule-target@9911.service"
# The serving (green) colour: the sample app with APP_ERROR_RATIO=0.5; the idle blue colour runs on 9912.
API_GREEN = "127.0.0.1:9913"
API_GREEN_UNIT = "molecule-sample-app.service"
API_BLUE = "127.0.0.1:9912"
RUNBOOK_BASE = "https://github.com/stackops/platform/blob/main/docs/runbooks.md"
SCENARIO_DIR = Path(__file__).resolve().parent.parent
RUNBOOKS = SCENARIO_DIR.parent.parent / "docs" / "runbooks.md"
GROUP_INTERVAL = 5  # prometheus_alertmanager_group_interval in vars/scenario.yml
WAIT = 120  # bound of every wait

SERVICES = [
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "prometheus-postgres-exporter",
    "prometheus-redis-exporter",
    "prometheus-blackbox-exporter",
]
PORTS = {9090: "prometheus", 9093: "alertmanager", 9100: "node", 9115: "blackbox", 9121: "redis", 9187: "postgres"}
EXPECTED_ALERTS = {
    "TargetDown",
    "PostgresDown",
    "RedisDown",
    "HostHighCpu",
    "HostHighMemory",
    "HostDiskFull",
    "ApiLatencyHigh",
    "ApiErrorRateHigh",
    "PostgresBackupTooOld",
    "PostgresBackupFailed",
    "PostgresBackupMissing",
    "HostFilesystemFillingUp",
    "HostFileDescriptorsHigh",
    "HostClockNotSynchronising",
    "HostClockSkew",
    "PostgresTooManyConnections",
    "RedisMemoryNearMax",
    "RedisRejectedConnections",
    "TlsCertificateExpiringSoon",
    "EndpointProbeFailed",
    "Watchdog",
    "PrometheusConfigReloadFailed",
    "AlertmanagerConfigReloadFailed",
    "ApiErrorBudgetBurn",
    "ApiLatencyBudgetBurn",
}
# One rendered file per template in roles/prometheus/templates/rules/.
EXPECTED_RULE_FILES = {
    f"{g}.rules.yml"
    for g in (
        "api",
        "availability",
        "backups",
        "blackbox",
        "extra",
        "hosts",
        "meta",
        "postgres",
        "redis",
        "slo",
        "slo-budget",
    )
}


def api(host, path):
    out = host.run("curl -sf %s", PROM + path)
    assert out.rc == 0, (path, out.stderr)
    body = json.loads(out.stdout)
    assert body["status"] == "success", body
    return body["data"]


def query(host, promql):
    out = host.run("curl -sf --data-urlencode %s %s", f"query={promql}", PROM + "/api/v1/query")
    assert out.rc == 0, (promql, out.stderr)
    return json.loads(out.stdout)["data"]["result"]


def wait_for(predicate, what, timeout=WAIT, step=2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def alert_names(host):
    return {r["name"] for g in api(host, "/api/v1/rules")["groups"] for r in g["rules"] if r["type"] == "alerting"}


def notifications(host):
    content = host.run("cat %s", NOTIFICATIONS).stdout
    return [json.loads(line)["payload"] for line in content.splitlines() if line.strip()]


def target_group(host):
    """Notifications of the TargetDown group of the end-to-end target only (others fire too)."""
    return [n for n in notifications(host) if n["groupLabels"] == {"alertname": "TargetDown", "instance": TARGET}]


@pytest.fixture(autouse=True)
def journal_on_failure(host, request):
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for svc in SERVICES:
            print(host.run("journalctl -u %s --no-pager -n 30", svc).stdout)


@pytest.mark.parametrize("service", SERVICES)
def test_services_running_and_enabled(host, service):
    svc = host.service(service)
    assert svc.is_running, host.run("journalctl -u %s --no-pager -n 50", service).stdout
    assert svc.is_enabled


@pytest.mark.parametrize("port", sorted(PORTS))
def test_listens_only_on_configured_address(host, port):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")]
    assert listening == [f"tcp://127.0.0.1:{port}"], PORTS[port]


def test_alertmanager_cluster_listener_disabled(host):
    assert not [s for s in host.socket.get_listening_sockets() if s.endswith(":9094")]


def test_deployed_configs_pass_their_checkers(host):
    out = host.run("promtool check config /etc/prometheus/prometheus.yml")
    assert out.rc == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    out = host.run("prometheus-blackbox-exporter --config.check --config.file=/etc/prometheus/blackbox.yml")
    assert out.rc == 0, out.stdout + out.stderr
    out = host.run("amtool check-config /etc/prometheus/alertmanager.yml")
    assert out.rc == 0, out.stdout + out.stderr


SECRET_FILES = [
    "/etc/prometheus/alertmanager.yml",
    "/etc/default/prometheus-postgres-exporter",
    "/etc/default/prometheus-redis-exporter",
]


@pytest.mark.parametrize("path", SECRET_FILES)
def test_secret_files_not_world_readable(host, path):
    f = host.file(path)
    assert f.mode == 0o640
    assert f.user == "root"
    assert f.group == "prometheus"


def test_exporter_credentials_reach_the_exporters(host):
    """The env files parse to the exact secrets, quotes and dollars included."""

    def environ(unit):
        pid = host.run("systemctl show -p MainPID --value %s", unit).stdout.strip()
        return dict(
            line.split("=", 1) for line in host.run("tr '\\0' '\\n' < /proc/%s/environ", pid).stdout.splitlines()
        )

    assert environ("prometheus-redis-exporter")["REDIS_PASSWORD"] == 'molecule-redis-pa$$word-"quoted"'
    dsn = environ("prometheus-postgres-exporter")["DATA_SOURCE_NAME"]
    assert dsn.startswith("postgresql://prometheus_exporter:molecule-monitoring-password-0123@127.0.0.1:5432/")


def test_flags_from_role_variables(host):
    flags = api(host, "/api/v1/status/flags")
    assert flags["web.listen-address"] == "127.0.0.1:9090"
    assert flags["storage.tsdb.retention.time"] == "2d"
    assert flags["storage.tsdb.retention.size"] in {"512MB", "512MiB"}
    assert api(host, "/api/v1/status/config")["yaml"].count("scrape_interval: 5s") >= 1


def test_rule_files_one_per_group(host):
    files = set(host.run("ls %s", RULES_DIR).stdout.split())
    assert files >= EXPECTED_RULE_FILES, files
    # The single file of 0.1.0 is gone (its groups moved into the files above).
    assert not host.file(f"{RULES_DIR}/stackops.rules.yml").exists


def test_rules_loaded(host):
    assert alert_names(host) >= EXPECTED_ALERTS
    for group in api(host, "/api/v1/rules")["groups"]:
        for rule in group["rules"]:
            if rule["type"] != "alerting":
                continue
            # Watchdog's "none" keeps it out of the warning/critical routes (it goes to the dead man's switch).
            assert rule["labels"]["severity"] in {"warning", "critical", "none"}, rule["name"]
            assert {"summary", "description", "runbook_url", "dashboard_url"} <= set(rule["annotations"]), rule["name"]
            assert rule["annotations"]["dashboard_url"].startswith(PROM), rule["name"]


def test_thresholds_come_from_variables(host):
    rules = {
        (r["name"], r["labels"]["severity"]): r
        for g in api(host, "/api/v1/rules")["groups"]
        for r in g["rules"]
        if r["type"] == "alerting"
    }
    assert rules[("TargetDown", "critical")]["duration"] == 10
    assert rules[("ApiLatencyHigh", "warning")]["query"].endswith("> 0.3")
    assert rules[("ApiLatencyHigh", "critical")]["query"].endswith("> 0.5")
    assert rules[("ApiErrorRateHigh", "warning")]["query"].endswith("> 0.01")
    assert rules[("HostHighCpu", "warning")]["query"].endswith("> 80")
    assert rules[("PostgresBackupTooOld", "critical")]["query"].endswith(f"> {26 * 3600}")
    assert "by (instance, host, database)" in rules[("PostgresBackupTooOld", "critical")]["query"]
    assert rules[("PostgresBackupFailed", "warning")]["query"].endswith("== 0")


def test_scrape_targets_generated_from_inventory(host):
    def targets():
        active = api(host, "/api/v1/targets")["activeTargets"]
        return {(t["labels"]["job"], t["labels"]["instance"]): t for t in active}

    found = targets()
    expected = {
        ("prometheus", "127.0.0.1:9090"),
        ("alertmanager", "127.0.0.1:9093"),
        ("node", "127.0.0.1:9100"),
        ("postgres", "127.0.0.1:9187"),
        ("redis", "127.0.0.1:9121"),
        ("api", API_GREEN),
        ("jaeger", "127.0.0.1:14269"),
        ("molecule-target", TARGET),
    }
    assert expected <= set(found), sorted(found)
    assert found[("api", API_GREEN)]["labels"]["colour"] == "green"
    assert found[("api", API_GREEN)]["labels"]["host"] == "prometheus-instance"
    assert found[("node", "127.0.0.1:9100")]["labels"]["host"] == "prometheus-instance"
    # Exporters answer (jaeger does not run in this scenario).
    wait_for(
        lambda: all(
            targets()[key]["health"] == "up" for key in expected if key[0] not in {"jaeger", "molecule-target"}
        ),
        "exporters and fake API to be scraped",
    )


def test_histogram_series_scraped(host):
    for suffix in ("_bucket", "_sum", "_count"):
        metric = f'http_request_duration_seconds{suffix}{{job="molecule-target"}}'
        wait_for(lambda metric=metric: query(host, metric), f"{metric} in Prometheus")
    buckets = query(host, 'http_request_duration_seconds_bucket{job="molecule-target"}')
    assert {"0.1", "+Inf"} <= {b["metric"]["le"] for b in buckets}


def test_slack_template_carries_severity_source_time_and_link(host):
    out = host.run(
        "amtool template render --template.glob=%s --template.text=%s",
        "/etc/prometheus/alertmanager_templates/stackops.tmpl",
        '{{ template "stackops.slack.text" . }}',
    )
    assert out.rc == 0, out.stderr
    for word in ("*Severity:*", "*Source:*", "*Started:*", "|Graph>"):
        assert word in out.stdout


def test_burn_rate_alert_reaches_webhook_with_runbook_link(host):
    """The error hook (50 % of requests answer 500) burns the 1 % budget 50x: the page goes out with its runbook.

    Runs before the TargetDown test, which empties the receiver's file (the page is sent once per repeat interval).
    """
    wait_for(lambda: query(host, 'up{job="api",colour="green"} == 1'), "the serving colour to be scraped")

    def burn_notifications():
        return [
            n
            for n in notifications(host)
            if n["status"] == "firing"
            and n["groupLabels"].get("alertname") == "ApiErrorBudgetBurn"
            and any(a["labels"].get("severity") == "critical" for a in n["alerts"])
        ]

    firing = wait_for(burn_notifications, "the ApiErrorBudgetBurn notification", timeout=240)
    alert = next(a for a in firing[0]["alerts"] if a["labels"]["severity"] == "critical")
    assert alert["labels"]["slo"] == "availability"
    assert alert["labels"]["window"] == "2m/30s"
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#api-error-budget-burn"
    # The link leads somewhere: the runbook has that section (GitHub's anchor of its heading).
    assert "\n## API error budget burn\n" in RUNBOOKS.read_text(encoding="utf-8")
    ratio = float(query(host, "stackops:api_slo_errors:ratio_rate2m")[0]["value"][1])
    assert 0.4 < ratio < 0.6, ratio


def test_broken_rule_rejected_and_live_rules_kept(host):
    before = host.file(RULES_FILE).sha256sum
    names_before = alert_names(host)
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or "ansible-playbook"
    run = subprocess.run(
        [ansible_playbook, "-i", os.path.dirname(inventory), str(SCENARIO_DIR / "broken_rule.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "failed validation" in output or "promtool" in output, output[-3000:]
    assert "Write the alerting rules" in output, output[-3000:]
    assert host.file(RULES_FILE).sha256sum == before
    assert "MoleculeBrokenRule" not in host.file(RULES_FILE).content_string
    assert alert_names(host) == names_before
    assert "MoleculeBrokenRule" not in alert_names(host)
    assert query(host, "prometheus_config_last_reload_successful")[0]["value"][1] == "1"


def test_target_down_alert_reaches_receiver_once_then_resolves(host):
    # Healthy start: the target is up and its group has no history.
    host.run("systemctl start %s", TARGET_UNIT)
    wait_for(lambda: query(host, f'up{{instance="{TARGET}"}} == 1'), "the target to be up")
    wait_for(
        lambda: not [a for a in api(host, "/api/v1/alerts")["alerts"] if a["labels"].get("instance") == TARGET],
        "no alert on the target",
    )
    host.run("truncate -s 0 %s", NOTIFICATIONS)

    stopped_at = time.time()
    assert host.run("systemctl stop %s", TARGET_UNIT).rc == 0
    try:
        firing = wait_for(lambda: [n for n in target_group(host) if n["status"] == "firing"], "the firing notification")
        alert = firing[0]["alerts"][0]
        assert alert["status"] == "firing"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["instance"] == TARGET
        assert alert["labels"]["job"] == "molecule-target"
        started = datetime.fromisoformat(alert["startsAt"].split(".")[0].rstrip("Z") + "+00:00")
        assert abs(started.timestamp() - stopped_at) < WAIT
        assert alert["generatorURL"].startswith(PROM)
        assert alert["annotations"]["summary"] == f"Target {TARGET} (molecule-target) is down"
        assert "dashboard_url" in alert["annotations"]

        # Still firing: no second notification within the repeat interval (two group intervals here).
        time.sleep(2 * GROUP_INTERVAL + 5)
        assert len([n for n in target_group(host) if n["status"] == "firing"]) == 1, target_group(host)
    finally:
        host.run("systemctl start %s", TARGET_UNIT)

    resolved = wait_for(
        lambda: [n for n in target_group(host) if n["status"] == "resolved"], "the resolved notification"
    )
    assert resolved[0]["alerts"][0]["labels"]["instance"] == TARGET
    assert resolved[0]["alerts"][0]["endsAt"] >= resolved[0]["alerts"][0]["startsAt"]
    assert len([n for n in target_group(host) if n["status"] == "firing"]) == 1, target_group(host)


def test_idle_colour_is_no_target_and_no_alert(host):
    """Blue runs (its fake target answers) but nginx does not serve it: Prometheus never scrapes it."""
    assert host.run("curl -sf http://%s/metrics", API_BLUE).rc == 0
    targets = api(host, "/api/v1/targets")["activeTargets"]
    assert not [t for t in targets if t["labels"]["instance"] == API_BLUE], targets
    assert not query(host, f'up{{instance="{API_BLUE}"}}')
    sd = json.loads(host.file("/etc/prometheus/file_sd/api/prometheus-instance.json").content_string)
    assert sd == [{"targets": [API_GREEN], "labels": {"host": "prometheus-instance", "colour": "green"}}]


def test_serving_colour_down_fires_target_down(host):
    """The colour nginx serves must run: stopped, it alerts (unlike the idle one)."""
    assert host.run("systemctl stop %s", API_GREEN_UNIT).rc == 0
    try:
        wait_for(
            lambda: [
                a
                for a in api(host, "/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == "TargetDown"
                and a["labels"].get("instance") == API_GREEN
                and a["state"] == "firing"
            ],
            "TargetDown on the serving colour",
        )
    finally:
        host.run("systemctl start %s", API_GREEN_UNIT)
    wait_for(lambda: query(host, f'up{{instance="{API_GREEN}"}} == 1'), "the serving colour to be back")
