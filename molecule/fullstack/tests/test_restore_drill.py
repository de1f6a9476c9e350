"""Restore drill end to end: playbooks/restore_drill.yml on the db host, its textfile metrics in Prometheus through
node exporter, and PostgresRestoreDrillFailed firing when the drill fails (the newest backup tampered with).

side_effect took the backups the drill restores. The tampered dump is put back and the drill run again at the end,
so the files after this one see a passing drill.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import testinfra

testinfra_hosts = ["ansible://fullstack-mon"]

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
PROMETHEUS = "http://172.30.58.14:9090"
STATE = "/var/backups/postgresql/app/.drill-state.json"
ALERT = "PostgresRestoreDrillFailed"


def inventory():
    return str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)


def run_drill():
    """playbooks/restore_drill.yml -e database=app; returns (rc, output, started at: unix time)."""
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory(),
        "-e",
        f"@{SCENARIO / 'vars' / 'test.yml'}",
        "-e",
        "database=app",
        str(PROJECT / "playbooks" / "restore_drill.yml"),
    ]
    started = time.time()
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    # Colours off, line breaks folded: the callback wraps long messages.
    return out.returncode, re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)), started


def query(host, promql):
    url = f"{PROMETHEUS}/api/v1/query?query={urllib.parse.quote(promql)}"
    out = host.run("curl -sS -m 10 %s", url)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)["data"]["result"]


def wait_for(host, promql, accept, seconds=120):
    """Poll Prometheus until accept(result) holds; returns the last result (printed)."""
    deadline = time.monotonic() + seconds
    while True:
        result = query(host, promql)
        if accept(result) or time.monotonic() > deadline:
            print(f"{promql} -> {json.dumps(result)}")
            return result
        time.sleep(3)


def values(result):
    return [float(r["value"][1]) for r in result]


@pytest.fixture(scope="module")
def db():
    return testinfra.get_host(f"ansible://fullstack-db?ansible_inventory={inventory()}")


@pytest.fixture(scope="module")
def passed_drill():
    rc, output, started = run_drill()
    assert rc == 0, output[-4000:]
    assert "app: passed" in output, output[-4000:]
    return started


def test_drill_metrics_in_prometheus(host, passed_drill):
    recent = f'stackops_pg_drill_last_run_timestamp_seconds{{database="app"}} >= {passed_drill - 5:.0f}'
    assert wait_for(host, recent, bool), "the drill's run metric never reached Prometheus"
    success = query(host, 'stackops_pg_drill_last_run_success{database="app"}')
    print(f"last_run_success -> {json.dumps(success)}")
    assert values(success) == [1.0] and success[0]["metric"]["host"] == "fullstack-db", success
    finished = values(query(host, 'stackops_pg_drill_last_success_timestamp_seconds{database="app"}'))
    assert len(finished) == 1 and finished[0] >= passed_drill - 5, finished
    duration = wait_for(host, 'stackops_pg_drill_last_duration_seconds{database="app"}', bool, seconds=10)
    assert len(duration) == 1 and values(duration)[0] > 0, duration
    # side_effect created at least five items through the API; every table's rows were compared.
    rows = wait_for(host, 'stackops_pg_drill_last_rows_compared{database="app"}', bool, seconds=10)
    assert len(rows) == 1 and values(rows)[0] >= 5, rows
    assert not query(host, f'ALERTS{{alertname="{ALERT}",database="app"}}')


def test_failing_drill_fires_its_alert(host, db, passed_drill):
    state = json.loads(db.run("cat %s", STATE).stdout)
    dump = state["last_success"]["backup"]
    assert db.run("cp -a %s %s.drilltest", dump, dump).rc == 0
    try:
        # One byte changed in the middle of the newest dump: its sha256 no longer matches the manifest.
        size = int(db.run("stat -c %%s %s", dump).stdout)
        assert db.run("printf X | dd of=%s bs=1 seek=%s conv=notrunc status=none", dump, str(size // 2)).rc == 0
        rc, output, started = run_drill()
        assert rc != 0, output[-4000:]
        assert "app: FAILED" in output and "Restore drill failed for app" in output, output[-4000:]
        failed = wait_for(
            host,
            f'stackops_pg_drill_last_run_success{{database="app"}} == 0 and '
            f'stackops_pg_drill_last_run_timestamp_seconds{{database="app"}} >= {started - 5:.0f}',
            bool,
        )
        assert len(failed) == 1, "the failed drill's metric never reached Prometheus"
        # The rule has no `for:`: it goes firing at the first evaluation that sees the 0.
        alert = wait_for(
            host,
            f'ALERTS{{alertname="{ALERT}",database="app"}}',
            lambda result: [r["metric"]["alertstate"] for r in result] == ["firing"],
            seconds=90,
        )
        assert [r["metric"]["alertstate"] for r in alert] == ["firing"], alert
        assert alert[0]["metric"]["severity"] == "critical", alert
    finally:
        assert db.run("mv -f %s.drilltest %s", dump, dump).rc == 0
    rc, output, _started = run_drill()
    assert rc == 0, output[-4000:]
