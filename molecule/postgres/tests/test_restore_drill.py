"""Restore drills on the converged host: the installed program, the unit the timer starts, its metrics,
a failing drill, and playbooks/restore_drill.yml. Runs after test_postgres.py and before
test_restore_roundtrip.py (file order), on the backups the earlier tests made.
"""

import json

import pytest
from conftest import METRICS_DIR, admin_sql, play, read_metrics, run_oneshot

BACKUP_DIR = "/var/backups/postgresql"
PACKAGE_DIR = "/usr/local/lib/stackops/ansible_collections/stackops/platform/plugins/module_utils"
MODULES = ["backup_age", "backup_offsite", "backup_offsite_fetch", "backup_offsite_metrics", "backup_offsite_params",
           "backup_offsite_remote", "backup_retention", "backup_s3", "file_primitives", "pg_backup_core",
           "pg_backup_manifest", "pg_backup_metrics", "pg_backup_retention", "pg_cli", "pg_client", "pg_drill_core",
           "pg_restore_core", "textfile_metrics"]


def drill_metrics(host, db):
    return read_metrics(host, f"stackops_pg_drill_{db}.prom", db)


def scratch_databases(host):
    return admin_sql(host, "SELECT datname FROM pg_database WHERE datname LIKE '%\\_drill\\_%'", db="postgres").stdout


def newest_manifest_path(host, db):
    names = host.run(f"ls -1 {BACKUP_DIR}/{db}").stdout.split()
    dumps = sorted(n for n in names if n.endswith(".dump") and f"{n}.manifest.json" in names)
    assert dumps, names
    return f"{BACKUP_DIR}/{db}/{dumps[-1]}.manifest.json"


def test_only_the_installed_package_runs(host):
    assert sorted(host.run(f"ls -1 {PACKAGE_DIR}").stdout.split()) == [f"{m}.py" for m in MODULES]
    assert not host.file("/usr/local/lib/stackops/pg_backup_core.py").exists
    unit = host.run("systemctl cat stackops-pg-drill@app.service").stdout
    module = "ansible_collections.stackops.platform.plugins.module_utils.pg_drill_core"
    assert f"ExecStart=/usr/bin/python3 -m {module} --config /etc/stackops/pg_drill-%i.json" in unit, unit
    assert f"ExecStopPost=+/usr/bin/python3 -m {module}" in unit and f"--write-metrics {METRICS_DIR}" in unit


@pytest.mark.parametrize("db", ["app", "billing"])
def test_drill_timer_scheduled(host, db):
    assert host.run(f"systemctl is-enabled stackops-pg-drill@{db}.timer").stdout.strip() == "enabled"
    assert host.run(f"systemctl is-active stackops-pg-drill@{db}.timer").stdout.strip() == "active"
    settings = host.file(f"/etc/stackops/pg_drill-{db}.json")
    assert settings.mode == 0o640 and settings.group == "postgres"


def test_drill_unit_restores_compares_and_reports(host):
    out, state, journal = run_oneshot(host, "stackops-pg-backup@app.service")
    assert out.rc == 0, journal
    manifest = json.loads(host.file(newest_manifest_path(host, "app")).content_string)
    out, state, journal = run_oneshot(host, "stackops-pg-drill@app.service")
    assert out.rc == 0 and state == "inactive", out.stderr + journal
    assert '"scratch_dropped": true' in journal, journal
    assert scratch_databases(host) == ""
    values = drill_metrics(host, "app")
    assert values["stackops_pg_drill_last_run_success"] == 1
    assert values["stackops_pg_drill_last_rows_compared"] == sum(manifest["row_counts"].values())
    assert values["stackops_pg_drill_last_tables_compared"] == len(manifest["row_counts"])
    assert values["stackops_pg_drill_last_duration_seconds"] > 0
    prom = host.file(f"{METRICS_DIR}/stackops_pg_drill_app.prom")
    assert prom.mode == 0o644 and prom.user == "root"


@pytest.fixture
def tampered_manifest(host):
    """The newest app manifest claims one row more in one table, until the fixture puts it back."""
    path = newest_manifest_path(host, "app")
    saved = host.file(path).content_string
    manifest = json.loads(saved)
    table = sorted(manifest["row_counts"])[0]
    manifest["row_counts"][table] += 1
    assert host.run("printf %s %s > %s", "%s", json.dumps(manifest), path).rc == 0
    yield table
    assert host.run("printf %s %s > %s", "%s", saved, path).rc == 0


def test_failing_drill_reports_failure_and_drops_its_scratch(host, tampered_manifest):
    before = drill_metrics(host, "app")
    out, state, journal = run_oneshot(host, "stackops-pg-drill@app.service")
    assert out.rc != 0 and state == "failed", journal
    assert f"{tampered_manifest}: manifest" in journal and "differ from its manifest" in journal, journal
    assert scratch_databases(host) == ""
    after = drill_metrics(host, "app")
    assert after["stackops_pg_drill_last_run_success"] == 0
    assert after["stackops_pg_drill_last_success_timestamp_seconds"] == \
        before["stackops_pg_drill_last_success_timestamp_seconds"]
    host.run("systemctl reset-failed stackops-pg-drill@app.service")


def test_restore_drill_playbook(host, inventory):
    checked = play(inventory, "restore_drill.yml", "database=billing", check=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "changed=0" in checked.stdout
    ran = play(inventory, "restore_drill.yml")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "app: passed" in ran.stdout and "billing: passed" in ran.stdout, ran.stdout
    assert drill_metrics(host, "billing")["stackops_pg_drill_last_run_success"] == 1
    unknown = play(inventory, "restore_drill.yml", "database=nosuch")
    assert unknown.returncode != 0
    assert "No restore drill for nosuch" in unknown.stdout, unknown.stdout
