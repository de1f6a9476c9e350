"""release and release_info driven through ansible-runner on a real deploy root in tmp.

Each step checks what the module reports AND the tree on disk (os.readlink, .release-meta JSON,
shared links), never only the module's own word.
"""

from __future__ import annotations

import json
import os

from release_helpers import (
    assert_complete,
    current_release,
    info_task,
    play,
    release_dirs,
    release_task,
    snapshot,
)

SHARED = [".env", "logs/", "storage/"]


def deploy(playbook, root, src, release_id, check=False, **extra):
    args = {"path": str(root), "src": str(src), "release_id": release_id, "shared_paths": SHARED, **extra}
    return playbook(play(release_task("deploy", **args)), check=check, diff=True)


def test_deploy_check_apply_idempotent_rollback_absent(playbook, root, artifacts):
    # check mode first: reports a change, writes nothing at all
    run = deploy(playbook, root, artifacts["1.0.0"], "1.0.0", check=True, sha256=artifacts["sha"]["1.0.0"])
    assert run.failed() == 0 and run.changed() == 1
    res = run.task("deploy")
    assert (res["current"], res["releases"]) == ("1.0.0", ["1.0.0"])
    assert "current: 1.0.0" in res["diff"]["after"]
    assert not root.exists()

    # apply
    run = deploy(
        playbook, root, artifacts["1.0.0"], "1.0.0",
        sha256=artifacts["sha"]["1.0.0"], version="1.0.0", git_sha="a" * 40, deployed_by="ci-bot",
    )
    assert run.failed() == 0 and run.changed() == 1
    res = run.task("deploy")
    assert (res["release_id"], res["current"], res["previous"]) == ("1.0.0", "1.0.0", None)
    assert res["release_path"] == str(root / "releases" / "1.0.0")
    assert os.readlink(root / "current") == "releases/1.0.0"
    meta = assert_complete(root, "1.0.0")
    assert meta["sha256"] == artifacts["sha"]["1.0.0"]
    assert (meta["version"], meta["git_sha"], meta["deployed_by"]) == ("1.0.0", "a" * 40, "ci-bot")
    assert meta["source"] == str(artifacts["1.0.0"]) and meta["created_at"].endswith("Z")
    release = root / "releases" / "1.0.0"
    assert os.readlink(release / ".env") == "../../shared/.env"
    assert os.readlink(release / "logs") == "../../shared/logs"
    assert (root / "shared" / ".env").is_file() and (root / "shared" / "storage").is_dir()
    assert not (root / "shared" / "logs" / "from-artifact.log").exists()
    assert (root / "current" / "app" / "VERSION").read_text() == "1.0.0"
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1.0.0"]  # no temp dirs left

    # re-run: not changed, tree untouched (only the lock file's mtime may move)
    before = snapshot(root)
    run = deploy(playbook, root, artifacts["1.0.0"], "1.0.0", sha256=artifacts["sha"]["1.0.0"])
    assert run.failed() == 0 and run.changed() == 0
    assert snapshot(root) == before

    # shared content survives new releases
    (root / "shared" / ".env").write_text("SECRET=kept\n")
    for version in ("1.1.0", "1.2.0"):
        run = deploy(playbook, root, artifacts[version], version)
        assert run.failed() == 0 and run.changed() == 1
    assert (root / "current" / ".env").read_text() == "SECRET=kept\n"
    assert current_release(root) == "1.2.0"
    assert run.task("deploy")["previous"] == "1.1.0"

    # rollback to previous: check mode first
    rollback = play(release_task("rollback", path=str(root), state="rolled_back"))
    before = snapshot(root)
    run = playbook(rollback, check=True, diff=True)
    assert run.failed() == 0 and run.changed() == 1 and run.task("rollback")["current"] == "1.1.0"
    assert snapshot(root) == before
    run = playbook(rollback, diff=True)
    assert run.failed() == 0 and run.changed() == 1
    res = run.task("rollback")
    assert (res["release_id"], res["current"], res["previous"]) == ("1.1.0", "1.1.0", "1.2.0")
    assert "current: 1.2.0" in res["diff"]["before"] and "current: 1.1.0" in res["diff"]["after"]
    assert current_release(root) == "1.1.0"
    # rolling back again returns to where we were
    run = playbook(rollback)
    assert run.failed() == 0 and current_release(root) == "1.2.0"

    # rollback to a named release; then the same again is not changed
    named = play(release_task("rollback named", path=str(root), state="rolled_back", release_id="1.0.0"))
    run = playbook(named)
    assert run.failed() == 0 and run.changed() == 1 and current_release(root) == "1.0.0"
    assert run.task("rollback named")["previous"] == "1.2.0"
    run = playbook(named)
    assert run.failed() == 0 and run.changed() == 0

    # absent refuses the current release, removes another one
    before = snapshot(root)
    run = playbook(play(release_task("remove", path=str(root), state="absent", release_id="1.0.0")))
    assert run.failed() == 1
    assert "refusing to remove release 1.0.0: it is the current release" in run.task("remove")["msg"]
    assert snapshot(root) == before
    remove = play(release_task("remove", path=str(root), state="absent", release_id="1.1.0"))
    run = playbook(remove, check=True)
    assert run.changed() == 1 and (root / "releases" / "1.1.0").is_dir()
    run = playbook(remove)
    assert run.failed() == 0 and run.changed() == 1
    assert release_dirs(root) == ["1.0.0", "1.2.0"]
    run = playbook(remove)
    assert run.failed() == 0 and run.changed() == 0

    # release_info agrees with the disk, in check mode too, and changes nothing
    before = snapshot(root)
    run = playbook(play(info_task("info", root)), check=True)
    assert run.failed() == 0 and run.changed() == 0
    info = run.task("info")
    assert (info["current"], info["previous"]) == ("1.0.0", "1.2.0")
    assert [(r["id"], r["is_current"]) for r in info["releases"]] == [("1.0.0", True), ("1.2.0", False)]
    assert info["releases"][0]["metadata"] == json.loads((root / "releases/1.0.0/.release-meta").read_text())
    assert snapshot(root) == before


def test_blue_green_build_then_activate(playbook, root, artifacts):
    assert deploy(playbook, root, artifacts["1.0.0"], "1.0.0").failed() == 0
    run = deploy(playbook, root, artifacts["zip"], "2.0.0", activate=False)
    assert run.failed() == 0 and run.changed() == 1
    assert current_release(root) == "1.0.0"  # untouched
    assert (root / "releases" / "2.0.0" / "app" / "VERSION").read_text() == "2.0.0"
    assert json.loads((root / "releases/2.0.0/.release-meta").read_text())["sha256"] == artifacts["sha"]["zip"]
    # re-run of the build-only task: nothing to do
    assert deploy(playbook, root, artifacts["zip"], "2.0.0", activate=False).changed() == 0
    activate = play(release_task("activate", path=str(root), state="activated", release_id="2.0.0"))
    run = playbook(activate, check=True)
    assert run.changed() == 1 and current_release(root) == "1.0.0"
    run = playbook(activate)
    assert run.failed() == 0 and run.changed() == 1
    assert current_release(root) == "2.0.0" and run.task("activate")["previous"] == "1.0.0"
    assert playbook(activate).changed() == 0
    # deploying an existing release with activate=true only switches
    run = deploy(playbook, root, artifacts["1.0.0"], "1.0.0")
    assert run.failed() == 0 and run.changed() == 1 and current_release(root) == "1.0.0"


def test_directory_source(playbook, root, artifacts):
    run = deploy(playbook, root, artifacts["dir"], "3.0.0")
    assert run.failed() == 0 and run.changed() == 1
    assert (root / "current" / "app" / "VERSION").read_text() == "3.0.0"
    assert deploy(playbook, root, artifacts["dir"], "3.0.0").changed() == 0
    (artifacts["dir"] / "app" / "VERSION").write_text("changed")
    run = deploy(playbook, root, artifacts["dir"], "3.0.0")
    assert run.failed() == 1 and "already exists" in run.task("deploy")["msg"]


def test_default_release_id_is_utc_timestamp(playbook, root, artifacts):
    run = playbook(play(release_task("deploy", path=str(root), src=str(artifacts["1.0.0"]))))
    assert run.failed() == 0
    release_id = run.task("deploy")["release_id"]
    assert len(release_id) == 16 and release_id[8] == "T" and release_id.endswith("Z")
    assert current_release(root) == release_id


def test_pruning_keeps_current_and_previous_after_rollbacks(playbook, root, artifacts):
    def dep(version, keep):
        run = deploy(playbook, root, artifacts[version], version, keep_releases=keep)
        assert run.failed() == 0, run.task("deploy")
        return run.task("deploy")

    for version in ("1.0.0", "1.1.0", "1.2.0"):
        res = dep(version, 3)
    assert res["pruned"] == [] and release_dirs(root) == ["1.0.0", "1.1.0", "1.2.0"]

    # roll back to the oldest: current 1.0.0, previous 1.2.0
    run = playbook(play(release_task("rb", path=str(root), state="rolled_back", release_id="1.0.0")))
    assert run.failed() == 0
    # keep 2: newest two are 1.2.0 and 1.3.0; previous (1.0.0, current before the switch) survives too
    res = dep("1.3.0", 2)
    assert (res["current"], res["previous"]) == ("1.3.0", "1.0.0")
    assert res["pruned"] == ["1.1.0"]
    assert release_dirs(root) == ["1.0.0", "1.2.0", "1.3.0"]

    # keep 2 again: 1.0.0 is no longer previous, 1.2.0 is outside the newest two
    res = dep("1.4.0", 2)
    assert res["pruned"] == ["1.0.0", "1.2.0"] and res["previous"] == "1.3.0"
    assert release_dirs(root) == ["1.3.0", "1.4.0"]

    # roll back, then redeploy the current id with keep 1: current and previous both kept
    assert playbook(play(release_task("rb", path=str(root), state="rolled_back"))).failed() == 0
    assert current_release(root) == "1.3.0"
    res = dep("1.3.0", 1)
    assert res["pruned"] == [] and release_dirs(root) == ["1.3.0", "1.4.0"]
    assert res["previous"] == "1.4.0"
