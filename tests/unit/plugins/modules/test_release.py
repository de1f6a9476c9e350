# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.stackops.platform.plugins.modules import release


def run_module(capsys, args):
    """Run main() with args; return (exit code, result dict)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        release.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def make_tar(path, content):
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("index.html")
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    return str(path)


@pytest.fixture
def env(tmp_path):
    return {
        "root": tmp_path / "app",
        "a": make_tar(tmp_path / "a.tgz", b"v1"),
        "b": make_tar(tmp_path / "b.tgz", b"v2"),
    }


def test_check_mode_writes_nothing(capsys, env):
    code, res = run_module(
        capsys, {"path": str(env["root"]), "src": env["a"], "release_id": "r1", "_ansible_check_mode": True}
    )
    assert code == 0 and res["changed"] is True and res["current"] == "r1"
    assert not env["root"].exists()


def test_deploy_idempotent_and_diff(capsys, env):
    args = {"path": str(env["root"]), "src": env["a"], "release_id": "r1", "_ansible_diff": True}
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is True
    assert res["diff"]["after"] == "current: r1\nreleases:\n  - r1\n"
    assert os.readlink(env["root"] / "current") == "releases/r1"
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is False


def test_no_diff_key_without_diff_mode(capsys, env):
    code, res = run_module(capsys, {"path": str(env["root"]), "src": env["a"], "release_id": "r1"})
    assert code == 0 and "diff" not in res


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"release_id": "../x"}, "must not contain"),
        ({"release_id": ""}, "must not be empty"),
        ({"release_id": ".x"}, "must not start with '.'"),
        ({"src": "/nonexistent/a.tgz"}, "does not exist"),
        ({"sha256": "0" * 64}, "checksum mismatch"),
        ({"shared_paths": ["/etc"]}, "relative path"),
        ({"keep_releases": -1}, "keep_releases"),
    ],
)
def test_bad_input_fails_and_writes_nothing(capsys, env, overrides, fragment):
    args = {"path": str(env["root"]), "src": env["a"], "release_id": "r1", **overrides}
    code, res = run_module(capsys, args)
    assert code == 1 and res["failed"] is True
    assert fragment in res["msg"]
    assert not env["root"].exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"state": "deployed"}, "src"),
        ({"state": "activated"}, "release_id"),
        ({"state": "absent"}, "release_id"),
    ],
)
def test_required_options(capsys, env, args, fragment):
    code, res = run_module(capsys, {"path": str(env["root"]), **args})
    assert code == 1 and fragment in res["msg"]


def test_blue_green_activate(capsys, env):
    root = str(env["root"])
    run_module(capsys, {"path": root, "src": env["a"], "release_id": "r1"})
    code, res = run_module(capsys, {"path": root, "src": env["b"], "release_id": "r2", "activate": False})
    assert code == 0 and res["changed"] and res["current"] == "r1" and res["releases"] == ["r1", "r2"]
    code, res = run_module(capsys, {"path": root, "state": "activated", "release_id": "r2"})
    assert code == 0 and res["changed"] and (res["current"], res["previous"]) == ("r2", "r1")
    code, res = run_module(capsys, {"path": root, "state": "activated", "release_id": "r2"})
    assert code == 0 and not res["changed"]
    code, res = run_module(capsys, {"path": root, "state": "activated", "release_id": "r9"})
    assert code == 1 and "'r9' does not exist" in res["msg"]


def test_upload_dir_needs_sha256(capsys, env, tmp_path):
    args = {"path": str(env["root"]), "src": env["a"], "upload_dir": str(tmp_path / "cache")}
    code, res = run_module(capsys, args)
    assert code == 1 and "upload_dir" in res["msg"] and "sha256" in res["msg"], res["msg"]
    assert not (tmp_path / "cache").exists() and not env["root"].exists()


def test_upload_dir_places_the_checked_archive_and_builds(capsys, env, tmp_path):
    digest = hashlib.sha256(Path(env["a"]).read_bytes()).hexdigest()
    args = {"path": str(env["root"]), "src": env["a"], "upload_dir": str(tmp_path / "cache"), "sha256": digest,
            "release_id": "r1", "_ansible_diff": True}  # fmt: skip
    code, res = run_module(capsys, args)
    cached = tmp_path / "cache" / "a.tgz"
    assert code == 0 and res["changed"] is True and res["archive"]["placed"] is True
    assert res["archive"]["path"] == str(cached) and oct(cached.stat().st_mode & 0o777) == "0o600"
    assert "archive: " in res["diff"]["after"]
    assert (env["root"] / "releases" / "r1" / "index.html").read_bytes() == b"v1"
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is False


def test_upload_dir_sha256_mismatch_fails_naming_both(capsys, env, tmp_path):
    args = {"path": str(env["root"]), "src": env["a"], "upload_dir": str(tmp_path / "cache"), "sha256": "1" * 64}
    code, res = run_module(capsys, args)
    assert code == 1 and f"expected sha256 {'1' * 64}" in res["msg"]
    assert res["expected_sha256"] == "1" * 64 and len(res["actual_sha256"]) == 64
    assert not (tmp_path / "cache").exists() and not env["root"].exists()
