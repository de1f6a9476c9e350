# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.module_utils.release_core import run
from ansible_collections.stackops.platform.plugins.modules import release_info


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        release_info.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_reports_releases(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("x")
    root = tmp_path / "app"
    run({"path": str(root), "src": str(src), "release_id": "r1", "version": "1.0"})
    (src / "a.txt").write_text("y")
    run({"path": str(root), "src": str(src), "release_id": "r2"})
    code, res = run_module(capsys, {"path": str(root), "_ansible_check_mode": True})
    assert code == 0 and res["changed"] is False
    assert (res["current"], res["previous"]) == ("r2", "r1")
    assert [(r["id"], r["is_current"], r["is_previous"]) for r in res["releases"]] == [
        ("r1", False, True),
        ("r2", True, False),
    ]
    assert res["releases"][0]["metadata"]["version"] == "1.0"
    assert res["current_path"] == str(root / "releases" / "r2")


@pytest.mark.parametrize(("sub", "fragment"), [("missing", "does not exist"), ("", "not a deploy root")])
def test_errors(capsys, tmp_path, sub, fragment):
    code, res = run_module(capsys, {"path": str(tmp_path / sub)})
    assert code == 1 and fragment in res["msg"]


def test_reports_links_and_names_a_bad_one(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    root = tmp_path / "app"
    run({"path": str(root), "src": str(src), "release_id": "r1"})
    (root / "colors").mkdir()
    (root / "colors" / "blue").symlink_to("../releases/r1")
    code, res = run_module(capsys, {"path": str(root), "links": ["colors/blue", "colors/green"]})
    assert code == 0 and res["changed"] is False
    assert res["links"]["colors/blue"]["release_id"] == "r1"
    assert res["links"]["colors/green"]["exists"] is False
    code, res = run_module(capsys, {"path": str(root), "links": ["colors/blue", "../escape"]})
    assert code == 1 and "'../escape' leaves the deploy root" in res["msg"]
