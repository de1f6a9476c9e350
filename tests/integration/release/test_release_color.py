"""release_color through ansible-runner on a real deploy root: check mode writes nothing, the idle colour's link
moves to the release (verified with readlink), a re-run changes nothing; bad input names the bad value and leaves
the tree as it was."""

from __future__ import annotations

import json
import os

import pytest
from release_helpers import play, release_task, snapshot

COLOR_MODULE = "stackops.platform.release_color"


def color_task(name, **args):
    return {"name": name, COLOR_MODULE: args}


@pytest.fixture
def deployed(playbook, root, artifacts, tmp_path):
    run = playbook(
        play(
            release_task("r1", path=str(root), src=str(artifacts["1.0.0"]), release_id="1.0.0"),
            release_task("r2", path=str(root), src=str(artifacts["1.1.0"]), release_id="1.1.0", activate=False),
        )
    )
    assert run.failed() == 0, run.results
    (tmp_path / "bg.json").write_text(json.dumps({"active": "green", "previous": "blue"}))
    return root, str(tmp_path / "bg.json")


def test_check_apply_verify_rerun(playbook, deployed):
    root, state_file = deployed
    target = str(root / "releases" / "1.1.0")
    task = color_task("link", path=str(root), state_file=state_file, release_path=target)
    run = playbook(play(task), check=True)
    assert run.failed() == 0 and run.changed() == 1
    assert (run.task("link")["color"], run.task("link")["active"]) == ("blue", "green")
    assert not (root / "colors").exists()

    run = playbook(play(task))
    assert run.failed() == 0 and run.changed() == 1
    assert os.readlink(root / "colors" / "blue") == target
    assert run.task("link")["before"] == "" and run.task("link")["links"] == {"blue": target, "green": ""}

    run = playbook(play(task))
    assert run.failed() == 0 and run.changed() == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"color": "green", "release_path": "@1.1.0"}, "refusing to move the green colour link: nginx serves green"),
        ({"release_path": "@9.9.9"}, "is not a complete release"),
        ({"release_path": "/etc"}, "release_path '/etc' is not a release of"),
        ({"state_file": "@corrupt"}, "is unusable (not JSON"),
    ],
)
def test_bad_input_changes_nothing(playbook, deployed, tmp_path, args, fragment):
    root, state_file = deployed
    params = {"path": str(root), "state_file": state_file, "release_path": "@1.1.0", **args}
    if params["release_path"].startswith("@"):
        params["release_path"] = str(root / "releases" / params["release_path"][1:])
    if params["state_file"] == "@corrupt":
        (tmp_path / "corrupt.json").write_text("{")
        params["state_file"] = str(tmp_path / "corrupt.json")
    before = snapshot(root)
    for check in (True, False):
        run = playbook(play(color_task("bad", **params)), check=check)
        assert run.failed() == 1 and run.changed() == 0
        assert fragment in run.task("bad")["msg"], run.task("bad")["msg"]
        assert snapshot(root) == before
