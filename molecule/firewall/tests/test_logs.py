"""logrotate -f while writers write numbered lines: every line is in the rotated + current files,
once; journald runs with the environment's caps."""

import time

import pytest

APP_LOG = "/var/log/firewall-writer/app.log"
APP_LINES = 3000
NGINX_LINES = 2000


def only_app(host):
    if "app" not in host.ansible.get_variables()["group_names"]:
        pytest.skip("not an app host")


def wait_inactive(host, unit, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if host.run("systemctl is-active %s", unit).stdout.strip() not in ("active", "activating"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{unit} still running after {seconds}s")


def wait_lines(host, path, at_least, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if int(host.run("cat %s 2>/dev/null | wc -l", path).stdout.strip() or 0) >= at_least:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not reach {at_least} lines")


def numbers(host, pattern, regex):
    out = host.check_output(f"zcat -f {pattern} | grep -oE '{regex}' | grep -oE '[0-9]+$'")
    return [int(n) for n in out.split()]


def rotate_twice_while_writing(host, config, current):
    for _round in range(2):
        wait_lines(host, current, 100)
        out = host.run("logrotate -f %s", config)
        assert out.rc == 0, out.stderr


def test_app_log_rotated_with_no_line_lost(host):
    only_app(host)
    host.run("rm -f /var/log/firewall-writer/app.log*")
    start = host.run(
        "systemd-run --collect --unit=firewall-writer /usr/bin/python3 /usr/local/bin/numbered-writer %s %s 0.003",
        APP_LOG,
        str(APP_LINES),
    )
    assert start.rc == 0, start.stderr
    rotate_twice_while_writing(host, "/etc/logrotate.d/stackops-app-writer", APP_LOG)
    wait_inactive(host, "firewall-writer")
    assert host.file(APP_LOG + ".2.gz").exists, "second rotation compressed (delaycompress: .1 stays plain)"
    assert host.file(APP_LOG + ".1").exists
    assert host.file(APP_LOG).exists
    got = numbers(host, APP_LOG + "*", "line [0-9]+")
    assert sorted(got) == list(range(1, APP_LINES + 1)), f"{len(got)} lines, {len(set(got))} distinct"


def test_nginx_log_rotated_with_no_line_lost(host):
    only_app(host)
    host.run("rm -f /var/log/nginx/access.log.* && truncate -s 0 /var/log/nginx/access.log")
    start = host.run(
        "systemd-run --collect --unit=firewall-nginx-writer /usr/bin/python3 /usr/local/bin/numbered-writer %s %s %s",
        "http://127.0.0.1/line",
        str(NGINX_LINES),
        "0.005",
    )
    assert start.rc == 0, start.stderr
    rotate_twice_while_writing(host, "/etc/logrotate.d/nginx", "/var/log/nginx/access.log")
    wait_inactive(host, "firewall-nginx-writer")
    assert host.file("/var/log/nginx/access.log.2.gz").exists
    got = numbers(host, "/var/log/nginx/access.log*", "GET /line/[0-9]+")
    assert sorted(got) == list(range(1, NGINX_LINES + 1)), f"{len(got)} lines, {len(set(got))} distinct"


def test_logrotate_config_valid_and_nginx_reopened_by_signal(host):
    only_app(host)
    assert host.run("logrotate -d /etc/logrotate.conf").rc == 0
    conf = host.file("/etc/logrotate.d/nginx").content_string
    assert "kill -USR1" in conf and "delaycompress" in conf and "maxsize 100M" in conf


def test_journald_caps(host):
    dropin = host.file("/etc/systemd/journald.conf.d/50-stackops.conf").content_string
    assert "SystemMaxUse=64M" in dropin
    assert "SystemMaxFileSize" not in dropin  # journald's 1/8 of the cap (8M)
    assert "MaxRetentionSec=2week" in dropin
    # journald was restarted with the drop-in: it reports the cap it applies when it opens the journal.
    out = host.run("journalctl --no-pager -t systemd-journald | grep -E 'max 64\\.0M'")
    assert out.rc == 0, host.run("journalctl --no-pager -t systemd-journald | tail -5").stdout
    assert host.service("systemd-journald").is_running
