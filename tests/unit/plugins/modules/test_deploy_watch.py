# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.modules import deploy_watch, wait_healthy

UPSTREAMS = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}


def run_module(module, capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def log_line(status, upstream):
    return f'127.0.0.1 - - [x] "GET / HTTP/1.1" {status} 5 "-" "t" req_id=a upstream={upstream} rt=0.002 urt=0.001\n'


def test_watch_reads_from_the_offset_and_reports_a_breach(tmp_path, capsys):
    log = tmp_path / "app.access.log"
    log.write_text(log_line(500, UPSTREAMS["green"]) * 50)
    offset = log.stat().st_size
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(log_line(200, UPSTREAMS["green"]) * 18 + log_line(503, UPSTREAMS["green"]) * 2)
        fh.write(log_line(500, UPSTREAMS["blue"]) * 7)
    rc, result = run_module(
        deploy_watch,
        capsys,
        {
            "name": "app",
            "color": "green",
            "upstreams": UPSTREAMS,
            "log_path": str(log),
            "start_offset": offset,
            "start_inode": log.stat().st_ino,
            "seconds": 0.3,
            "interval": 0.1,
        },
    )
    assert rc == 0 and result["changed"] is False
    assert (result["requests"], result["errors_5xx"], result["error_ratio"]) == (20, 2, 0.1)
    assert result["breached"] and result["stopped_early"] and result["lines_other"] == 7
    assert "5xx ratio 10.00% (2 of 20) above 1.00%" in result["reason"]


def test_watch_of_a_missing_log_fails_naming_it(tmp_path, capsys):
    rc, result = run_module(
        deploy_watch,
        capsys,
        {
            "name": "app",
            "color": "green",
            "upstreams": UPSTREAMS,
            "log_path": str(tmp_path / "none.log"),
            "seconds": 1,
        },
    )
    assert rc == 1 and "none.log" in result["msg"]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"seconds": -1}, "seconds=-1.0"),
        ({"max_error_ratio": 2}, "max_error_ratio=2.0"),
        ({"start_offset": -5}, "start_offset=-5"),
        ({"upstreams": {"blue": UPSTREAMS["blue"]}}, "upstream address of green"),
    ],
)
def test_watch_bad_input(tmp_path, capsys, override, words):
    log = tmp_path / "app.access.log"
    log.write_text("")
    args = {"name": "app", "color": "green", "upstreams": UPSTREAMS, "log_path": str(log), "seconds": 1}
    args.update(override)
    rc, result = run_module(deploy_watch, capsys, args)
    assert rc == 1 and words in result["msg"], result


def test_colour_addresses_accept_a_list():
    assert deploy_watch.color_addresses({"green": ["a:1", " b:2 "]}, "green") == ["a:1", "b:2"]
    assert deploy_watch.color_addresses({"green": "a:1"}, "blue") == []


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"url": "ftp://x/health"}, "url='ftp://x/health'"),
        ({"unit": "api@green two"}, "unit='api@green two'"),
        ({"timeout": 0}, "timeout=0.0"),
        ({"healthy_threshold": 0}, "healthy_threshold=0"),
    ],
)
def test_wait_healthy_bad_input(capsys, override, words):
    args = {"unit": "api@green.service", "url": "http://127.0.0.1:8002/health"}
    args.update(override)
    rc, result = run_module(wait_healthy, capsys, args)
    assert rc == 1 and words in result["msg"], result


def test_wait_healthy_check_mode_waits_for_nothing(capsys):
    args = {"unit": "api@green.service", "url": "http://127.0.0.1:1/health", "_ansible_check_mode": True}
    rc, result = run_module(wait_healthy, capsys, args)
    assert rc == 0 and result["skipped"] and result["attempts"] == 0


def test_wait_healthy_check_mode_restarts_nothing_and_reports_the_change(capsys, monkeypatch):
    def no_commands(*_args, **_kwargs):
        raise AssertionError("check mode ran a command")

    monkeypatch.setattr(wait_healthy.AnsibleModule, "run_command", no_commands)
    args = {
        "unit": "api@green.service",
        "url": "http://127.0.0.1:1/health",
        "restart": True,
        "enable": True,
        "_ansible_check_mode": True,
    }
    rc, result = run_module(wait_healthy, capsys, args)
    assert rc == 0 and result["changed"] and result["skipped"] and result["actions"] == []


def test_wait_healthy_fails_with_systemds_words_when_the_restart_fails(capsys, monkeypatch):
    def systemctl(_module, argv, **_kwargs):
        return (1, "", "Unit api@green.service not found.") if argv[1] == "restart" else (0, "enabled\n", "")

    monkeypatch.setattr(wait_healthy.AnsibleModule, "run_command", systemctl)
    args = {"unit": "api@green.service", "url": "http://127.0.0.1:1/health", "restart": True, "enable": True}
    rc, result = run_module(wait_healthy, capsys, args)
    assert (
        rc == 1
        and "systemctl restart api@green.service failed (rc 1): Unit api@green.service not found." in result["msg"]
    )
    assert result["actions"] == []
