"""What a Jaeger operator relies on after the role ran.

Offline CI runs this against a STAND-IN archive (tests/standins/build_jaeger_standin.py): a Python
script that answers health on the admin port and holds the OTLP and query ports open. It stores no
spans. Tests marked `real_only` need the real jaeger-all-in-one v1
(export JAEGER_ARCHIVE=/path/to/jaeger-<version>-linux-amd64.tar.gz) and skip otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SERVICE = "jaeger"
ENV_FILE = "/etc/jaeger/jaeger.env"
PORTS = {"otlp-grpc": 4317, "otlp-http": 4318, "query-http": 16686, "admin": 14269}
REAL = bool(os.environ.get("JAEGER_ARCHIVE"))
real_only = pytest.mark.skipif(
    not REAL, reason="stand-in archive: only the real Jaeger speaks OTLP and the query API (set JAEGER_ARCHIVE)"
)


def journal(host):
    return host.run(f"journalctl -u {SERVICE} --no-pager -n 50").stdout


def curl(host, url, *extra):
    argv = ["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", *extra, url]
    out = host.run(" ".join(["%s"] * len(argv)), *argv)
    body, code = ("\n" + out.stdout).rsplit("\n", 1)
    return int(code or 0), body


def env_file(host):
    values = {}
    for line in host.file(ENV_FILE).content_string.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value.strip('"')
    return values


def test_service_running_and_enabled(host):
    svc = host.service(SERVICE)
    assert svc.is_running, journal(host)
    assert svc.is_enabled


@pytest.mark.parametrize("name", sorted(PORTS))
def test_port_listens_only_on_loopback(host, name):
    port = PORTS[name]
    listening = [s for s in host.socket.get_listening_sockets() if s.startswith("tcp") and s.endswith(f":{port}")]
    assert listening == [f"tcp://127.0.0.1:{port}"], journal(host)


def test_health_on_admin_port(host):
    code, body = curl(host, "http://127.0.0.1:14269/")
    assert code == 200, journal(host)
    assert json.loads(body)["status"] == "Server available"


def test_runs_as_jaeger_system_user(host):
    user = host.user("jaeger")
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    pid = host.run(f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    assert pid not in ("", "0"), journal(host)
    assert host.file(f"/proc/{pid}").user == "jaeger"


def test_release_layout(host):
    current = host.file("/opt/jaeger/current")
    assert current.is_symlink and current.linked_to.startswith("/opt/jaeger/")
    binary = host.file("/opt/jaeger/current/jaeger-all-in-one")
    assert binary.is_file and binary.user == "root" and binary.mode & 0o022 == 0
    assert host.run("runuser -u jaeger -- test -w /opt/jaeger/current/jaeger-all-in-one").rc != 0


def test_env_file_mode_and_listeners(host):
    f = host.file(ENV_FILE)
    assert (f.user, f.group, f.mode) == ("root", "jaeger", 0o640)
    assert "Ansible managed" in f.content_string
    env = env_file(host)
    assert env["COLLECTOR_OTLP_GRPC_HOST_PORT"] == "127.0.0.1:4317"
    assert env["COLLECTOR_OTLP_HTTP_HOST_PORT"] == "127.0.0.1:4318"
    assert env["QUERY_HTTP_SERVER_HOST_PORT"] == "127.0.0.1:16686"
    assert env["ADMIN_HTTP_HOST_PORT"] == "127.0.0.1:14269"
    # No listener is configured on a wildcard address.
    for key, value in env.items():
        if key.endswith("HOST_PORT") and value:
            assert value.startswith("127.0.0.1:"), (key, value)


def test_badger_storage_configured(host):
    env = env_file(host)
    assert env["SPAN_STORAGE_TYPE"] == "badger"
    assert env["BADGER_EPHEMERAL"] == "false"
    assert env["BADGER_SPAN_STORE_TTL"] == "48h"
    assert "MEMORY_MAX_TRACES" not in env
    for key in ("BADGER_DIRECTORY_KEY", "BADGER_DIRECTORY_VALUE"):
        d = host.file(env[key])
        assert d.is_directory and d.user == "jaeger" and d.mode == 0o750, key
        assert env[key].startswith("/var/lib/jaeger/")


def test_unit_hardening(host):
    props = dict(
        line.split("=", 1)
        for line in host.run(
            f"systemctl show {SERVICE} -p ProtectSystem -p ProtectHome -p NoNewPrivileges -p PrivateTmp "
            "-p ReadWritePaths -p User -p CapabilityBoundingSet -p EnvironmentFiles"
        ).stdout.splitlines()
    )
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["NoNewPrivileges"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["User"] == "jaeger"
    assert props["ReadWritePaths"].split() == ["/var/lib/jaeger"]
    assert props["CapabilityBoundingSet"] == ""
    assert props["EnvironmentFiles"].startswith(ENV_FILE)


def test_service_sees_a_read_only_system_except_its_data_dir(host):
    # Enter the running service's own mount namespace: even root gets EROFS outside ReadWritePaths.
    pid = host.run(f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    assert pid not in ("", "0"), journal(host)
    out = host.run(
        "nsenter -t %s -m -- sh -c "
        "'touch /var/lib/jaeger/.probe && rm /var/lib/jaeger/.probe && echo data-writable; "
        "for d in /opt/jaeger /etc/jaeger /usr/local; do touch $d/.probe 2>&1; done'",
        pid,
    )
    assert "data-writable" in out.stdout, out.stdout + out.stderr
    assert out.stdout.count("Read-only file system") == 3, out.stdout
    assert not host.file("/opt/jaeger/.probe").exists


def test_preflight_requires_the_archive_sha256(host, tmp_path):
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run through molecule"
    before = host.file(ENV_FILE).sha256sum
    playbook = tmp_path / "preflight.yml"
    play = {
        "name": "Run the jaeger role without the archive sha256",
        "hosts": "jaeger-instance",
        "gather_facts": False,
        "vars": {"jaeger_storage": "memory"},
        "tasks": [{"ansible.builtin.include_role": {"name": "stackops.platform.jaeger"}}],
    }
    playbook.write_text(yaml.safe_dump([play]))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory, str(playbook)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "jaeger_archive_sha256 must be the sha256" in out, out
    assert host.file(ENV_FILE).sha256sum == before, "a failed preflight must not touch the configuration"


@real_only
def test_real_query_api_answers(host):
    code, body = curl(host, "http://127.0.0.1:16686/api/services")
    assert code == 200, body
    assert "data" in json.loads(body)


@real_only
def test_real_otlp_http_accepts_traces(host):
    code, body = curl(
        host, "http://127.0.0.1:4318/v1/traces", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}"
    )
    assert code == 200, body


@real_only
def test_real_every_tcp_listener_is_loopback(host):
    pid = host.run(f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    lines = host.run("ss -Htlnp").stdout.splitlines()
    mine = [line.split()[3] for line in lines if f"pid={pid}," in line]
    assert mine, lines
    assert all(addr.startswith("127.0.0.1:") for addr in mine), mine
