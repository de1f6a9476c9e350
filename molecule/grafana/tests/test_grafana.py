"""What a Grafana operator relies on after the role ran.

Offline CI runs this against a STAND-IN archive (tests/standins/build_grafana_standin.py): a tiny
Python server that only answers /api/health. Tests marked `real_only` need the real Grafana
(export GRAFANA_ARCHIVE=/path/to/grafana-<version>.linux-amd64.tar.gz) and skip otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PASSWORD = "molecule-Grafana-admin-0123#;x"
SECRET_KEY = "molecule-Grafana-secret-key-0123456789#;x"
# Grafana's built-in [security] secret_key (public: in every conf/defaults.ini).
GRAFANA_DEFAULT_SECRET_KEY = "SW2YcwTIb9zpOOhoPsMm"
SERVICE = "grafana-server"
CONF = "/etc/grafana/grafana.ini"
DATASOURCES = "/etc/grafana/provisioning/datasources/stackops.yml"
PROVIDERS = "/etc/grafana/provisioning/dashboards/stackops.yml"
DASHBOARD_DIR = "/etc/grafana/dashboards/stackops"
REAL = bool(os.environ.get("GRAFANA_ARCHIVE"))
real_only = pytest.mark.skipif(
    not REAL, reason="stand-in archive: only the real Grafana has this API (set GRAFANA_ARCHIVE)"
)
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))


def journal(host):
    return host.run(f"journalctl -u {SERVICE} --no-pager -n 50").stdout


def curl(host, path, auth=None):
    argv = ["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", f"http://127.0.0.1:3000{path}"]
    if auth:
        argv[1:1] = ["-u", auth]
    out = host.run(" ".join(["%s"] * len(argv)), *argv)
    body, code = ("\n" + out.stdout).rsplit("\n", 1)
    return int(code or 0), body


def test_service_running_and_enabled(host):
    svc = host.service(SERVICE)
    assert svc.is_running, journal(host)
    assert svc.is_enabled


def test_listens_only_on_loopback(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":3000")]
    assert listening == ["tcp://127.0.0.1:3000"], journal(host)


def test_health_endpoint(host):
    code, body = curl(host, "/api/health")
    assert code == 200, journal(host)
    health = json.loads(body)
    assert health["database"] == "ok"
    if not REAL:
        assert health["version"] == "standin"


def test_runs_as_grafana_system_user(host):
    user = host.user("grafana")
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    pid = host.run(f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    assert pid not in ("", "0"), journal(host)
    assert host.file(f"/proc/{pid}").user == "grafana"


def test_release_layout(host):
    current = host.file("/opt/grafana/current")
    assert current.is_symlink
    assert current.linked_to.startswith("/opt/grafana/")
    assert host.file(f"{current.linked_to}/conf/defaults.ini").is_file
    binary = host.file("/opt/grafana/current/bin/grafana")
    assert binary.user == "root" and binary.mode & 0o022 == 0
    # The service user cannot modify its own program.
    assert host.run("runuser -u grafana -- test -w /opt/grafana/current/bin/grafana").rc != 0
    for path in ("/var/lib/grafana", "/var/log/grafana"):
        d = host.file(path)
        assert d.is_directory and d.user == "grafana" and d.mode == 0o750, path


def test_config_file_mode_and_settings(host):
    conf = host.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "grafana", 0o640)
    text = conf.content_string
    assert "Ansible managed" in text
    assert "http_addr = 127.0.0.1" in text
    assert "http_port = 3000" in text
    anon = text.split("[auth.anonymous]", 1)[1].split("[", 1)[0]
    assert "enabled = false" in anon
    assert "reporting_enabled = false" in text


def test_admin_password_not_world_readable(host):
    found = host.run(
        "grep -rlF -- %s /etc /opt/grafana /var/lib/grafana /var/log/grafana /var/cache/stackops", PASSWORD
    ).stdout.split()
    assert CONF in found  # the test would be empty otherwise
    for path in found:
        assert host.file(path).mode & 0o007 == 0, f"{path} is world-accessible and holds the admin password"
    assert PASSWORD not in host.run("systemctl cat %s", SERVICE).stdout
    assert PASSWORD not in host.run("journalctl --no-pager").stdout


def test_unit_hardening(host):
    props = dict(
        line.split("=", 1)
        for line in host.run(
            f"systemctl show {SERVICE} -p ProtectSystem -p ProtectHome -p NoNewPrivileges -p PrivateTmp "
            "-p ReadWritePaths -p User -p CapabilityBoundingSet"
        ).stdout.splitlines()
    )
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["NoNewPrivileges"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["User"] == "grafana"
    assert set(props["ReadWritePaths"].split()) == {"/var/lib/grafana", "/var/log/grafana"}
    assert props["CapabilityBoundingSet"] == ""
    exec_start = host.run(f"systemctl show {SERVICE} -p ExecStart --value").stdout
    expected = "/opt/grafana/current/bin/grafana server --homepath /opt/grafana/current --config " + CONF
    assert expected in exec_start


def test_service_sees_a_read_only_system_except_its_data_dirs(host):
    # Enter the running service's own mount namespace: even root gets EROFS outside ReadWritePaths.
    pid = host.run(f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    assert pid not in ("", "0"), journal(host)
    out = host.run(
        "nsenter -t %s -m -- sh -c "
        "'for d in /var/lib/grafana /var/log/grafana; do touch $d/.probe && rm $d/.probe && echo writable; done; "
        "for d in /opt/grafana /etc/grafana /usr/local; do touch $d/.probe 2>&1; done'",
        pid,
    )
    assert out.stdout.count("writable") == 2, out.stdout + out.stderr
    assert out.stdout.count("Read-only file system") == 3, out.stdout
    assert not host.file("/etc/grafana/.probe").exists


def provisioned_uids(host):
    data = yaml.safe_load(host.file(DATASOURCES).content_string)
    return {ds["name"]: ds for ds in data["datasources"]}


def test_datasources_provisioned(host):
    f = host.file(DATASOURCES)
    assert (f.user, f.group, f.mode) == ("root", "grafana", 0o640)
    sources = provisioned_uids(host)
    assert sources["Prometheus"]["type"] == "prometheus"
    assert sources["Prometheus"]["url"] == "http://127.0.0.1:9090"
    assert sources["Prometheus"]["uid"] == "stackops-prometheus"
    assert sources["Jaeger"]["type"] == "jaeger"
    assert sources["Jaeger"]["url"] == "http://127.0.0.1:16686"


def test_dashboard_provider_points_at_dashboards(host):
    providers = yaml.safe_load(host.file(PROVIDERS).content_string)["providers"]
    assert [p["options"]["path"] for p in providers] == [DASHBOARD_DIR]


def load_dashboards(host):
    names = host.run(f"ls {DASHBOARD_DIR}").stdout.split()
    assert names, "no dashboards installed"
    return {name: json.loads(host.file(f"{DASHBOARD_DIR}/{name}").content_string) for name in names}


def test_dashboards_are_valid_and_every_panel_queries_a_provisioned_datasource(host):
    uids = {ds["uid"] for ds in provisioned_uids(host).values()}
    dashboards = load_dashboards(host)
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards), "dashboard uids must be unique"
    for name, dash in dashboards.items():
        assert dash["uid"] and dash["title"], name
        assert dash["panels"], name
        for panel in dash["panels"]:
            where = f"{name}: panel {panel.get('title')!r}"
            assert panel["datasource"]["uid"] in uids, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["expr"].strip(), where
                assert target["datasource"]["uid"] in uids, where
                assert target["refId"], where


def test_dashboards_cover_the_platform_metrics(host):
    exprs = " ".join(
        t["expr"] for d in load_dashboards(host).values() for p in d["panels"] for t in p["targets"]
    )
    for metric in (
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
        "http_requests_total",
        'status=~"5.."',
        "http_request_duration_seconds_bucket",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
        "stackops_active_color",
        "pg_up",
        "pg_stat_database_numbackends",
        "pg_database_size_bytes",
        "redis_up",
        "redis_memory_used_bytes",
        "redis_commands_processed_total",
        "stackops_pg_backup_last_success_timestamp_seconds",
    ):
        assert metric in exprs, metric


PASSWORD_MSG = 'grafana_admin_password is not set (or is "admin")'
SECRET_KEY_MSG = "grafana_secret_key is not set, shorter than 32 characters or Grafana's public default"
SHORT_SECRET_KEY = "short-Secret-key-0123456789abcd"  # 31 characters
GOOD_PASSWORD = "preflight-Admin-0123456789"


@pytest.mark.parametrize(
    ("extravars", "message", "hidden"),
    [
        ({}, PASSWORD_MSG, None),
        ({"grafana_admin_password": "admin"}, PASSWORD_MSG, None),
        ({"grafana_admin_password": GOOD_PASSWORD}, SECRET_KEY_MSG, None),
        ({"grafana_admin_password": GOOD_PASSWORD, "grafana_secret_key": ""}, SECRET_KEY_MSG, None),
        (
            {"grafana_admin_password": GOOD_PASSWORD, "grafana_secret_key": SHORT_SECRET_KEY},
            SECRET_KEY_MSG,
            SHORT_SECRET_KEY,
        ),
        (
            {"grafana_admin_password": GOOD_PASSWORD, "grafana_secret_key": GRAFANA_DEFAULT_SECRET_KEY},
            SECRET_KEY_MSG,
            None,
        ),
    ],
    ids=["password-unset", "password-admin", "key-unset", "key-empty", "key-31-chars", "key-grafana-default"],
)
def test_preflight_refuses_missing_or_default_secrets(host, tmp_path, extravars, message, hidden):
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run through molecule"
    before = host.file(CONF).sha256sum
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Run the grafana role without a usable admin password or secret key",
                    "hosts": "grafana-instance",
                    "gather_facts": False,
                    "vars": {"grafana_install_method": "archive", "grafana_archive_sha256": "0" * 64},
                    "tasks": [{"ansible.builtin.include_role": {"name": "stackops.platform.grafana"}}],
                }
            ]
        )
    )
    extra_args = ["-e", json.dumps(extravars)] if extravars else []
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory, str(playbook), *extra_args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_ROLES_PATH": str(REPO / "roles")},
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "failed=1" in out
    if hidden:
        assert hidden not in out, "the rejected secret must not be printed"
    assert host.file(CONF).sha256sum == before, "a failed preflight must not touch the config"


def test_config_sets_the_secret_key(host):
    conf = host.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "grafana", 0o640)
    security = conf.content_string.split("[security]", 1)[1].split("\n[", 1)[0]
    # Triple quotes: grafana.ini would otherwise cut the value at "#" or ";".
    assert f'secret_key = """{SECRET_KEY}"""' in security.splitlines()
    assert GRAFANA_DEFAULT_SECRET_KEY not in conf.content_string
    found = host.run(
        "grep -rlF -- %s /etc /opt/grafana /var/lib/grafana /var/log/grafana /var/cache/stackops", SECRET_KEY
    ).stdout.split()
    assert CONF in found
    for path in found:
        assert host.file(path).mode & 0o007 == 0, f"{path} is world-accessible and holds the secret key"
    assert SECRET_KEY not in host.run("journalctl --no-pager").stdout


@real_only
def test_real_api_lists_provisioned_datasources(host):
    code, body = curl(host, "/api/datasources", auth=f"admin:{PASSWORD}")
    assert code == 200, body
    by_uid = {ds["uid"]: ds for ds in json.loads(body)}
    assert by_uid["stackops-prometheus"]["url"] == "http://127.0.0.1:9090"
    assert by_uid["stackops-jaeger"]["type"] == "jaeger"


@real_only
def test_real_dashboards_loaded(host):
    code, body = curl(host, "/api/search?tag=stackops", auth=f"admin:{PASSWORD}")
    assert code == 200, body
    found = {d["uid"] for d in json.loads(body)}
    assert {"stackops-hosts", "stackops-api", "stackops-postgresql", "stackops-redis", "stackops-operations"} <= found


@real_only
def test_real_anonymous_and_wrong_password_refused(host):
    assert curl(host, "/api/datasources")[0] == 401
    assert curl(host, "/api/datasources", auth="admin:admin")[0] == 401
