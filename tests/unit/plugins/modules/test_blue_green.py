# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import socket

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.module_utils import release_core
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import render_upstream
from ansible_collections.stackops.platform.plugins.modules import blue_green

UPSTREAMS = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}


def run_module(capsys, args):
    """Run main() with args; return (exit code, result dict)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        blue_green.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def paths(tmp_path):
    up = tmp_path / "app_upstream.conf"
    up.write_text(render_upstream("app", "blue", UPSTREAMS["blue"]))
    return {"up": up, "state": tmp_path / "state" / "app.json", "dir": tmp_path}


def module_args(paths, **overrides):
    args = {
        "name": "app",
        "color": "green",
        "upstreams": dict(UPSTREAMS),
        "upstream_file": str(paths["up"]),
        "state_file": str(paths["state"]),
        "nginx_test_cmd": ["true"],
        "nginx_reload_cmd": ["true"],
        "force": True,
    }
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"color": "red"}, "red"),
        ({"upstreams": {"blue": "127.0.0.1:8001", "green": "127.0.0.1"}}, "upstreams.green"),
        ({"upstreams": {"blue": "127.0.0.1:8001", "green": "127.0.0.1:http"}}, "'http'"),
        ({"upstreams": {"blue": "127.0.0.1:8001", "purple": "127.0.0.1:8002"}}, "exactly the keys"),
        ({"name": "my app"}, "my app"),
        ({"health_path": "/h", "health_url": "http://{host}:{port}/h"}, "mutually exclusive"),
        ({"verify_header": "X-Color"}, "verify_url"),
        ({"healthy_threshold": 0}, "healthy_threshold"),
    ],
)
def test_bad_arguments_fail_and_change_nothing(capsys, paths, overrides, named):
    before = paths["up"].read_bytes()
    code, result = run_module(capsys, module_args(paths, **overrides))
    assert code == 1
    assert result["failed"] is True
    assert named in result["msg"]
    assert paths["up"].read_bytes() == before
    assert not paths["state"].exists()


def test_switch_and_rerun(capsys, paths):
    code, result = run_module(capsys, module_args(paths))
    assert code == 0
    assert (result["changed"], result["switched"]) == (True, True)
    assert (result["previous"], result["active"]) == ("blue", "green")
    assert result["upstream"] == "127.0.0.1:8002"
    assert result["upstream_name"] == "app_backend"
    assert "force=true" in json.dumps(result.get("warnings"))  # 2.19 wraps warnings in WarningSummary objects
    assert "diff" not in result
    assert "server 127.0.0.1:8002;" in paths["up"].read_text()
    assert json.loads(paths["state"].read_text())["active"] == "green"

    code, again = run_module(capsys, module_args(paths))
    assert code == 0
    assert (again["changed"], again["switched"]) == (False, False)


def test_check_mode_with_diff_changes_nothing(capsys, paths):
    before = paths["up"].read_bytes()
    args = module_args(paths, _ansible_check_mode=True, _ansible_diff=True)
    code, result = run_module(capsys, args)
    assert code == 0
    assert result["changed"] is True
    assert "127.0.0.1:8001" in result["diff"]["before"]
    assert "127.0.0.1:8002" in result["diff"]["after"]
    assert paths["up"].read_bytes() == before
    assert not paths["state"].exists()


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        ({"nginx_test_cmd": ["false"]}, "nginx rejected the configuration"),
        ({"nginx_reload_cmd": ["false"]}, "nginx reload failed"),
        ({"nginx_test_cmd": ["/nonexistent/nginx", "-t"]}, "/nonexistent/nginx"),
    ],
)
def test_nginx_command_failure_restores(capsys, paths, overrides, expect):
    before = paths["up"].read_bytes()
    code, result = run_module(capsys, module_args(paths, **overrides))
    assert code == 1
    assert expect in result["msg"]
    assert paths["up"].read_bytes() == before
    assert not paths["state"].exists()


def test_unhealthy_target_fails_with_last_answer(capsys, paths):
    """Nothing listens on the green port: the failure names the connection error and nothing changes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = paths["up"].read_bytes()
    args = module_args(
        paths,
        force=False,
        upstreams={"blue": "127.0.0.1:8001", "green": f"127.0.0.1:{port}"},
        health_timeout=0.3,
        health_interval=0.1,
    )
    code, result = run_module(capsys, args)
    assert code == 1
    assert "green" in result["msg"]
    assert "no answer" in result["msg"]
    assert result["health"]["ok"] is False
    assert result["health_checks"] >= 1
    assert paths["up"].read_bytes() == before
    assert not paths["state"].exists()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"release": "previous", "release_path": "/srv/app"}, "mutually exclusive: color|release"),
        ({"color": None}, "one of the following is required: color, release"),
        ({"color": None, "release": "previous"}, "missing parameter(s) required by 'release': release_path"),
    ],
)
def test_colour_or_release_arguments(capsys, paths, overrides, named):
    before = paths["up"].read_text()
    args = {k: v for k, v in module_args(paths, **overrides).items() if v is not None}
    code, result = run_module(capsys, args)
    assert code == 1 and named in result["msg"], result["msg"]
    assert paths["up"].read_text() == before and not paths["state"].exists()


def test_release_puts_the_colour_running_it_live(capsys, paths, tmp_path):
    root = tmp_path / "srv"
    for rid in ("r1", "r2"):
        src = tmp_path / f"src-{rid}"
        src.mkdir()
        release_core.run({"path": str(root), "src": str(src), "release_id": rid})
    (root / "colors").mkdir()
    (root / "colors" / "blue").symlink_to("../releases/r1")
    (root / "colors" / "green").symlink_to("../releases/r2")
    args = {k: v for k, v in module_args(paths, color=None, release="previous", release_path=str(root)).items()
            if v is not None}  # fmt: skip
    code, result = run_module(capsys, args)
    assert code == 0 and result["changed"] and result["release"] == "r1" and result["active"] == "blue"
    assert result["current_moved"] and os.readlink(root / "current") == "releases/r1"
    code, result = run_module(capsys, dict(args, release="r9"))
    assert code == 1 and "release 'r9' does not exist; available releases: r1, r2" in result["msg"]
