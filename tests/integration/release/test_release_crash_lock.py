"""A deploy SIGKILLed between steps never breaks `current`; a held lock stops a second deploy."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time

import pytest
from release_helpers import assert_complete, current_release, play, release_task, run_core, snapshot


@pytest.fixture
def deployed(root, artifacts):
    for version in ("1.0.0", "1.1.0"):
        proc = run_core({"path": str(root), "src": str(artifacts[version]), "release_id": version})
        assert proc.returncode == 0, proc.stderr
    return root


# step -> where `current` must point after the kill (the new release 1.2.0 only once the rename is done)
KILL_POINTS = {
    "extracted": "1.1.0",  # archive unpacked into releases/.1.2.0.tmp-<pid>
    "built": "1.1.0",  # meta written and fsynced, not renamed yet
    "renamed": "1.1.0",  # releases/1.2.0 complete, current not switched
    "linked": "1.1.0",  # temporary symlink created, not renamed over current
    "switched": "1.2.0",  # current switched, .release-state not written yet
}


@pytest.mark.parametrize("step", list(KILL_POINTS))
def test_deploy_killed_at_step_keeps_current_complete(playbook, deployed, artifacts, step):
    params = {"path": str(deployed), "src": str(artifacts["1.2.0"]), "release_id": "1.2.0"}
    proc = run_core(params, kill_at=step)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)

    # current resolves to a complete release with its metadata
    expected = KILL_POINTS[step]
    assert current_release(deployed) == expected
    assert_complete(deployed, expected)
    assert (deployed / "current" / "app" / "VERSION").read_text() == expected
    leftovers = sorted(p.name for p in (deployed / "releases").iterdir() if p.name.startswith("."))
    if step in ("extracted", "built"):
        assert len(leftovers) == 1 and leftovers[0].startswith(".1.2.0.tmp-"), leftovers
    # a partial build never counts as a release
    info = playbook(play({"name": "info", "stackops.platform.release_info": {"path": str(deployed)}}))
    assert info.failed() == 0
    ids = [r["id"] for r in info.task("info")["releases"]]
    assert ids == (["1.0.0", "1.1.0"] if step in ("extracted", "built") else ["1.0.0", "1.1.0", "1.2.0"])
    if step == "switched":  # the state write was lost: previous still comes out right
        assert info.task("info")["previous"] == "1.1.0"

    # the next normal deploy succeeds and cleans the leftovers
    run = playbook(play(release_task("deploy", **params)))
    assert run.failed() == 0, run.task("deploy")
    res = run.task("deploy")
    assert (res["current"], res["previous"]) == ("1.2.0", "1.1.0")
    assert current_release(deployed) == "1.2.0"
    assert_complete(deployed, "1.2.0")
    assert not [p for p in (deployed / "releases").iterdir() if p.name.startswith(".")]
    assert not [p for p in deployed.iterdir() if ".tmp-" in p.name]
    if leftovers:
        assert res["cleaned"] == [f"releases/{leftovers[0]}"]
    # and a rollback from there goes to the release that served before the crash
    run = playbook(play(release_task("rb", path=str(deployed), state="rolled_back")))
    assert run.failed() == 0 and current_release(deployed) == "1.1.0"


HOLDER = {"pid": 31337, "host": "build-7", "user": "alice", "started_at": "2026-02-20T05:12:28Z"}


def hold_lock(root):
    fd = os.open(root / ".deploy.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(HOLDER).encode(), 0)
    return fd


@pytest.mark.parametrize(
    "args",
    [
        {"src": "@1.2.0", "release_id": "1.2.0"},
        {"state": "rolled_back"},
        {"state": "absent", "release_id": "1.0.0"},
    ],
    ids=["deployed", "rolled_back", "absent"],
)
def test_lock_held_fails_naming_holder(playbook, deployed, artifacts, args):
    args = dict(args)
    if "src" in args:
        args["src"] = str(artifacts[args["src"][1:]])
    fd = hold_lock(deployed)
    try:
        before = snapshot(deployed)
        started = time.monotonic()
        run = playbook(play(release_task("deploy", path=str(deployed), lock_timeout=1, **args)))
        assert run.failed() == 1
        res = run.task("deploy")
        assert "is locked by pid 31337 on host build-7 (user alice) since 2026-02-20T05:12:28Z" in res["msg"]
        assert "after waiting 1s" in res["msg"]
        assert res["lock_holder"] == HOLDER
        assert time.monotonic() - started >= 1
        assert snapshot(deployed) == before
        assert current_release(deployed) == "1.1.0"
    finally:
        os.close(fd)


def test_lock_timeout_waits_for_holder(playbook, deployed, artifacts):
    fd = hold_lock(deployed)
    timer = threading.Timer(3, os.close, args=(fd,))
    timer.start()
    try:
        run = playbook(
            play(release_task("deploy", path=str(deployed), src=str(artifacts["1.2.0"]), release_id="1.2.0",
                              lock_timeout=60))
        )
    finally:
        timer.join()
    assert run.failed() == 0, run.task("deploy")
    assert current_release(deployed) == "1.2.0"
    # the lock file is left empty when no deploy runs
    assert (deployed / ".deploy.lock").read_text() == ""
