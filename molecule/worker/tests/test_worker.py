"""Behaviour a worker operator relies on: N hardened instances, jobs processed into PostgreSQL and marked
done, a graceful stop that finishes the current job, and scaling down that stops the extra instances."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

APP = "api"
UNIT = f"{APP}-worker@"
STOP_TIMEOUT = 20  # worker_stop_timeout in vars/scenario.yml
SCENARIO_DIR = Path(__file__).resolve().parent.parent
DSN = "postgresql://app:molecule-db-password-0123@127.0.0.1:5432/app"


def redis(host, *args):
    return host.run("redis-cli -h 127.0.0.1 " + " ".join(["%s"] * len(args)), *args).stdout.strip()


def psql(host, sql):
    return host.run("psql %s -At -c %s", DSN, sql).stdout.strip()


def push(host, payload):
    job_id = f"molecule-{uuid.uuid4().hex}"
    redis(host, "HSET", f"job:{job_id}", "status", "queued")
    redis(host, "LPUSH", "jobs", json.dumps({"id": job_id, "payload": payload}))
    return job_id


def wait_status(host, job_id, wanted, timeout=30):
    deadline = time.monotonic() + timeout
    while (status := redis(host, "HGET", f"job:{job_id}", "status")) != wanted:
        assert time.monotonic() < deadline, f"job {job_id} is {status!r}, not {wanted!r} after {timeout}s"
        time.sleep(0.3)
    return status


def journal(host):
    return host.run("journalctl -u %s --no-pager -n 60", UNIT + "*").stdout


@pytest.fixture(autouse=True)
def journal_on_failure(host, request):
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(journal(host))


def converge(extra_vars):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or "ansible-playbook"
    run = subprocess.run(
        [ansible_playbook, "-i", os.path.dirname(inventory), "-e", json.dumps(extra_vars),
         str(SCENARIO_DIR / "converge.yml")],
        capture_output=True, text=True, timeout=600, env=os.environ.copy(), check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return run.stdout


def test_configured_instances_active(host):
    for n in (1, 2):
        svc = host.service(f"{UNIT}{n}")
        assert svc.is_running, journal(host)
        assert svc.is_enabled
    assert not host.service(f"{UNIT}3").is_running


def test_workers_run_current_release(host):
    pid = host.run("systemctl show -p MainPID --value %s", f"{UNIT}1").stdout.strip()
    assert host.run("readlink /proc/%s/cwd", pid).stdout.strip() == "/srv/api/releases/1.0.0"


def test_job_processed_into_postgres_and_marked_done(host):
    job_id = push(host, {"molecule": True})
    wait_status(host, job_id, "done")
    assert psql(host, f"SELECT count(*) FROM processed_jobs WHERE job_id = '{job_id}'") == "1"
    worker = redis(host, "HGET", f"job:{job_id}", "worker")
    assert worker.endswith(("/1", "/2")), worker
    assert f"job_id={job_id} done" in journal(host)


def test_stop_timeout_and_kill_signal(host):
    props = host.run("systemctl show %s -p TimeoutStopUSec -p KillSignal", f"{UNIT}1").stdout
    assert f"TimeoutStopUSec={STOP_TIMEOUT}s" in props
    assert "KillSignal=15" in props


def test_hardening(host):
    props = host.run(
        "systemctl show %s -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p ProtectHome "
        "-p CapabilityBoundingSet -p ReadWritePaths -p User",
        f"{UNIT}1",
    ).stdout + "\n"
    for expected in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                     "CapabilityBoundingSet=\n", "ReadWritePaths=/srv/api/shared", f"User={APP}"):
        assert expected in props, props
    env = host.file("/srv/api/shared/.env")
    assert env.mode == 0o600 and env.user == APP


def test_sigterm_finishes_the_current_job(host):
    job_id = push(host, {"sleep": 4})
    wait_status(host, job_id, "processing")
    worker = redis(host, "HGET", f"job:{job_id}", "worker")
    unit = f"{UNIT}{worker.rsplit('/', 1)[1]}"
    started = time.monotonic()
    assert host.run("systemctl stop %s", unit).rc == 0
    took = time.monotonic() - started
    try:
        assert redis(host, "HGET", f"job:{job_id}", "status") == "done"
        assert psql(host, f"SELECT count(*) FROM processed_jobs WHERE job_id = '{job_id}'") == "1"
        assert 1 < took < STOP_TIMEOUT, took
        assert "Killing" not in host.run("journalctl -u %s --no-pager -n 20", unit).stdout
    finally:
        host.run("systemctl start %s", unit)


def test_scale_up_then_down(host):
    converge({"worker_instances": 3})
    assert host.service(f"{UNIT}3").is_running
    assert host.service(f"{UNIT}3").is_enabled
    converge({"worker_instances": 2})
    assert not host.service(f"{UNIT}3").is_running
    assert not host.service(f"{UNIT}3").is_enabled
    assert host.service(f"{UNIT}1").is_running and host.service(f"{UNIT}2").is_running
