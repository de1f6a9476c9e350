"""Behaviour a PostgreSQL user relies on: SCRAM only, least privilege, loopback only, backups that run."""

import json

import pytest
from conftest import REPO

APP = "molecule-app-password-0123"
SERVICE = "postgresql@15-main"
BACKUP_DIR = "/var/backups/postgresql"


def admin_sql(host, sql):
    """Run SQL as the postgres superuser over the local socket (peer)."""
    return host.run("runuser -u postgres -- psql -XAtq -d postgres -c %s", sql)


def tcp_sql(host, user, password, database, sql="SELECT current_user", address="127.0.0.1"):
    # The password travels in the environment, never on the command line.
    return host.run(
        "env PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -XAtq -h %s -p 5432 -U %s -d %s -c %s",
        password,
        address,
        user,
        database,
        sql,
    )


@pytest.fixture(autouse=True)
def journal_on_failure(host, request):
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(host.run(f"journalctl -u {SERVICE} -u 'stackops-pg-backup@*' --no-pager -n 80").stdout)


def test_service_running_and_enabled(host):
    svc = host.service(SERVICE)
    assert svc.is_running, host.run(f"journalctl -u {SERVICE} --no-pager -n 50").stdout
    assert host.service("postgresql").is_enabled


def test_listens_only_on_loopback(host):
    listening = {s for s in host.socket.get_listening_sockets() if s.endswith(":5432")}
    assert "tcp://127.0.0.1:5432" in listening
    assert listening <= {"tcp://127.0.0.1:5432", "tcp://::1:5432"}, listening


def test_password_encryption_is_scram(host):
    assert admin_sql(host, "SHOW password_encryption").stdout.strip() == "scram-sha-256"


def test_app_verifier_is_scram(host):
    out = admin_sql(host, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").stdout.strip()
    assert out.startswith("SCRAM-SHA-256$"), out[:20]


def test_hba_has_no_trust_or_md5(host):
    rules = admin_sql(host, "SELECT auth_method FROM pg_hba_file_rules").stdout.split()
    assert rules, "pg_hba_file_rules is empty"
    assert not {"trust", "md5", "password"} & set(rules), rules
    errors = admin_sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL").stdout.strip()
    assert errors == "0"


def test_wrong_password_refused(host):
    out = tcp_sql(host, "app", "not-the-password-at-all", "app")
    assert out.rc != 0
    assert "password authentication failed" in out.stderr, out.stderr


def test_app_user_connects_to_its_database(host):
    out = tcp_sql(host, "app", APP, "app")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "app"


def test_app_user_refused_on_other_managed_database(host):
    out = tcp_sql(host, "app", APP, "billing")
    assert out.rc != 0
    assert 'permission denied for database "billing"' in out.stderr, out.stderr


def test_settings_applied(host):
    assert admin_sql(host, "SHOW shared_buffers").stdout.strip() == "64MB"
    assert admin_sql(host, "SHOW work_mem").stdout.strip() == "8MB"
    pending = admin_sql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart").stdout.strip()
    assert pending == "0"


def test_config_files_not_world_readable(host):
    for name in ("pg_hba.conf", "conf.d/00-stackops-restart.conf", "conf.d/50-stackops.conf"):
        f = host.file(f"/etc/postgresql/15/main/{name}")
        assert f.mode == 0o640, name
        assert f.user == "postgres"
    conf = host.file("/etc/stackops/pg_backup-app.json")
    assert conf.mode == 0o640 and conf.user == "root" and conf.group == "postgres"


@pytest.mark.parametrize("db", ["app", "billing"])
def test_backup_timer_active(host, db):
    out = host.run(f"systemctl is-active stackops-pg-backup@{db}.timer")
    assert out.stdout.strip() == "active", out.stdout + out.stderr
    assert host.run(f"systemctl is-enabled stackops-pg-backup@{db}.timer").stdout.strip() == "enabled"


def test_backup_unit_is_hardened(host):
    unit = host.run(
        "systemctl show stackops-pg-backup@app.service -p ProtectSystem -p NoNewPrivileges -p PrivateTmp -p User"
    ).stdout
    for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "User=postgres"):
        assert line in unit, unit


def test_backup_script_is_the_collection_code(host):
    # The timer runs the module_utils files the pg_backup module imports, not a copy of their logic.
    package = "/usr/local/lib/stackops/ansible_collections/stackops/platform/plugins/module_utils"
    installed = host.file(f"{package}/pg_backup_core.py")
    assert installed.content_string == (REPO / "plugins" / "module_utils" / "pg_backup_core.py").read_text()
    assert installed.user == "root" and installed.mode == 0o644


def test_manual_backup_run_writes_backup_and_manifest(host):
    admin_sql(host, "SELECT 1")  # server is up
    host.run("runuser -u postgres -- psql -XAtq -d app -c %s", "CREATE TABLE IF NOT EXISTS marker (id int)")
    out = host.run("systemctl start stackops-pg-backup@app.service")
    journal = host.run("journalctl -u stackops-pg-backup@app.service --no-pager -n 60").stdout
    assert out.rc == 0, out.stderr + journal
    dumps = host.run(f"ls -1 {BACKUP_DIR}/app").stdout.split()
    backups = sorted(n for n in dumps if n.endswith(".dump"))
    manifests = sorted(n for n in dumps if n.endswith(".dump.manifest.json"))
    assert backups, dumps
    newest = backups[-1]
    assert f"{newest}.manifest.json" in manifests
    dump = host.file(f"{BACKUP_DIR}/app/{newest}")
    manifest_file = host.file(f"{BACKUP_DIR}/app/{newest}.manifest.json")
    assert dump.user == "postgres" and dump.mode in (0o600, 0o640), oct(dump.mode)
    assert manifest_file.mode in (0o600, 0o640), oct(manifest_file.mode)
    assert host.file(BACKUP_DIR).mode == 0o700
    manifest = json.loads(host.run(f"cat {BACKUP_DIR}/app/{newest}.manifest.json").stdout)
    assert manifest["database"] == "app"
    assert manifest["name"] == newest
    assert manifest["sha256"] == host.run(f"sha256sum {BACKUP_DIR}/app/{newest}").stdout.split()[0]
    assert manifest["tables"] >= 1
    # The journal records what was written (path and time).
    assert f"{BACKUP_DIR}/app/{newest}" in journal
    # And pg_restore can read it.
    assert "marker" in host.run(f"pg_restore --list {BACKUP_DIR}/app/{newest}").stdout
