# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime
import fcntl
import io
import json
import os
import tarfile
import zipfile

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import release_archive
from ansible_collections.stackops.platform.plugins.module_utils import release_core as core
from ansible_collections.stackops.platform.plugins.module_utils import release_view as view
from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    ReleaseError,
    check_link_target,
    check_member_path,
    choose_previous,
    default_release_id,
    normalize_sha256,
    normalize_shared_paths,
    rollback_target,
    select_prune,
    validate_release_id,
)


def make_tar(path, members):
    """members: list of (name, bytes | None for dir, or ('sym'|'lnk', target))."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def snapshot(root):
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                result[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                result[rel] = ("dir",)
            else:
                with open(full, "rb") as fh:
                    result[rel] = ("file", fh.read())
    return result


@pytest.mark.parametrize(
    "release_id", ["20260220T051228Z", "1.4.2", "v2_build-7", "a", "x" * 128, "1.0+build.5"]
)
def test_valid_release_ids(release_id):
    assert validate_release_id(release_id) == release_id


@pytest.mark.parametrize(
    ("release_id", "fragment"),
    [
        ("", "must not be empty"),
        ("a/b", "must not contain '/'"),
        ("..", "must not contain"),
        ("a..b", "must not contain"),
        (".hidden", "must not start with '.'"),
        ("-x", "is invalid"),
        ("has space", "is invalid"),
        ("x" * 129, "is invalid"),
        (None, "must not be empty"),
    ],
)
def test_invalid_release_ids(release_id, fragment):
    with pytest.raises(ReleaseError, match=fragment.replace(".", r"\.").replace("'", "'")):
        validate_release_id(release_id)


def test_default_release_id_is_utc_timestamp():
    moment = datetime.datetime(2026, 2, 20, 5, 12, 28, tzinfo=datetime.timezone.utc)  # noqa: UP017
    assert default_release_id(moment) == "20260220T051228Z"
    assert validate_release_id(default_release_id())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("A" * 64, "a" * 64), ("sha256:" + "b" * 64, "b" * 64)],
)
def test_normalize_sha256(value, expected):
    assert normalize_sha256(value) == expected


@pytest.mark.parametrize("value", ["abc", "g" * 64, "a" * 63])
def test_normalize_sha256_rejects(value):
    with pytest.raises(ReleaseError, match="64 hexadecimal"):
        normalize_sha256(value)


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([], []),
        ([".env", "logs/", "storage/app/"], [(".env", False), ("logs", True), ("storage/app", True)]),
        (["config/database.yml"], [("config/database.yml", False)]),
    ],
)
def test_shared_paths(paths, expected):
    assert normalize_shared_paths(paths) == expected


@pytest.mark.parametrize(
    ("paths", "fragment"),
    [
        (["/etc/passwd"], "relative path"),
        (["../x"], "relative path"),
        (["a/../b"], "relative path"),
        (["./x"], "relative path"),
        (["/"], "empty"),
        ([""], "empty"),
        ([".release-meta"], "hide"),
        (["logs/", "logs"], "twice"),
        (["storage/", "storage/app/"], "overlap"),
    ],
)
def test_shared_paths_rejected(paths, fragment):
    with pytest.raises(ReleaseError, match=fragment):
        normalize_shared_paths(paths)


@pytest.mark.parametrize(
    ("releases", "keep", "protected", "expected"),
    [
        (["r1", "r2", "r3"], 5, set(), []),
        (["r1", "r2", "r3", "r4"], 2, {"r4", "r3"}, ["r1", "r2"]),
        (["r1", "r2", "r3", "r4"], 2, {"r4", "r1"}, ["r2"]),  # previous r1 survives, though old
        (["r1", "r2", "r3", "r4"], 3, {"r4", "r3"}, ["r1"]),
        (["r1", "r2", "r3", "r4"], 1, {"r2", "r4"}, ["r1", "r3"]),
        (["r1", "r2", "r3"], 0, set(), []),  # 0 never prunes
        (["r3", "r1", "r2"], 1, set(), ["r1", "r2"]),  # order by id, not input order
        (
            ["20260101T000000Z", "20251231T235959Z", "20260102T000000Z"],
            2,
            set(),
            ["20251231T235959Z"],
        ),
    ],
)
def test_select_prune(releases, keep, protected, expected):
    assert select_prune(releases, keep, protected) == expected


@pytest.mark.parametrize(
    ("current", "state", "releases", "expected"),
    [
        (None, None, ["r1"], None),
        ("r2", {"current": "r2", "previous": "r1"}, ["r1", "r2", "r3"], "r1"),
        ("r1", {"current": "r1", "previous": "r3"}, ["r1", "r2", "r3"], "r3"),  # after a rollback
        ("r2", {"current": "r2", "previous": "r1"}, ["r2", "r3"], None),  # previous was removed
        ("r3", {"current": "r2", "previous": "r1"}, ["r1", "r2", "r3"], "r2"),  # killed before state write
        ("r3", None, ["r1", "r2", "r3", "r4"], "r2"),  # no state: highest id below current
        ("r1", None, ["r1", "r2"], None),
    ],
)
def test_choose_previous(current, state, releases, expected):
    assert choose_previous(current, state, releases) == expected


@pytest.mark.parametrize(
    ("current", "previous", "release_id", "expected"),
    [
        ("r3", "r2", None, "r2"),
        ("r2", "r3", None, "r3"),
        ("r3", "r2", "r1", "r1"),
        ("r3", None, "r1", "r1"),
        ("r3", "r2", "r3", "r3"),
    ],
)
def test_rollback_target(current, previous, release_id, expected):
    assert rollback_target(current, previous, ["r1", "r2", "r3"], release_id) == expected


@pytest.mark.parametrize(
    ("current", "previous", "release_id", "fragment"),
    [
        ("r3", "r2", "r9", "'r9' does not exist; available releases: r1, r2, r3"),
        ("r3", None, None, "no previous release recorded"),
        (None, None, None, "no current release"),
        ("r3", "r2", "../r1", "must not contain"),
    ],
)
def test_rollback_target_errors(current, previous, release_id, fragment):
    with pytest.raises(ReleaseError) as info:
        rollback_target(current, previous, ["r1", "r2", "r3"], release_id)
    assert fragment in info.value.msg


@pytest.mark.parametrize(
    ("name", "expected"),
    [("app/index.html", "app/index.html"), ("./app/x", "app/x"), ("./", ""), ("a//b", "a/b")],
)
def test_member_path_ok(name, expected):
    assert check_member_path(name) == expected


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("/etc/passwd", "absolute"), ("../evil", "'..'"), ("a/../../evil", "'..'"), ("C:/x", "absolute")],
)
def test_member_path_rejected(name, fragment):
    with pytest.raises(ReleaseError, match=fragment):
        check_member_path(name)


@pytest.mark.parametrize(("name", "target"), [("a/link", "../b"), ("link", "sub/x"), ("a/b/l", "../../c")])
def test_link_target_ok(name, target):
    check_link_target(name, target)


@pytest.mark.parametrize(
    ("name", "target", "fragment"),
    [("link", "/etc", "absolute"), ("link", "..", "escapes"), ("a/link", "../../x", "escapes"), ("l", "", "absolute")],
)
def test_link_target_rejected(name, target, fragment):
    with pytest.raises(ReleaseError, match=fragment):
        check_link_target(name, target)


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ([("/abs.txt", b"x")], "absolute path"),
        ([("../escape.txt", b"x")], "contains '..'"),
        ([("link", ("sym", "/etc/passwd"))], "link to an absolute path"),
        ([("dir/link", ("sym", "../../outside"))], "escapes the release"),
        ([("hard", ("lnk", "../outside"))], "contains '..'"),
    ],
)
def test_inspect_archive_rejects_unsafe_tar(tmp_path, members, fragment):
    archive = make_tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(ReleaseError) as info:
        release_archive.inspect_archive(str(archive))
    assert fragment in info.value.msg
    assert str(archive) in info.value.msg


def test_inspect_archive_rejects_unsafe_zip(tmp_path):
    archive = make_zip(tmp_path / "bad.zip", [("../x", b"1")])
    with pytest.raises(ReleaseError, match=r"contains '\.\.'"):
        release_archive.inspect_archive(str(archive))


def test_inspect_archive_rejects_corrupt(tmp_path):
    good = make_tar(tmp_path / "good.tar.gz", [("a.txt", os.urandom(200_000))])
    bad = tmp_path / "bad.tar.gz"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseError, match="corrupt or unreadable"):
        release_archive.inspect_archive(str(bad))
    (tmp_path / "junk.tgz").write_bytes(b"not an archive at all")
    with pytest.raises(ReleaseError, match="not a readable"):
        release_archive.inspect_archive(str(tmp_path / "junk.tgz"))


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_extract_archive(tmp_path, kind):
    if kind == "tar":
        archive = make_tar(
            tmp_path / "a.tgz", [("app", None), ("app/x.txt", b"hello"), ("app/link", ("sym", "x.txt"))]
        )
    else:
        archive = make_zip(tmp_path / "a.zip", [("app/x.txt", b"hello")])
    assert release_archive.inspect_archive(str(archive)) == kind
    dest = tmp_path / "dest"
    dest.mkdir()
    release_archive.extract_archive(str(archive), str(dest), kind)
    assert (dest / "app" / "x.txt").read_bytes() == b"hello"
    if kind == "tar":
        assert os.readlink(dest / "app" / "link") == "x.txt"


TOP = [
    ("app-1.0", None),
    ("app-1.0/app", None),
    ("app-1.0/app/x.txt", b"hello"),
    ("app-1.0/app/link", ("sym", "x.txt")),
    ("app-1.0/hard", ("lnk", "app-1.0/app/x.txt")),
]


@pytest.mark.parametrize("strip", [1, 2])
def test_extract_archive_strips_top_directories(tmp_path, strip):
    members = [("./", None), *TOP] if strip == 1 else [("outer", None), *[("outer/" + n, d) for n, d in TOP]]
    if strip == 2:
        members[-1] = ("outer/app-1.0/hard", ("lnk", "outer/app-1.0/app/x.txt"))
    archive = make_tar(tmp_path / "a.tgz", members)
    assert release_archive.inspect_archive(str(archive), strip) == "tar"
    dest = tmp_path / "dest"
    dest.mkdir()
    release_archive.extract_archive(str(archive), str(dest), "tar", strip)
    if strip == 1:
        assert sorted(os.listdir(dest)) == ["app", "hard"]
        assert (dest / "app" / "x.txt").read_bytes() == b"hello"
        assert os.readlink(dest / "app" / "link") == "x.txt"
        assert (dest / "hard").read_bytes() == b"hello"
        assert os.stat(dest / "hard").st_ino == os.stat(dest / "app" / "x.txt").st_ino
    else:
        assert sorted(os.listdir(dest)) == ["app", "hard"]
        assert (dest / "hard").read_bytes() == b"hello"


def test_extract_zip_strips_the_top_directory(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("app-1.0/", b""), ("app-1.0/app/x.txt", b"hello")])
    assert release_archive.inspect_archive(str(archive), 1) == "zip"
    dest = tmp_path / "dest"
    dest.mkdir()
    release_archive.extract_archive(str(archive), str(dest), "zip", 1)
    assert os.listdir(dest) == ["app"]
    assert (dest / "app" / "x.txt").read_bytes() == b"hello"


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        # A file beside the top directory would be dropped (tar drops it silently).
        ([("app-1.0/a", b"1"), ("README", b"x")], "'README' has no path below the top 1 directory"),
        # Two top directories would overwrite each other.
        ([("app-1.0/a", b"1"), ("app-2.0/a", b"2")], "'app-2.0/a' is not under 'app-1.0/'"),
        # Inside the archive, but outside the release once the top directory is gone.
        ([("app-1.0/a/link", ("sym", "../../etc"))], "escapes the release"),
        ([("app-1.0/link", ("sym", "/etc/passwd"))], "link to an absolute path"),
        ([("app-1.0/a", b"1"), ("app-1.0/hard", ("lnk", "other/a"))], "'other/a' is not under 'app-1.0/'"),
        ([("app-1.0/a", b"1"), ("app-1.0/hard", ("lnk", "app-1.0"))], "'app-1.0' has no path below"),
        ([("app-1.0/../x", b"1")], "contains '..'"),
        ([("app-1.0", None)], "holds nothing below its top directory (strip_components=1)"),
    ],
)
def test_strip_refuses_what_it_would_drop_or_let_escape(tmp_path, members, fragment):
    archive = make_tar(tmp_path / "bad.tgz", members)
    with pytest.raises(ReleaseError) as info:
        release_archive.inspect_archive(str(archive), 1)
    assert fragment in info.value.msg and str(archive) in info.value.msg, info.value.msg
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ReleaseError) as extracting:
        release_archive.extract_archive(str(archive), str(dest), "tar", 1)
    # Extraction checks each member again (the same message), and writes nothing.
    assert fragment in extracting.value.msg
    assert os.listdir(dest) == []


@pytest.mark.parametrize("value", [-1, True, "1", 1.5])
def test_strip_components_rejects_bad_values(tmp_path, value):
    archive = make_tar(tmp_path / "a.tgz", TOP)
    with pytest.raises(ReleaseError, match=rf"strip_components {value!r} must be 0"):
        release_archive.inspect_archive(str(archive), value)
    root = tmp_path / "srv"
    with pytest.raises(ReleaseError, match=rf"strip_components {value!r} must be 0"):
        deploy(root, archive, "r1", strip_components=value)
    assert not root.exists()


def test_deploy_with_strip_records_it_and_stays_immutable(tmp_path):
    root = tmp_path / "app"
    archive = make_tar(tmp_path / "a.tgz", TOP)
    res = deploy(root, archive, "r1", strip_components=1, sha256=release_archive.sha256_file(str(archive)))
    assert res["changed"] is True
    assert (root / "releases" / "r1" / "app" / "x.txt").read_bytes() == b"hello"
    meta = json.loads((root / "releases" / "r1" / ".release-meta").read_text())
    assert (meta["strip_components"], meta["sha256"]) == (1, release_archive.sha256_file(str(archive)))
    assert deploy(root, archive, "r1", strip_components=1)["changed"] is False
    before = snapshot(root)
    with pytest.raises(ReleaseError, match="built with strip_components=1, not 0"):
        deploy(root, archive, "r1")
    assert snapshot(root) == before


def test_strip_on_a_directory_src_is_refused(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(ReleaseError, match="strip_components=1 applies to an archive src only"):
        deploy(tmp_path / "srv", tmp_path / "src", "r1", strip_components=1)
    assert not (tmp_path / "srv").exists()


def test_tree_digest_changes_with_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("1")
    first = release_archive.tree_digest(str(tmp_path))
    assert release_archive.tree_digest(str(tmp_path)) == first
    (tmp_path / "a" / "f").write_text("2")
    assert release_archive.tree_digest(str(tmp_path)) != first


def deploy(root, src, release_id, **extra):
    return core.run({"path": str(root), "src": str(src), "release_id": release_id, **extra})


def test_deploy_rollback_prune_cycle(tmp_path):
    root = tmp_path / "app"
    archives = {}
    for n in range(1, 6):
        archives[n] = make_tar(tmp_path / f"a{n}.tgz", [("index.html", f"v{n}".encode())])
    for n in (1, 2, 3):
        deploy(root, archives[n], f"r{n}", keep_releases=3)
    res = core.run({"path": str(root), "state": "rolled_back"})
    assert (res["current"], res["previous"], res["changed"]) == ("r2", "r3", True)
    res = deploy(root, archives[4], "r4", keep_releases=2)
    # current r4, previous r2; r3 is among the newest two; r1 goes
    assert (res["current"], res["previous"], res["pruned"], res["releases"]) == ("r4", "r2", ["r1"], ["r2", "r3", "r4"])
    res = deploy(root, archives[5], "r5", keep_releases=2)
    assert res["pruned"] == ["r2", "r3"]
    assert os.readlink(root / "current") == "releases/r5"


def test_same_id_same_sha_is_unchanged_and_different_sha_fails(tmp_path):
    root = tmp_path / "app"
    a = make_tar(tmp_path / "a.tgz", [("f", b"1")])
    b = make_tar(tmp_path / "b.tgz", [("f", b"2")])
    assert deploy(root, a, "r1")["changed"] is True
    assert deploy(root, a, "r1")["changed"] is False
    before = snapshot(root)
    with pytest.raises(ReleaseError, match="already exists"):
        deploy(root, b, "r1")
    assert snapshot(root) == before


def test_directory_source_and_shared_paths(tmp_path):
    src = tmp_path / "src"
    (src / "logs").mkdir(parents=True)
    (src / "logs" / "old.log").write_text("from artifact")
    (src / "app.py").write_text("print(1)")
    root = tmp_path / "app"
    res = deploy(root, src, "r1", shared_paths=[".env", "logs/"], version="1.0", git_sha="abc", deployed_by="ci")
    release = root / "releases" / "r1"
    assert os.readlink(release / "logs") == "../../shared/logs"
    assert (root / "shared" / "logs").is_dir() and not (root / "shared" / "logs" / "old.log").exists()
    assert (root / "shared" / ".env").is_file()
    meta = json.loads((release / ".release-meta").read_text())
    assert meta["sha256"] == release_archive.tree_digest(str(src))
    recorded = (meta["version"], meta["git_sha"], meta["deployed_by"], meta["source_type"])
    assert recorded == ("1.0", "abc", "ci", "directory")
    assert res["release_path"] == str(release)
    with pytest.raises(ReleaseError, match="directory"):
        deploy(root, src, "r2", sha256="a" * 64)


def test_lock_contention_names_holder(tmp_path):
    root = tmp_path / "app"
    a = make_tar(tmp_path / "a.tgz", [("f", b"1")])
    deploy(root, a, "r1")
    b = make_tar(tmp_path / "b.tgz", [("f", b"2")])
    holder = {"pid": 4242, "host": "ci-runner", "user": "alice", "started_at": "2026-02-20T05:12:28Z"}
    fd = os.open(root / ".deploy.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps(holder).encode())
        before = snapshot(root)
        with pytest.raises(ReleaseError) as info:
            deploy(root, b, "r2", lock_timeout=0.3)
        assert "pid 4242 on host ci-runner (user alice)" in info.value.msg
        assert info.value.details["lock_holder"] == holder
        assert snapshot(root) == before
    finally:
        os.close(fd)
    assert deploy(root, b, "r2")["current"] == "r2"


def test_absent_refuses_current_and_removes_other(tmp_path):
    root = tmp_path / "app"
    deploy(root, make_tar(tmp_path / "a.tgz", [("f", b"1")]), "r1")
    deploy(root, make_tar(tmp_path / "b.tgz", [("f", b"2")]), "r2")
    with pytest.raises(ReleaseError, match="current release"):
        core.run({"path": str(root), "state": "absent", "release_id": "r2"})
    res = core.run({"path": str(root), "state": "absent", "release_id": "r1"})
    assert res["changed"] and res["releases"] == ["r2"] and res["previous"] is None
    assert core.run({"path": str(root), "state": "absent", "release_id": "r1"})["changed"] is False


def test_stale_temp_is_not_a_release_and_is_cleaned(tmp_path):
    root = tmp_path / "app"
    deploy(root, make_tar(tmp_path / "a.tgz", [("f", b"1")]), "r1")
    stale = root / "releases" / ".r2.tmp-99999"
    stale.mkdir()
    assert view.info(str(root))["stale"] == ["releases/.r2.tmp-99999"]
    assert [r["id"] for r in view.info(str(root))["releases"]] == ["r1"]
    res = deploy(root, make_tar(tmp_path / "b.tgz", [("f", b"2")]), "r2")
    assert res["cleaned"] == ["releases/.r2.tmp-99999"] and not stale.exists()


@pytest.mark.parametrize(
    ("releases", "keep", "protected", "failed", "expected"),
    [
        # Three failed deploys after four good ones: keep=3 still keeps the three newest good ones.
        (["r1", "r2", "r3", "r4", "r5", "r6", "r7"], 3, {"r4"}, ["r5", "r6", "r7"], ["r1", "r5", "r6", "r7"]),
        # A failed release that is protected (the one being deployed again) stays.
        (["r1", "r2", "r3"], 2, {"r3"}, ["r3"], []),
        # keep=0 never prunes, failed or not.
        (["r1", "r2"], 0, set(), ["r1"], []),
        # Without failed releases the count is as before.
        (["r1", "r2", "r3"], 2, set(), [], ["r1"]),
    ],
)
def test_select_prune_never_counts_failed_releases(releases, keep, protected, failed, expected):
    assert select_prune(releases, keep, protected, failed) == expected


def _dir_release(tmp_path, root, rid, keep=3, activate=True):
    src = tmp_path / f"src-{rid}"
    src.mkdir(exist_ok=True)
    (src / "VERSION").write_text(rid)
    params = {"path": str(root), "src": str(src), "release_id": rid, "keep_releases": keep, "activate": activate}
    return core.run(params)


def test_failed_releases_never_push_good_ones_out(tmp_path):
    root = tmp_path / "srv"
    for rid in ("r1", "r2", "r3"):
        _dir_release(tmp_path, root, rid)
    # Three deploys that fail after the build (staged, then marked failed): none becomes current.
    for rid in ("r4", "r5", "r6"):
        res = _dir_release(tmp_path, root, rid, activate=False)
        # Staging counts no unproven release: only the failed one before it goes, never a good one.
        assert res["pruned"] == ({"r4": [], "r5": ["r4"], "r6": ["r5"]}[rid]), res
        res = core.run({"path": str(root), "state": "failed", "release_id": rid, "reason": "health check failed"})
        assert res["changed"] is True
        meta = json.loads((root / "releases" / rid / ".release-meta").read_text())
        assert meta["status"] == "failed" and meta["failed_reason"] == "health check failed" and meta["failed_at"]
    # r1..r3 are the three good ones: all kept; the older failed ones went at the next prunes.
    releases = view.info(str(root))["releases"]
    assert [r["id"] for r in releases] == ["r1", "r2", "r3", "r6"]
    # The next good deploy keeps the newest three good releases and removes the failed one.
    res = _dir_release(tmp_path, root, "r7")
    assert res["pruned"] == ["r1", "r6"] and res["releases"] == ["r2", "r3", "r7"]


def test_mark_failed_refusals_and_idempotence(tmp_path):
    root = tmp_path / "srv"
    _dir_release(tmp_path, root, "r1")
    _dir_release(tmp_path, root, "r2", activate=False)
    with pytest.raises(ReleaseError, match="refusing to mark release r1 failed: it is the current release"):
        core.run({"path": str(root), "state": "failed", "release_id": "r1"})
    with pytest.raises(ReleaseError, match="release 'r9' does not exist; available releases: r1, r2"):
        core.run({"path": str(root), "state": "failed", "release_id": "r9"})
    before = (root / "releases" / "r2" / ".release-meta").read_text()
    assert core.run({"path": str(root), "state": "failed", "release_id": "r2"}, check_mode=True)["changed"] is True
    assert (root / "releases" / "r2" / ".release-meta").read_text() == before
    assert core.run({"path": str(root), "state": "failed", "release_id": "r2"})["changed"] is True
    assert core.run({"path": str(root), "state": "failed", "release_id": "r2"})["changed"] is False
    # Put live after all (a redeploy that passed): the mark goes.
    core.run({"path": str(root), "state": "activated", "release_id": "r2"})
    assert "status" not in json.loads((root / "releases" / "r2" / ".release-meta").read_text())
