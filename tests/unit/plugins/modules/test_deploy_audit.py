# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.modules import deploy_audit


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        deploy_audit.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def base(tmp_path, **extra):
    return dict({"path": str(tmp_path / "audit.jsonl"), "event": "rollback", "result": "ok", "app": "shop"}, **extra)


def test_check_mode_writes_nothing(capsys, tmp_path):
    code, res = run_module(capsys, base(tmp_path, _ansible_check_mode=True, release="r1"))
    assert code == 0 and res["changed"] is True and res["entry"]["release"] == "r1"
    assert not (tmp_path / "audit.jsonl").exists()


def test_appends_a_line(capsys, tmp_path):
    code, res = run_module(capsys, base(tmp_path, release="r1", duration=1.5, watch={"requests": 10}))
    assert code == 0 and res["changed"] is True
    line = json.loads((tmp_path / "audit.jsonl").read_text())
    assert line == res["entry"] and line["duration_s"] == 1.5 and line["watch"] == {"requests": 10}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mode": "rw"}, "mode 'rw' is not an octal mode"),
        ({"app": ""}, "app must name the app"),
        ({"duration": -3.0}, "duration -3.0 must be 0 or more seconds"),
    ],
)
def test_bad_input_fails_and_writes_nothing(capsys, tmp_path, extra, message):
    code, res = run_module(capsys, base(tmp_path, **extra))
    assert code == 1 and message in res["msg"], res
    assert not (tmp_path / "audit.jsonl").exists()


def test_missing_directory_fails(capsys, tmp_path):
    code, res = run_module(capsys, dict(base(tmp_path), path=str(tmp_path / "srv" / "audit.jsonl")))
    assert code == 1 and "does not exist" in res["msg"]


def test_failure_is_recorded_as_message(capsys, tmp_path):
    code, res = run_module(capsys, base(tmp_path, result="failed", failure="health check failed on green"))
    assert code == 0 and res["entry"]["message"] == "health check failed on green"
    assert json.loads((tmp_path / "audit.jsonl").read_text())["message"] == "health check failed on green"
