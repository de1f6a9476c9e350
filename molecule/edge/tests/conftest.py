"""Helpers of the edge scenario's tests: each test picks its client container by name (testinfra's `host`
fixture would run every test on every host) and runs the project's playbooks against the scenario inventory."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
EDGE = "172.30.66.11"
ADDRESS = {"edge-proxy": EDGE, "edge-api1": "172.30.66.12", "edge-api2": "172.30.66.13"}
CA = "/etc/edge-test-ca.crt"


def inventory():
    return str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)


@pytest.fixture(scope="session")
def hosts():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory()}")
        return cache[name]

    return get


def playbook_argv(playbook, *args, app_vars=False):
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory(),
        "-e",
        f"@{SCENARIO / 'vars' / 'test.yml'}",
    ]
    if app_vars:
        argv += ["-e", f"@{SCENARIO / 'vars' / 'other_app.yml'}", "--limit", "other_app:localhost"]
    return [*argv, *args, str(PROJECT / "playbooks" / playbook)]


def run_playbook(playbook, *args, app_vars=False):
    """ansible-playbook on the scenario inventory with its test vars; returns (rc, output, seconds)."""
    argv = playbook_argv(playbook, *args, app_vars=app_vars)
    started = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return out.returncode, out.stdout + out.stderr, time.monotonic() - started


def release(version):
    return str(PROJECT / "build" / "releases" / f"sample-app-{version}.tar.gz")


def app_state(host, app):
    """(current release id, colour nginx serves) of one app on one api host."""
    current = host.run("readlink /srv/%s/current", app).stdout.strip().rsplit("/", 1)[-1]
    state = host.run("cat /var/lib/stackops/blue_green/%s.json", app).stdout
    match = re.search(r'"active"\s*:\s*"(\w+)"', state)
    return current, match.group(1) if match else None


def curl(client, path="/", name="edge.test", scheme="https", extra=()):
    """One request from a client container to the edge: (status, headers with lower-case names, body)."""
    port = 443 if scheme == "https" else 80
    cmd = [
        "curl",
        "-sS",
        "-m",
        "10",
        "-i",
        "--resolve",
        f"{name}:{port}:{EDGE}",
        "--cacert",
        CA,
        *extra,
        f"{scheme}://{name}{path}",
    ]
    out = client.run(" ".join(["%s"] * len(cmd)), *cmd)
    assert out.rc == 0, out.stderr
    head, _sep, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        key, _colon, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def burst(client, path, count, name="edge.test", extra=()):
    """count requests on one keep-alive connection: a list of (status, Retry-After)."""
    url = f"https://{name}{path}"
    cmd = [
        "curl",
        "-sS",
        "-m",
        "30",
        "--resolve",
        f"{name}:443:{EDGE}",
        "--cacert",
        CA,
        *extra,
        "-w",
        "%{http_code} %header{retry-after}\\n",
    ]
    for _n in range(count):
        cmd += ["-o", "/dev/null", url]
    out = client.run(" ".join(["%s"] * len(cmd)), *cmd)
    assert out.rc == 0, out.stderr
    return [(int(line.split()[0]), [*line.split(), ""][1]) for line in out.stdout.splitlines()]
