# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.module_utils import release_core as core
from ansible_collections.stackops.platform.plugins.modules import release_color


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        release_color.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def root(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "VERSION").write_text("1")
    root = tmp_path / "srv"
    core.run({"path": str(root), "src": str(src), "release_id": "r1"})
    return root


def test_check_mode_then_apply_then_unchanged_with_diff(capsys, root, tmp_path):
    args = {"path": str(root), "state_file": str(tmp_path / "none.json"), "release_path": str(root / "releases/r1")}
    code, res = run_module(capsys, {**args, "_ansible_check_mode": True, "_ansible_diff": True})
    assert code == 0 and res["changed"] is True and res["color"] == "green"
    assert res["diff"]["after"] == f"green: {root}/releases/r1\n"
    assert not (root / "colors" / "green").exists()
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is True and os.readlink(root / "colors" / "green") == str(root / "releases/r1")
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is False and (res["active"], res["idle"]) == ("blue", "green")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"release_path": ""}, "release_path must not be empty"),
        ({"release_path": "/nowhere/releases/r1"}, "release_path '/nowhere/releases/r1' is not a release of"),
        ({"color": "blue", "release_path": "@r1"}, "refusing to move the blue colour link"),
        ({"color": "red"}, "value of color must be one of: idle, blue, green, got: red"),
    ],
)
def test_bad_input_fails_and_changes_nothing(capsys, root, tmp_path, extra, fragment):
    if extra.get("release_path", "").startswith("@"):
        extra = dict(extra, release_path=str(root / "releases" / extra["release_path"][1:]))
    code, res = run_module(capsys, {"path": str(root), "state_file": str(tmp_path / "s.json"), **extra})
    assert code == 1 and fragment in res["msg"], res["msg"]
    assert not (root / "colors").exists()
