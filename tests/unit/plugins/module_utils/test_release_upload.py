# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""release with upload_dir (release_upload + release_core.deploy): the archive the action plugin uploaded is checked
against sha256, cached as <upload_dir>/<name> (0600, directory 0700, atomic) and the release built from it; bad input
places nothing and builds nothing."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import stat
import tarfile

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import release_core as core
from ansible_collections.stackops.platform.plugins.module_utils import release_upload
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError

NAME = "app-1.0.tar.gz"


def make_tar(path, members):
    """members: name -> bytes (file) or None (directory)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root):
    """Every entry under root: type, content and mode (files), target (links)."""
    found = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", oct(st.st_mode))
            else:
                with open(full, "rb") as fh:
                    found[rel] = ("file", fh.read(), oct(st.st_mode))
    return found


@pytest.fixture
def env(tmp_path):
    """An upload as the action plugin leaves it (remote tmp dir, the file's own name), a deploy root and a cache."""
    upload = tmp_path / "ansible-tmp-1" / NAME
    upload.parent.mkdir()
    make_tar(upload, {"app-1.0": None, "app-1.0/VERSION": b"1.0\n"})
    return {
        "upload": upload,
        "root": tmp_path / "srv" / "app",
        "cache": tmp_path / "var" / "cache" / "releases",
        "sha": sha(upload),
        "tmp": tmp_path,
    }


def params(env, **overrides):
    base = {
        "path": str(env["root"]),
        "src": str(env["upload"]),
        "upload_dir": str(env["cache"]),
        "sha256": env["sha"],
        "release_id": "r1",
        "strip_components": 1,
        "activate": False,
    }
    base.update(overrides)
    return base


def test_upload_is_cached_0600_in_a_new_0700_dir_and_the_release_built(env):
    res = core.deploy(params(env))
    cached = env["cache"] / NAME
    assert cached.read_bytes() == env["upload"].read_bytes()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(env["cache"].stat().st_mode) == 0o700
    assert sorted(os.listdir(env["cache"])) == [NAME]  # no temporary left
    release = env["root"] / "releases" / "r1"
    assert (release / "VERSION").read_text() == "1.0\n"
    meta = json.loads((release / ".release-meta").read_text())
    # The release names the cached copy (later tasks and hosts build from it), not the upload.
    assert (meta["source"], meta["sha256"]) == (str(cached), env["sha"])
    assert res["changed"] is True
    assert res["archive"] == {"path": str(cached), "sha256": env["sha"], "placed": True}
    assert res["diff"]["before"].endswith(f"archive: {cached} (absent)\n")
    assert res["diff"]["after"].endswith(f"archive: {cached} (sha256 {env['sha']})\n")


def test_rerun_leaves_the_cached_copy_and_the_release_alone(env):
    core.deploy(params(env))
    cached = env["cache"] / NAME
    before = (cached.stat().st_ino, tree(env["root"]))
    res = core.deploy(params(env))
    assert res["changed"] is False and res["archive"]["placed"] is False
    assert (cached.stat().st_ino, tree(env["root"])) == before


@pytest.mark.parametrize("damage", ["missing", "content", "mode"])
def test_a_missing_or_different_cached_copy_is_placed_again_even_when_the_release_exists(env, damage):
    core.deploy(params(env))
    cached = env["cache"] / NAME
    if damage == "missing":
        cached.unlink()
    elif damage == "content":
        cached.write_bytes(b"half an archive")
    else:
        cached.chmod(0o644)
    root_before = tree(env["root"])
    res = core.deploy(params(env))
    assert res["changed"] is True and res["archive"]["placed"] is True
    assert cached.read_bytes() == env["upload"].read_bytes()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    # The release was not rebuilt: only the cached copy changed.
    assert tree(env["root"]) == root_before


def test_an_existing_upload_dir_keeps_its_mode(env):
    env["cache"].mkdir(parents=True, mode=0o755)
    env["cache"].chmod(0o755)
    core.deploy(params(env))
    assert stat.S_IMODE(env["cache"].stat().st_mode) == 0o755


def _refused(env, fragment, **overrides):
    with pytest.raises(ReleaseError) as info:
        core.deploy(params(env, **overrides))
    assert fragment in info.value.msg, info.value.msg
    return info.value


def test_a_sha256_mismatch_places_nothing_and_builds_nothing(env):
    wrong = "0" * 64
    err = _refused(env, f"checksum mismatch for the uploaded archive {NAME}: expected sha256 {wrong}", sha256=wrong)
    assert f"got {env['sha']}" in err.msg and "nothing placed in" in err.msg and "no release built" in err.msg
    assert err.details == {"expected_sha256": wrong, "actual_sha256": env["sha"]}
    assert not env["cache"].exists() and not env["root"].exists()


def test_a_mismatch_leaves_an_existing_cached_copy_and_release_as_they_were(env):
    core.deploy(params(env))
    before = (tree(env["cache"]), tree(env["root"]))
    env["upload"].write_bytes(b"tampered in transit")
    _refused(env, "checksum mismatch for the uploaded archive")
    assert (tree(env["cache"]), tree(env["root"])) == before


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"sha256": None}, "upload_dir needs sha256"),
        ({"sha256": "abc"}, "sha256 'abc' is not 64 hexadecimal characters"),
        ({"upload_dir": "cache/releases"}, "upload_dir 'cache/releases' must be an absolute path"),
        ({"src": "/"}, "must name an archive file"),
        ({"strip_components": 2}, "has no path below the top 2 directories"),
        ({"release_id": "../x"}, "must not contain"),
    ],
)
def test_bad_input_places_nothing_and_builds_nothing(env, overrides, fragment):
    _refused(env, fragment, **overrides)
    assert not env["cache"].exists() and not env["root"].exists()


def test_upload_dir_only_with_state_deployed(env):
    with pytest.raises(ReleaseError, match="upload_dir applies to state=deployed only, not state=absent"):
        core.run(params(env, state="absent"))


def test_the_upload_missing_on_the_host_is_refused(env):
    env["upload"].unlink()
    _refused(env, f"the uploaded archive {env['upload']} is missing")
    assert not env["cache"].exists()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_upload_dir_or_the_cached_name_of_another_kind_is_refused(env, kind):
    if kind == "file":
        env["cache"].parent.mkdir(parents=True)
        env["cache"].write_text("not a directory")
        fragment = "exists and is not a directory"
    else:
        (env["cache"] / NAME).mkdir(parents=True)
        fragment = "is not a regular file"
    before = tree(env["tmp"] / "var")
    _refused(env, fragment)
    assert tree(env["tmp"] / "var") == before and not env["root"].exists()


def test_an_unsafe_archive_with_the_right_sha256_places_nothing(env):
    make_tar(env["upload"], {"app-1.0": None, "app-1.0/../../escape": b"x"})
    _refused(env, "unsafe archive", sha256=sha(env["upload"]))
    assert not env["cache"].exists() and not env["root"].exists()


def test_a_conflicting_existing_release_places_nothing(env):
    other = make_tar(env["tmp"] / "other.tar.gz", {"app-0.9": None, "app-0.9/VERSION": b"0.9\n"})
    core.deploy({"path": str(env["root"]), "src": str(other), "release_id": "r1", "strip_components": 1})
    _refused(env, "release r1 already exists")
    assert not env["cache"].exists()


def test_a_busy_deploy_lock_places_nothing(env):
    env["root"].mkdir(parents=True)
    fd = os.open(env["root"] / ".deploy.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _refused(env, "locked")
    finally:
        os.close(fd)
    assert not env["cache"].exists()


def test_the_release_is_built_from_the_checked_upload_not_from_the_cached_copy(env, monkeypatch):
    # Another run replacing the cached copy between the placing and the extraction must not change this release.
    place = release_upload.place_upload

    def place_then_replace(upload):
        place(upload)
        make_tar(upload.target, {"app-9": None, "app-9/VERSION": b"someone else's\n"})

    monkeypatch.setattr(core, "place_upload", place_then_replace)
    core.deploy(params(env))
    assert (env["root"] / "releases" / "r1" / "VERSION").read_text() == "1.0\n"


def test_a_failed_copy_leaves_no_partial_archive(env, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(release_upload.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        core.deploy(params(env))
    assert os.listdir(env["cache"]) == []
    assert not (env["root"] / "releases" / "r1").exists()


def test_check_mode_without_a_cached_copy_plans_from_sha256_and_writes_nothing(env):
    # In check mode nothing was uploaded: src is the controller's path, only its name counts.
    res = core.deploy(params(env, src=f"/controller/build/{NAME}", activate=True), check_mode=True)
    assert res["changed"] is True and res["current"] == "r1" and res["releases"] == ["r1"]
    assert res["archive"] == {"path": str(env["cache"] / NAME), "sha256": env["sha"], "placed": True}
    assert not env["cache"].exists() and not env["root"].exists()


def test_check_mode_checks_a_cached_copy_with_the_expected_sha256(env):
    core.deploy(params(env))
    before = (tree(env["cache"]), tree(env["root"]))
    res = core.deploy(params(env, src=f"/controller/{NAME}", activate=True), check_mode=True)
    assert res["changed"] is True and res["archive"]["placed"] is False  # only current would move
    # The cached copy is checked as the archive: a stripping it cannot take fails in check mode too.
    with pytest.raises(ReleaseError, match="has no path below the top 2 directories"):
        core.deploy(params(env, src=f"/controller/{NAME}", release_id="r2", strip_components=2), check_mode=True)
    assert (tree(env["cache"]), tree(env["root"])) == before


def test_check_mode_reports_a_cached_copy_that_differs(env):
    env["cache"].mkdir(parents=True)
    (env["cache"] / NAME).write_bytes(b"old")
    res = core.deploy(params(env, src=f"/controller/{NAME}"), check_mode=True)
    assert res["archive"]["placed"] is True
    assert (env["cache"] / NAME).read_bytes() == b"old"
    assert res["diff"]["before"].endswith(f"(sha256 {hashlib.sha256(b'old').hexdigest()})\n")


def test_without_upload_dir_nothing_changes(env):
    # The existing path: src on the host, no archive key, .release-meta names src.
    res = core.deploy({"path": str(env["root"]), "src": str(env["upload"]), "release_id": "r1", "strip_components": 1})
    assert "archive" not in res and "archive:" not in res["diff"]["after"]
    meta = json.loads((env["root"] / "releases" / "r1" / ".release-meta").read_text())
    assert meta["source"] == str(env["upload"])
