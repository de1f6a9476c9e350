"""Behaviour a Redis user relies on: auth required, ACL enforced, bound where configured."""

import pytest

ADMIN = "molecule-admin-password-0123"
APP = "molecule-app-password-0123"


def cli(host, *args, user=None, password=None):
    cmd = ["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", "6379"]
    if user:
        cmd += ["--user", user]
    if password:
        cmd += ["--pass", password]
    argv = [*cmd, *args]
    # testinfra shell-quotes each %s argument (so "KEYS *" is not globbed).
    return host.run(" ".join(["%s"] * len(argv)), *argv)


@pytest.fixture(autouse=True)
def journal_on_failure(host, request):
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(host.run("journalctl -u redis-server --no-pager -n 50").stdout)


def test_service_running_and_enabled(host):
    svc = host.service("redis-server")
    assert svc.is_running, host.run("journalctl -u redis-server --no-pager -n 50").stdout
    assert svc.is_enabled


def test_listens_only_on_loopback(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":6379")]
    assert listening == ["tcp://127.0.0.1:6379"]


def test_unauthenticated_client_refused(host):
    out = cli(host, "SET", "k", "v")
    assert "NOAUTH" in out.stdout + out.stderr


def test_wrong_password_refused(host):
    out = cli(host, "PING", user="app", password="not-the-password-at-all")
    assert "WRONGPASS" in out.stdout + out.stderr


def test_app_user_can_set_and_get(host):
    assert cli(host, "SET", "molecule:key", "hello", user="app", password=APP).stdout.strip() == "OK"
    assert cli(host, "GET", "molecule:key", user="app", password=APP).stdout.strip() == "hello"


@pytest.mark.parametrize("command", [["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"]])
def test_app_user_denied_dangerous_commands(host, command):
    cli(host, "SET", "molecule:survivor", "still-here", user="app", password=APP)
    out = cli(host, *command, user="app", password=APP)
    assert "NOPERM" in out.stdout + out.stderr, out.stdout
    # Data written before a refused FLUSHALL/FLUSHDB is still there.
    assert cli(host, "GET", "molecule:survivor", user="app", password=APP).stdout.strip() == "still-here"


@pytest.mark.parametrize(
    "command",
    [
        ["flushall"],
        ["flushdb"],
        ["config", "get", "port"],
        ["debug", "sleep", "0"],
        ["keys", "*"],
        ["shutdown"],
        ["monitor"],
    ],
)
def test_acl_denies_command_to_app_user(host, command):
    # ACL DRYRUN asks the ACL alone (DEBUG is also disabled server-wide, which would hide the ACL).
    out = cli(host, "ACL", "DRYRUN", "app", *command, user="default", password=ADMIN)
    assert "no permissions" in out.stdout, out.stdout


def test_acl_allows_normal_commands_to_app_user(host):
    for command in (["get", "k"], ["set", "k", "v"], ["lpush", "q", "job"], ["brpop", "q", "1"]):
        out = cli(host, "ACL", "DRYRUN", "app", *command, user="default", password=ADMIN)
        assert out.stdout.strip() == "OK", (command, out.stdout)


def test_admin_user_has_full_access(host):
    out = cli(host, "CONFIG", "GET", "appendfsync", user="default", password=ADMIN)
    assert "everysec" in out.stdout


def test_persistence_and_memory_settings(host):
    def config_get(name):
        return cli(host, "CONFIG", "GET", name, user="default", password=ADMIN).stdout.split()[-1]

    assert config_get("appendonly") == "yes"
    assert config_get("maxmemory-policy") == "noeviction"
    assert config_get("maxmemory") == str(256 * 1024 * 1024)
    assert config_get("protected-mode") == "yes"


def test_secret_files_not_world_readable(host):
    for path in ("/etc/redis/users.acl", "/etc/redis/redis.conf"):
        f = host.file(path)
        assert f.mode == 0o640, path
        assert f.user == "redis"
    acl = host.file("/etc/redis/users.acl").content_string
    assert APP not in acl and ADMIN not in acl


def test_debian_hardening_kept(host):
    unit = host.run("systemctl show redis-server -p ProtectSystem -p NoNewPrivileges -p PrivateTmp").stdout
    assert "ProtectSystem=strict" in unit or "ProtectSystem=full" in unit
    assert "NoNewPrivileges=yes" in unit
    assert "PrivateTmp=yes" in unit
