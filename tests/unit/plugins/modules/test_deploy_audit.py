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


def test_ok_event_leaves_the_deploy_marker_in_the_same_call(capsys, tmp_path):
    textfile = tmp_path / "node-exporter"
    args = base(tmp_path, event="deploy", release="r2", color="green", marker_dir=str(textfile))
    code, res = run_module(capsys, args)
    assert code == 0 and res["marker_file"] == str(textfile / "stackops_deploy_shop.prom")
    assert oct(textfile.stat().st_mode & 0o777) == "0o775"
    lines = (textfile / "stackops_deploy_shop.prom").read_text().splitlines()
    assert lines[:2] == [
        "# HELP stackops_deploy_event_timestamp_seconds Unix time of the last deploy, rollback or switch of the app"
        " on this host.",
        "# TYPE stackops_deploy_event_timestamp_seconds gauge",
    ]
    sample, value = lines[2].rsplit(" ", 1)
    assert sample == 'stackops_deploy_event_timestamp_seconds{app="shop",event="deploy",release="r2",color="green"}'
    assert float(value) > 1.7e9
    # marker_release names what serves when it differs from the event's release (a switch).
    run_module(capsys, base(tmp_path, event="switch", color="blue", marker_dir=str(textfile), marker_release="r1"))
    assert 'event="switch",release="r1",color="blue"' in (textfile / "stackops_deploy_shop.prom").read_text()


def test_failed_event_and_check_mode_leave_the_marker_as_it_was(capsys, tmp_path):
    textfile = tmp_path / "node-exporter"
    textfile.mkdir()
    marker = textfile / "stackops_deploy_shop.prom"
    marker.write_text("old\n")
    run_module(capsys, base(tmp_path, result="failed", failure="boom", marker_dir=str(textfile)))
    run_module(capsys, base(tmp_path, marker_dir=str(textfile), _ansible_check_mode=True))
    assert marker.read_text() == "old\n"
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 1


def test_a_marker_that_cannot_be_written_is_a_warning_not_a_failure(capsys, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code, res = run_module(capsys, base(tmp_path, marker_dir=str(blocker)))
    assert code == 0 and res["marker_file"] is None
    assert f"{blocker} exists but is not a directory" in res["marker_error"]
    assert "deploy marker was not written" in json.dumps(res["warnings"])
    # The event itself is in the log.
    assert json.loads((tmp_path / "audit.jsonl").read_text())["event"] == "rollback"
