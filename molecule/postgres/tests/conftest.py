"""Helpers shared by the postgres scenario's tests: playbooks against the instance, oneshot units, metrics."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
INSTANCE = "postgres-instance"
APP = "molecule-app-password-0123"
METRICS_DIR = "/var/lib/prometheus/node-exporter"
SAMPLE = re.compile(r'^([a-z_]+)\{database="([^"]*)"(?:,source="(?:local|offsite)")?\} (\S+)$')


def admin_sql(host, sql, db="app"):
    return host.run("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    group_vars = {
        # Production on purpose: the restore must be confirmed.
        "stackops_environment": "production",
        "postgres_users": [
            {"name": "app", "password": APP, "db": "app"},
            {"name": "billing", "password": "molecule-billing-password-0123", "db": "billing"},
        ],
        "postgres_databases": [{"name": "app", "owner": "app"}, {"name": "billing", "owner": "billing"}],
    }
    hosts = {
        INSTANCE: {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}
    }
    path.write_text(yaml.safe_dump({"all": {"children": {"postgres": {"hosts": hosts, "vars": group_vars}}}}))
    return path


def play(inventory, name, *extra, check=False):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", str(inventory), str(REPO / "playbooks" / name)]
    if check:
        argv.append("--check")
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def run_oneshot(host, unit, timeout=120):
    """Start a oneshot unit and wait until it is back to inactive/failed, i.e. ExecStopPost has run."""
    out = host.run(f"systemctl start {unit}")
    deadline = time.monotonic() + timeout
    while True:
        state = host.run(f"systemctl show -p ActiveState --value {unit}").stdout.strip()
        if state in ("inactive", "failed"):
            break
        assert time.monotonic() < deadline, f"{unit} still {state}"
        time.sleep(0.5)
    journal = host.run(f"journalctl -u {unit} --no-pager -n 40").stdout
    return out, state, journal


def read_metrics(host, name, db):
    """Samples of ``METRICS_DIR/<name>``: {metric: value}; every sample must be labelled with ``db``."""
    content = host.file(f"{METRICS_DIR}/{name}").content_string
    values = {}
    for line in content.splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        assert match.group(2) == db, line
        values[match.group(1)] = float(match.group(3))
    return values
