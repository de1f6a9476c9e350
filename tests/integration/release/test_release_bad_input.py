"""Every bad input fails with a clear message naming the bad value, and leaves the tree exactly as it was."""

from __future__ import annotations

import pytest
from release_helpers import app_files, make_tar, make_zip, play, release_task, run_core, snapshot


@pytest.fixture
def deployed(root, artifacts):
    """A deploy root with releases 1.0.0 and 1.1.0 (current), built by the core in a child process."""
    for version in ("1.0.0", "1.1.0"):
        proc = run_core({"path": str(root), "src": str(artifacts[version]), "release_id": version,
                         "shared_paths": [".env", "logs/"]})
        assert proc.returncode == 0, proc.stderr
    return root


def unsafe_archive(tmp_path, kind):
    base = {"app/index.html": b"x"}
    if kind == "absolute":
        return make_tar(tmp_path / "abs.tar.gz", {**base, "/tmp/evil": b"x"}), "absolute path"
    if kind == "dotdot":
        return make_tar(tmp_path / "dotdot.tgz", {**base, "app/../../evil": b"x"}), "contains '..'"
    if kind == "symlink":
        return make_tar(tmp_path / "sym.tgz", {**base, "app/up": ("sym", "../../../etc")}), "escapes the release"
    if kind == "abs-symlink":
        return make_tar(tmp_path / "asym.tgz", {**base, "app/pw": ("sym", "/etc/passwd")}), "link to an absolute path"
    if kind == "zip-dotdot":
        return make_zip(tmp_path / "bad.zip", {**base, "../evil": b"x"}), "contains '..'"
    if kind == "corrupt":
        good = make_tar(tmp_path / "good.tgz", {**app_files("9"), "big": bytes(range(256)) * 4096})
        data = good.read_bytes()
        bad = tmp_path / "corrupt.tar.gz"
        bad.write_bytes(data[: len(data) // 2])
        return bad, "is corrupt or unreadable"
    if kind == "not-archive":
        bad = tmp_path / "notes.zip"
        bad.write_text("just text")
        return bad, "is not a readable tar.gz/tgz/tar or zip archive"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"release_id": "a/b"}, "release_id 'a/b' must not contain '/'"),
        ({"release_id": ".."}, "release_id '..' must not contain"),
        ({"release_id": "1.2/../../x"}, "must not contain"),
        ({"release_id": ""}, "release_id must not be empty"),
        ({"release_id": ".hidden"}, "release_id '.hidden' must not start with '.'"),
        ({"src": "/nonexistent/app.tar.gz"}, "src /nonexistent/app.tar.gz does not exist"),
        ({"sha256": "0" * 64}, "checksum mismatch for"),
        ({"sha256": "not-a-sum"}, "sha256 'not-a-sum' is not 64 hexadecimal"),
        ({"release_id": "1.0.0", "src": "@1.2.0"}, "release 1.0.0 already exists"),
        ({"shared_paths": ["../escape"]}, "shared_paths entry '../escape'"),
        (
            {"state": "rolled_back", "release_id": "9.9.9"},
            "release '9.9.9' does not exist; available releases: 1.0.0, 1.1.0",
        ),
        ({"state": "activated", "release_id": "9.9.9"}, "release '9.9.9' does not exist"),
        ({"state": "absent", "release_id": "1.1.0"}, "refusing to remove release 1.1.0: it is the current release"),
        ({"state": "absent", "release_id": "../1.0.0"}, "must not contain"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, str) else None,
)
def test_bad_input_changes_nothing(playbook, deployed, artifacts, args, fragment):
    args = dict(args)
    if args.get("src", "").startswith("@"):
        args["src"] = str(artifacts[args["src"][1:]])
    params = {"path": str(deployed), "src": str(artifacts["1.2.0"]), "release_id": "1.2.0", **args}
    if params.get("state") in ("rolled_back", "activated", "absent"):
        params.pop("src")
    before = snapshot(deployed)
    for check in (True, False):
        run = playbook(play(release_task("bad", **params)), check=check)
        assert run.failed() == 1 and run.changed() == 0
        msg = run.task("bad")["msg"]
        assert fragment in msg, msg
        assert snapshot(deployed) == before
    if "checksum mismatch" in fragment:
        assert str(artifacts["1.2.0"]) in msg and artifacts["sha"]["1.2.0"] in msg and "0" * 64 in msg


@pytest.mark.parametrize(
    "kind", ["absolute", "dotdot", "symlink", "abs-symlink", "zip-dotdot", "corrupt", "not-archive"]
)
def test_unsafe_or_corrupt_archive_changes_nothing(playbook, deployed, tmp_path, kind):
    archive, fragment = unsafe_archive(tmp_path, kind)
    before = snapshot(deployed)
    run = playbook(play(release_task("bad", path=str(deployed), src=str(archive), release_id="6.6.6")))
    assert run.failed() == 1
    msg = run.task("bad")["msg"]
    assert fragment in msg and str(archive) in msg, msg
    assert snapshot(deployed) == before
    assert not (tmp_path / "evil").exists()


def test_bad_input_on_fresh_path_creates_nothing(playbook, root, artifacts):
    run = playbook(play(release_task("bad", path=str(root), src=str(artifacts["1.0.0"]), sha256="f" * 64)))
    assert run.failed() == 1 and "checksum mismatch" in run.task("bad")["msg"]
    assert not root.exists()


@pytest.mark.parametrize(("make", "fragment"), [(False, "does not exist"), (True, "is not a deploy root")])
def test_release_info_errors(playbook, tmp_path, make, fragment):
    target = tmp_path / "nothing-here"
    if make:
        target.mkdir()
    run = playbook(play({"name": "info", "stackops.platform.release_info": {"path": str(target)}}))
    assert run.failed() == 1 and fragment in run.task("info")["msg"]


def test_corrupt_archive_with_good_prefix_leaves_no_temp(playbook, deployed, tmp_path):
    """A tar whose first members are fine but a later one is truncated never leaves a partial release."""
    good = make_tar(tmp_path / "g.tgz", {"app/index.html": b"ok", "app/blob": bytes(range(256)) * 8192})
    data = good.read_bytes()
    bad = tmp_path / "late-corrupt.tgz"
    bad.write_bytes(data[: int(len(data) * 0.9)])
    before = snapshot(deployed)
    run = playbook(play(release_task("bad", path=str(deployed), src=str(bad), release_id="7.0.0")))
    assert run.failed() == 1 and "corrupt" in run.task("bad")["msg"]
    assert snapshot(deployed) == before
