"""The backup unit's textfile metrics: what Prometheus' PostgresBackup* alerts read from node exporter.

Runs the real units, so systemd's ExecStopPost, SERVICE_RESULT and "+" (root, outside the sandbox)
are what is tested, on success and on failure.
"""

import json
from datetime import datetime

import pytest
from conftest import METRICS_DIR, read_metrics, run_oneshot

BACKUP_DIR = "/var/backups/postgresql"
CONFIG = "/etc/stackops/pg_backup-{db}.json"


def metrics(host, db):
    return read_metrics(host, f"stackops_pg_backup_{db}.prom", db)


def run_backup_unit(host, db):
    return run_oneshot(host, f"stackops-pg-backup@{db}.service", timeout=60)


def newest_manifest(host, db):
    names = host.run(f"ls -1 {BACKUP_DIR}/{db}").stdout.split()
    dumps = sorted(n for n in names if n.endswith(".dump") and f"{n}.manifest.json" in names)
    assert dumps, names
    manifest = json.loads(host.run(f"cat {BACKUP_DIR}/{db}/{dumps[-1]}.manifest.json").stdout)
    return manifest, len(dumps)


def test_unit_writes_metrics_after_the_run_as_root(host):
    unit = host.run("systemctl cat stackops-pg-backup@app.service").stdout
    module = "ansible_collections.stackops.platform.plugins.module_utils.pg_backup_core"
    assert f"ExecStopPost=+/usr/bin/python3 -m {module}" in unit, unit
    assert f"--write-metrics {METRICS_DIR}" in unit, unit


def test_successful_run_publishes_last_success(host):
    before = float(host.run("date +%s.%N").stdout)
    out, state, journal = run_backup_unit(host, "app")
    assert out.rc == 0 and state == "inactive", out.stderr + journal
    prom = host.file(f"{METRICS_DIR}/stackops_pg_backup_app.prom")
    assert prom.exists, journal
    assert prom.mode == 0o644 and prom.user == "root", oct(prom.mode)
    # node exporter (another user) must be able to read it; never a temp file left for it to find.
    assert host.file(METRICS_DIR).mode & 0o005 == 0o005, oct(host.file(METRICS_DIR).mode)
    assert host.run(f"ls -A {METRICS_DIR}").stdout.split() == ["stackops_pg_backup_app.prom"]

    manifest, count = newest_manifest(host, "app")
    finished = datetime.fromisoformat(manifest["finished_at"]).timestamp()
    values = metrics(host, "app")
    assert abs(values["stackops_pg_backup_last_success_timestamp_seconds"] - finished) <= 1, (values, manifest)
    assert values["stackops_pg_backup_last_success_timestamp_seconds"] >= before - 1
    assert values["stackops_pg_backup_last_run_success"] == 1
    assert values["stackops_pg_backup_last_run_timestamp_seconds"] >= before
    assert values["stackops_pg_backup_last_size_bytes"] == manifest["size"]
    assert values["stackops_pg_backup_last_duration_seconds"] == pytest.approx(manifest["duration"])
    assert values["stackops_pg_backup_count"] == count


@pytest.fixture
def broken_billing_config(host):
    """billing's unit fails (no pg_dump in bin_dir) until the fixture puts the role's config back."""
    path = CONFIG.format(db="billing")
    saved = host.run(f"cat {path}").stdout
    config = json.loads(saved)
    config["bin_dir"] = "/nonexistent/bin"
    # Rewrite in place (shell redirection): the file keeps its owner and mode.
    assert host.run("printf %s %s > %s", "%s", json.dumps(config), path).rc == 0
    yield
    assert host.run("printf %s %s > %s", "%s", saved, path).rc == 0


def test_failed_run_keeps_last_success_and_reports_failure(host, request):
    out, state, journal = run_backup_unit(host, "billing")
    assert out.rc == 0 and state == "inactive", out.stderr + journal
    good = metrics(host, "billing")
    assert good["stackops_pg_backup_last_run_success"] == 1

    request.getfixturevalue("broken_billing_config")
    out, state, journal = run_backup_unit(host, "billing")
    assert out.rc != 0 and state == "failed", journal
    assert "pg_dump not found at /nonexistent/bin/pg_dump" in journal, journal
    failed = metrics(host, "billing")
    assert failed["stackops_pg_backup_last_run_success"] == 0, journal
    run_at = "stackops_pg_backup_last_run_timestamp_seconds"
    assert failed[run_at] > good[run_at]
    # The last success comes from the backups on disk, so a failed run does not reset it.
    for key in ("last_success_timestamp_seconds", "last_size_bytes", "count"):
        assert failed[f"stackops_pg_backup_{key}"] == good[f"stackops_pg_backup_{key}"], key
    host.run("systemctl reset-failed stackops-pg-backup@billing.service")
