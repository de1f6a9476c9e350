"""release with color_state_file through ansible-runner on a real deploy root: one task sends and builds the release
and points the idle colour's link at it (verified with readlink); check mode only reads; a re-run changes nothing;
an unusable state file or activate=true is refused with the tree as it was."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from release_helpers import play, release_task, snapshot


@pytest.fixture
def estate(playbook, root, artifacts, tmp_path):
    """1.0.0 current and in the blue colour, nginx on blue; the args that stage 1.1.0 (sent from the controller)."""
    run = playbook(play(release_task("r1", path=str(root), src=str(artifacts["1.0.0"]), release_id="1.0.0")))
    assert run.failed() == 0, run.results
    (root / "colors").mkdir()
    os.symlink(str(root / "releases" / "1.0.0"), root / "colors" / "blue")
    state_file = tmp_path / "bg.json"
    state_file.write_text(json.dumps({"active": "blue", "previous": None}))
    args = {
        "path": str(root),
        "src": str(artifacts["1.1.0"]),
        "upload_dir": str(tmp_path / "cache"),
        "sha256": hashlib.sha256(artifacts["1.1.0"].read_bytes()).hexdigest(),
        "release_id": "1.1.0",
        "activate": False,
        "color_state_file": str(state_file),
    }
    return root, state_file, args


def test_check_then_build_and_link_in_one_task_then_rerun(playbook, estate):
    root, _state_file, args = estate
    old, new = str(root / "releases" / "1.0.0"), str(root / "releases" / "1.1.0")
    before = snapshot(root)
    run = playbook(play(release_task("stage", **args)), check=True, diff=True)
    assert run.failed() == 0 and run.changed() == 1, run.results
    colors = run.task("stage")["colors"]
    assert (colors["active"], colors["idle"], colors["color"], colors["after"]) == ("blue", "green", None, None)
    assert snapshot(root) == before

    run = playbook(play(release_task("stage", **args)), diff=True)
    assert run.failed() == 0 and run.changed() == 1, run.results
    res = run.task("stage")
    assert (res["release_id"], res["current"]) == ("1.1.0", "1.0.0")
    assert res["colors"] == {
        "active": "blue", "idle": "green", "recorded": True, "links": {"blue": old, "green": new},
        "color": "green", "before": "", "after": new,
    }  # fmt: skip
    assert os.readlink(root / "colors" / "green") == new and os.readlink(root / "colors" / "blue") == old
    assert os.readlink(root / "current") == "releases/1.0.0"
    assert (root / "releases" / "1.1.0" / "app" / "VERSION").read_bytes() == b"1.1.0"

    run = playbook(play(release_task("stage", **args)))
    assert run.failed() == 0 and run.changed() == 0, run.results


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("corrupt", "is unusable (not JSON"),
        ("not-a-link", "colors/green exists but is not a symlink"),
        ("activate", "needs activate=false"),
    ],
)
def test_refusals_change_nothing(playbook, estate, tmp_path, change, fragment):
    root, state_file, args = estate
    if change == "corrupt":
        state_file.write_text("{")
    elif change == "not-a-link":
        (root / "colors" / "green").mkdir()
    else:
        args = dict(args, activate=True)
    before = snapshot(root)
    for check in (True, False):
        run = playbook(play(release_task("bad", **args)), check=check)
        assert run.failed() == 1 and run.changed() == 0, run.results
        assert fragment in run.task("bad")["msg"], run.task("bad")["msg"]
        assert snapshot(root) == before
        assert not (tmp_path / "cache").exists()
