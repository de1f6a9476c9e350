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

from ansible_collections.stackops.platform.plugins.module_utils import release_core
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


# ---------------------------------------------------------------- color_state_file: build and link in one call


@pytest.fixture
def colored(capsys, env, tmp_path):
    """r1 current and in the blue colour, nginx on blue (state file); the args that stage r2 in the idle colour."""
    root = env["root"]
    run_module(capsys, {"path": str(root), "src": env["a"], "release_id": "r1"})
    (root / "colors").mkdir()
    os.symlink(str(root / "releases" / "r1"), root / "colors" / "blue")
    state_file = tmp_path / "bg.json"
    state_file.write_text(json.dumps({"active": "blue", "previous": None}))
    args = {"path": str(root), "src": env["b"], "release_id": "r2", "activate": False,
            "color_state_file": str(state_file)}  # fmt: skip
    return root, state_file, args


def colour_links(root):
    return {p.name: os.readlink(p) for p in sorted((root / "colors").iterdir())}


def test_color_state_file_points_the_idle_colour_in_the_same_call(capsys, colored):
    root, _state_file, args = colored
    r1, r2 = str(root / "releases" / "r1"), str(root / "releases" / "r2")
    code, res = run_module(capsys, {**args, "_ansible_diff": True})
    assert code == 0 and res["changed"] is True, res
    assert (res["release_id"], res["current"]) == ("r2", "r1")
    assert res["colors"] == {
        "active": "blue", "idle": "green", "recorded": True, "links": {"blue": r1, "green": r2},
        "color": "green", "before": "", "after": r2,
    }  # fmt: skip
    assert colour_links(root) == {"blue": r1, "green": r2}
    assert res["diff"]["before"].endswith("colors/green: \n") and res["diff"]["after"].endswith(f"colors/green: {r2}\n")
    # Built and linked already: nothing to do.
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is False and res["colors"]["before"] == r2, res


def test_color_state_file_links_a_release_built_already(capsys, colored):
    root, _state_file, args = colored
    run_module(capsys, {**args, "color_state_file": None})
    assert "green" not in colour_links(root)
    code, res = run_module(capsys, args)
    assert code == 0 and res["changed"] is True and res["colors"]["after"] == str(root / "releases" / "r2")
    assert os.readlink(root / "colors" / "green") == str(root / "releases" / "r2")


def test_color_state_file_check_mode_only_reads(capsys, colored):
    root, _state_file, args = colored
    before = colour_links(root), sorted(os.listdir(root / "releases"))
    code, res = run_module(capsys, {**args, "_ansible_check_mode": True, "_ansible_diff": True})
    assert code == 0 and res["changed"] is True, res  # the release would be built
    assert res["colors"]["idle"] == "green" and res["colors"]["active"] == "blue"
    assert (res["colors"]["color"], res["colors"]["before"], res["colors"]["after"]) == (None, None, None)
    assert "colors/" not in res["diff"]["after"]
    assert (colour_links(root), sorted(os.listdir(root / "releases"))) == before


def test_unusable_state_file_is_refused_naming_it_with_nothing_changed(capsys, colored):
    root, state_file, args = colored
    state_file.write_text("{")
    before = colour_links(root)
    code, res = run_module(capsys, args)
    assert code == 1 and f"state file {state_file} is unusable" in res["msg"], res["msg"]
    assert colour_links(root) == before and not (root / "releases" / "r2").exists()


def test_link_failure_after_the_build_keeps_the_release_and_names_the_bad_value(capsys, colored, monkeypatch):
    """The state file goes bad between the build and the link (another run): the release stays, the link does not
    move, and the failure carries the release's keys for the rescue that marks it failed."""
    root, state_file, args = colored
    deploy = release_core.deploy

    def deploy_then_corrupt(params, check_mode=False):
        result = deploy(params, check_mode)
        state_file.write_text('{"active": "purple"}')
        return result

    monkeypatch.setattr(release_core, "deploy", deploy_then_corrupt)
    before = colour_links(root)
    code, res = run_module(capsys, args)
    assert code == 1 and res["changed"] is True, res
    assert "release r2 is built at" in res["msg"] and f"state file {state_file} is unusable" in res["msg"], res["msg"]
    assert "'purple'" in res["msg"], res["msg"]
    assert (res["release_id"], res["current"]) == ("r2", "r1")
    assert colour_links(root) == before and (root / "releases" / "r2" / ".release-meta").is_file()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"activate": True}, "needs activate=false"),
        ({"activate": None}, "needs activate=false"),  # activate's default is true
        ({"state": "failed"}, "color_state_file applies to state=deployed only"),
        ({"color_state_file": ""}, "color_state_file must not be empty"),
    ],
)
def test_color_state_file_refusals_change_nothing(capsys, colored, extra, fragment):
    root, _state_file, args = colored
    args = {k: v for k, v in {**args, **extra}.items() if v is not None}
    before = colour_links(root), sorted(os.listdir(root / "releases")), os.readlink(root / "current")
    code, res = run_module(capsys, args)
    assert code == 1 and fragment in res["msg"], res["msg"]
    assert (colour_links(root), sorted(os.listdir(root / "releases")), os.readlink(root / "current")) == before
