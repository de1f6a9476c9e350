"""release with upload_dir through ansible-runner (its action plugin): the controller's archive is sent once into
the remote tmp directory, checked against sha256 on the host, placed 0600 in upload_dir (created 0700) and the
release built from it, in one task; check mode sends and writes nothing; a wrong sha256 or a missing controller
file places nothing and builds nothing; the remote tmp directory never outlives the task; without upload_dir the
module runs as before, with no remote tmp directory (pipelining)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from release_helpers import app_files, current_release, make_tar, play, release_task, snapshot

NAME = "app-1.0.0.tar.gz"


@pytest.fixture
def estate(tmp_path):
    controller = tmp_path / "controller"
    controller.mkdir()
    archive = make_tar(controller / NAME, {f"app-1.0.0/{k}": v for k, v in app_files("1.0.0").items()})
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    (tmp_path / "a-file").write_text("a remote tmp directory cannot be made under a file\n")
    return {
        "archive": archive,
        "sha": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "root": tmp_path / "srv" / "app",
        "cache": tmp_path / "var" / "cache" / "releases",
        "remote_tmp": remote_tmp,
        # The remote tmp directory in a place the test can watch (the local connection's "host" is this machine).
        "env": {"ANSIBLE_REMOTE_TMP": str(remote_tmp)},
        # Where making a remote tmp directory fails the task: proves that none is made (no round trip).
        "no_tmp": {"ANSIBLE_REMOTE_TMP": str(tmp_path / "a-file" / "tmp")},
    }


def upload_task(estate, name="deploy", **overrides):
    args = {
        "path": str(estate["root"]),
        "src": str(estate["archive"]),
        "upload_dir": str(estate["cache"]),
        "sha256": estate["sha"],
        "release_id": "1.0.0",
        "strip_components": 1,
        "shared_paths": ["logs/"],
    }
    args.update(overrides)
    return release_task(name, **{k: v for k, v in args.items() if v is not None})


def test_check_then_upload_place_build_then_idempotent(playbook, estate):
    task = upload_task(estate)
    run = playbook(play(task), check=True, diff=True, envvars=estate["no_tmp"])
    assert run.failed() == 0 and run.changed() == 1, run.results
    res = run.task("deploy")
    cached = estate["cache"] / NAME
    assert res["archive"] == {"path": str(cached), "sha256": estate["sha"], "placed": True}
    assert res["current"] == "1.0.0"
    # Nothing sent (not even a remote tmp directory made), nothing written.
    assert not estate["cache"].exists() and not estate["root"].exists()

    run = playbook(play(task), diff=True, envvars=estate["env"])
    assert run.failed() == 0 and run.changed() == 1, run.results
    res = run.task("deploy")
    # The module read the upload in the remote tmp directory, not the controller's file...
    assert res["invocation"]["module_args"]["src"].startswith(str(estate["remote_tmp"]) + "/ansible-tmp-")
    assert res["invocation"]["module_args"]["src"].endswith("/" + NAME)
    # ...placed it 0600 in a new 0700 upload_dir, and built the release from it, naming the placed copy.
    assert cached.read_bytes() == estate["archive"].read_bytes()
    assert (cached.stat().st_mode & 0o777, estate["cache"].stat().st_mode & 0o777) == (0o600, 0o700)
    assert sorted(os.listdir(estate["cache"])) == [NAME]
    release = estate["root"] / "releases" / "1.0.0"
    assert (release / "app" / "VERSION").read_text() == "1.0.0"
    assert os.readlink(release / "logs") == "../../shared/logs"
    meta = json.loads((release / ".release-meta").read_text())
    assert (meta["source"], meta["sha256"], meta["strip_components"]) == (str(cached), estate["sha"], 1)
    assert current_release(estate["root"]) == "1.0.0"
    assert res["archive"]["placed"] is True
    assert res["diff"]["before"].endswith(f"archive: {cached} (absent)\n"), res["diff"]
    assert res["diff"]["after"].endswith(f"archive: {cached} (sha256 {estate['sha']})\n"), res["diff"]
    # The remote tmp directory (and the upload in it) is gone.
    assert os.listdir(estate["remote_tmp"]) == []

    before = (snapshot(estate["cache"]), snapshot(estate["root"]))
    run = playbook(play(task), envvars=estate["env"])
    assert run.failed() == 0 and run.changed() == 0, run.results
    assert run.task("deploy")["archive"]["placed"] is False
    assert (snapshot(estate["cache"]), snapshot(estate["root"])) == before
    assert os.listdir(estate["remote_tmp"]) == []

    # A later task builds from the copy on the host, as deploy.yml's "Point current at the new release" does.
    later = release_task("from cache", path=str(estate["root"]), src=str(cached), sha256=estate["sha"],
                         release_id="1.0.0", strip_components=1)  # fmt: skip
    run = playbook(play(later), envvars=estate["env"])
    assert run.failed() == 0 and run.changed() == 0, run.results


def test_the_cached_copy_is_placed_again_when_the_release_exists(playbook, estate):
    run = playbook(play(upload_task(estate)), envvars=estate["env"])
    assert run.failed() == 0, run.results
    (estate["cache"] / NAME).unlink()
    root_before = snapshot(estate["root"])
    run = playbook(play(upload_task(estate)), envvars=estate["env"])
    assert run.failed() == 0 and run.changed() == 1, run.results
    assert run.task("deploy")["archive"]["placed"] is True
    assert (estate["cache"] / NAME).read_bytes() == estate["archive"].read_bytes()
    assert snapshot(estate["root"]) == root_before  # the release itself unchanged


@pytest.mark.parametrize("check", [False, True])
def test_a_wrong_sha256_places_nothing_and_builds_nothing(playbook, estate, check):
    wrong = "ab" * 32
    run = playbook(play(upload_task(estate, sha256=wrong)), check=check, envvars=estate["no_tmp" if check else "env"])
    assert run.failed() == 1
    msg = run.task("deploy")["msg"]
    assert f"expected sha256 {wrong}, got {estate['sha']}" in msg, msg
    if check:
        # Checked on the controller: nothing is sent in check mode.
        assert f"checksum mismatch for src {estate['archive']} on the controller" in msg, msg
    else:
        # Sent, checked on the host, refused there.
        assert f"checksum mismatch for the uploaded archive {NAME}" in msg and "nothing placed in" in msg, msg
    assert not estate["cache"].exists() and not estate["root"].exists()
    assert os.listdir(estate["remote_tmp"]) == []


def test_a_tampered_archive_leaves_the_cached_copy_and_the_releases_alone(playbook, estate):
    run = playbook(play(upload_task(estate)), envvars=estate["env"])
    assert run.failed() == 0, run.results
    before = (snapshot(estate["cache"]), snapshot(estate["root"]))
    # Same name, other content, the published sha256 of the original: refused on the host.
    make_tar(estate["archive"], {"app-1.0.0/app/VERSION": b"evil"})
    run = playbook(play(upload_task(estate, release_id="1.0.1")), envvars=estate["env"])
    assert run.failed() == 1
    assert f"expected sha256 {estate['sha']}" in run.task("deploy")["msg"]
    assert (snapshot(estate["cache"]), snapshot(estate["root"])) == before
    assert os.listdir(estate["remote_tmp"]) == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"src": "/nonexistent/app-9.tar.gz"}, "src /nonexistent/app-9.tar.gz not found on the controller"),
        ({"src": "@dir"}, "is a directory; with upload_dir, src must be an archive file"),
        ({"sha256": None}, "upload_dir needs sha256"),
        ({"sha256": "not-a-sum"}, "sha256 'not-a-sum' is not 64 hexadecimal characters"),
        ({"upload_dir": "var/cache"}, "upload_dir 'var/cache' must be an absolute path"),
        ({"state": "absent"}, "upload_dir applies to state=deployed only, not state=absent"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(playbook, estate, overrides, fragment):
    if overrides.get("src") == "@dir":
        overrides = dict(overrides, src=str(estate["archive"].parent))
    run = playbook(play(upload_task(estate, **overrides)), envvars=estate["no_tmp"])
    assert run.failed() == 1
    msg = run.task("deploy")["msg"]
    assert fragment in msg, msg
    # Refused on the controller (no remote tmp directory made), nothing placed, nothing built.
    assert not estate["cache"].exists() and not estate["root"].exists()


def test_without_upload_dir_src_is_on_the_host_and_no_remote_tmp_is_made(playbook, estate):
    task = release_task("deploy", path=str(estate["root"]), src=str(estate["archive"]), sha256=estate["sha"],
                        release_id="1.0.0", strip_components=1)  # fmt: skip
    run = playbook(play(task), envvars=estate["no_tmp"])
    assert run.failed() == 0 and run.changed() == 1, run.results
    res = run.task("deploy")
    assert res["invocation"]["module_args"]["src"] == str(estate["archive"])
    assert "archive" not in res
    meta = json.loads((estate["root"] / "releases" / "1.0.0" / ".release-meta").read_text())
    assert meta["source"] == str(estate["archive"])
    # Pipelined, with nothing to send, no remote tmp directory is made (no round trip added): see no_tmp.
