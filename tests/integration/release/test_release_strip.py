"""release's strip_components through ansible-runner: an archive with one top directory becomes the release
without being unpacked first; bad values and archives the stripping would damage fail naming the value, and
leave the deploy root exactly as it was (check mode and apply)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from release_helpers import app_files, current_release, make_tar, make_zip, play, release_task, snapshot


def topped(tmp_path, version, top=None, extra=None):
    """app_files(version) under one top directory (like scripts/build-sample-release.sh's archives)."""
    top = top or f"app-{version}"
    files = {top: None, **{f"{top}/{name}": data for name, data in app_files(version).items()}, **(extra or {})}
    return make_tar(tmp_path / f"{top}.tar.gz", files)


@pytest.fixture
def deployed(playbook, root, tmp_path):
    archive = topped(tmp_path, "1.0.0")
    run = playbook(play(release_task("r1", path=str(root), src=str(archive), release_id="1.0.0", strip_components=1)))
    assert run.failed() == 0, run.results
    return root


def test_strip_check_apply_idempotent(playbook, root, tmp_path):
    archive = topped(tmp_path, "1.0.0", extra={"app-1.0.0/app/up": ("sym", "../logs")})
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    task = release_task("deploy", path=str(root), src=str(archive), release_id="1.0.0", sha256=sha,
                        strip_components=1, shared_paths=["logs/"])  # fmt: skip
    run = playbook(play(task), check=True)
    assert run.failed() == 0 and run.changed() == 1 and not root.exists()

    run = playbook(play(task))
    assert run.failed() == 0 and run.changed() == 1
    release = root / "releases" / "1.0.0"
    # The top directory is gone: its content is the release.
    assert sorted(os.listdir(release)) == [".release-meta", "app", "logs"]
    assert (release / "app" / "VERSION").read_text() == "1.0.0"
    assert os.readlink(release / "app" / "up") == "../logs"
    assert os.readlink(release / "logs") == "../../shared/logs"
    meta = json.loads((release / ".release-meta").read_text())
    assert (meta["sha256"], meta["strip_components"]) == (sha, 1)
    assert current_release(root) == "1.0.0"

    run = playbook(play(task))
    assert run.failed() == 0 and run.changed() == 0


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("value", "strip_components -1 must be 0"),
        ("type", "strip_components"),
        ("beside-top", "archive member 'README' has no path below the top 1 directory"),
        ("two-tops", "is not under 'app-2.0.0/'"),
        ("escapes-after-strip", "is a link '../../etc' that escapes the release directory"),
        ("only-top", "holds nothing below its top directory (strip_components=1)"),
        ("zip-beside-top", "archive member 'notes.txt' has no path below"),
        ("directory-src", "strip_components=1 applies to an archive src only"),
        ("other-strip", "built with strip_components=1, not 0"),
    ],
)
def test_bad_strip_changes_nothing(playbook, deployed, tmp_path, kind, fragment):
    args = {"path": str(deployed), "release_id": "2.0.0", "strip_components": 1}
    if kind == "value":
        args.update(src=str(topped(tmp_path, "2.0.0")), strip_components=-1)
    elif kind == "type":
        args.update(src=str(topped(tmp_path, "2.0.0")), strip_components="one")
    elif kind == "beside-top":
        args["src"] = str(topped(tmp_path, "2.0.0", extra={"README": b"x"}))
    elif kind == "two-tops":
        args["src"] = str(topped(tmp_path, "2.0.0", extra={"app-9/evil": b"x"}))
    elif kind == "escapes-after-strip":
        args["src"] = str(topped(tmp_path, "2.0.0", extra={"app-2.0.0/app/up": ("sym", "../../etc")}))
    elif kind == "only-top":
        args["src"] = str(make_tar(tmp_path / "empty.tgz", {"app-2.0.0": None}))
    elif kind == "zip-beside-top":
        args["src"] = str(make_zip(tmp_path / "a.zip", {"app-2.0.0/app/index.html": b"x", "notes.txt": b"x"}))
    elif kind == "directory-src":
        (tmp_path / "dir").mkdir()
        args["src"] = str(tmp_path / "dir")
    elif kind == "other-strip":
        # The very archive release 1.0.0 was built from (same sha256), without stripping this time.
        args.update(src=str(tmp_path / "app-1.0.0.tar.gz"), release_id="1.0.0", strip_components=0)
    before = snapshot(deployed)
    for check in (True, False):
        run = playbook(play(release_task("bad", **args)), check=check)
        assert run.failed() == 1 and run.changed() == 0
        msg = run.task("bad")["msg"]
        assert fragment in msg, msg
        assert snapshot(deployed) == before
    assert not (tmp_path / "etc").exists()
