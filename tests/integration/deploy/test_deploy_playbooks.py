"""playbooks/deploy.yml, rollback.yml and switch.yml: they parse, and bad input fails before anything changes.

The full deploy/switch/rollback cycle under load runs in benchmarks/zero_downtime.py (it needs systemd and
nginx in a container); here the playbooks run against localhost with a throwaway deploy root.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from archives import sample_archive

REPO_ROOT = Path(__file__).resolve().parents[3]

PLAYBOOKS = ["deploy.yml", "rollback.yml", "switch.yml"]
# The rescue task that re-raises a refusal of the fast path (bad release id, nothing to roll back to).
ROLLBACK_REFUSED = "Stop unless no colour runs the target or it failed its health check (nothing was changed)"


def _inventory(root) -> str:
    host = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}"
    return f"[api]\n{host}\n[worker]\n{host}\n"


def _extravars(root) -> dict:
    return {
        "api_deploy_root": str(root),
        "api_env": {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"},
        "deploy_state_file": str(root / "blue_green.json"),
    }


def _snapshot(root) -> dict:
    return {
        str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        # The audit log records the refused run (asserted where it matters); everything else must not move.
        if p.name not in {".deploy.lock", "audit.jsonl", ".audit.jsonl.lock"}
    }


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_playbook_syntax(name):
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "--syntax-check", str(REPO_ROOT / "playbooks" / name)],
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg")),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def deploy_root(tmp_path, playbook):
    """A deploy root holding one activated release r1 (built by stackops.platform.release from a directory)."""
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    (src / "VERSION").write_text("1.0.0\n")
    root = tmp_path / "srv"
    run = playbook(
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Build r1",
                        "stackops.platform.release": {"path": str(root), "src": str(src), "release_id": "r1"},
                    }
                ],
            }
        ]
    )
    assert run.failed() == 0, run.results
    assert os.readlink(root / "current").endswith("releases/r1")
    return root


def test_rollback_unknown_release_fails_cleanly(deploy_root, playbook):
    before = _snapshot(deploy_root)
    run = playbook(
        str(REPO_ROOT / "playbooks" / "rollback.yml"),
        inventory=_inventory(deploy_root),
        extravars=dict(_extravars(deploy_root), release_id="no-such-release"),
    )
    assert run.failed() == 1
    msg = run.task(ROLLBACK_REFUSED)["msg"]
    assert "release 'no-such-release' does not exist; available releases: r1" in msg, msg
    # Nothing moved: no colour link, no blue_green state, current still r1, workers never touched.
    assert _snapshot(deploy_root) == before
    # The refused rollback is in the audit log.
    [line] = [json.loads(raw) for raw in (deploy_root / "audit.jsonl").read_text().splitlines()]
    assert (line["event"], line["result"], line["release"]) == ("rollback", "failed", "no-such-release"), line
    assert "does not exist" in line["message"]
    assert not (deploy_root / "blue_green.json").exists()
    assert "Restart the workers onto the current release" not in [e["task"] for e in run.results]


def test_rollback_without_previous_release_fails_cleanly(deploy_root, playbook):
    before = _snapshot(deploy_root)
    run = playbook(
        str(REPO_ROOT / "playbooks" / "rollback.yml"),
        inventory=_inventory(deploy_root),
        extravars=_extravars(deploy_root),
    )
    assert run.failed() == 1
    assert "no previous release recorded for current release 'r1'" in run.task(ROLLBACK_REFUSED)["msg"]
    assert _snapshot(deploy_root) == before


@pytest.mark.parametrize("color", ["purple", None])
def test_switch_rejects_a_bad_colour(deploy_root, playbook, color):
    extravars = _extravars(deploy_root)
    if color:
        extravars["color"] = color
    run = playbook(str(REPO_ROOT / "playbooks" / "switch.yml"), inventory=_inventory(deploy_root), extravars=extravars)
    assert run.failed() == 1
    assert "color=blue" in run.task("Check the requested colour")["msg"]
    assert not (deploy_root / "blue_green.json").exists()


def test_deploy_without_archive_fails_before_any_host(tmp_path, playbook):
    run = playbook(str(REPO_ROOT / "playbooks" / "deploy.yml"), inventory=_inventory(tmp_path / "srv"))
    assert run.failed() == 1
    assert "release_archive" in run.task("Check the release archive")["msg"]
    assert not (tmp_path / "srv").exists()


def test_deploy_with_missing_archive_fails_before_any_host(tmp_path, playbook):
    run = playbook(
        str(REPO_ROOT / "playbooks" / "deploy.yml"),
        inventory=_inventory(tmp_path / "srv"),
        extravars={"release_archive": str(tmp_path / "nope.tar.gz")},
    )
    assert run.failed() == 1
    assert "no such file" in run.task("Check the release archive")["msg"]
    assert not (tmp_path / "srv").exists()


def test_deploy_check_mode_reports_the_plan_and_changes_nothing(deploy_root, tmp_path, playbook):
    archive = sample_archive(tmp_path)
    archives = tmp_path / "archives"
    before = _snapshot(deploy_root)
    run = playbook(
        str(REPO_ROOT / "playbooks" / "deploy.yml"),
        inventory="[api]\n" + _inventory(deploy_root).split("\n")[1] + "\n",
        extravars=dict(
            _extravars(deploy_root), release_archive=str(archive), release_id="r2", deploy_archive_dir=str(archives)
        ),
        check=True,
    )
    assert run.failed() == 0, run.results
    plan = run.task("Show what the deploy would do")["msg"]
    assert "would get release r2" in plan and "pointed at it and restarted" in plan, plan
    assert "switched from blue to green" in plan and "Nothing was changed" in plan, plan
    # Nothing written: no archive copied, no release, no colour link, no blue_green state, current still r1.
    assert _snapshot(deploy_root) == before
    assert not archives.exists()
    assert not (deploy_root / "blue_green.json").exists()


def _deploy(playbook, deploy_root, archive, check=False, **extra):
    return playbook(
        str(REPO_ROOT / "playbooks" / "deploy.yml"),
        inventory="[api]\n" + _inventory(deploy_root).split("\n")[1] + "\n",
        extravars=dict(_extravars(deploy_root), release_archive=str(archive), release_id="r2", **extra),
        check=check,
    )


def test_deploy_takes_the_sha256_published_beside_the_archive(deploy_root, tmp_path, playbook):
    archive = sample_archive(tmp_path)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    Path(f"{archive}.sha256").write_text(f"{digest.upper()}  {archive.name}\n")
    run = _deploy(playbook, deploy_root, archive, check=True, deploy_archive_dir=str(tmp_path / "archives"))
    assert run.failed() == 0, run.results
    # No module call on the controller to hash the archive: the published sum is used (and checked on the host).
    hashing = "Read the release archive's checksum (no -e release_sha256 and no <archive>.sha256 beside it)"
    assert run.task_status(hashing) == "runner_on_skipped"
    assert f"sha256 {digest}" in run.task("Show what the deploy would do")["msg"]


def test_a_wrong_published_sha256_fails_on_the_host_with_nothing_changed(deploy_root, tmp_path, playbook):
    archive = sample_archive(tmp_path)
    Path(f"{archive}.sha256").write_text(f"{'0' * 64}  {archive.name}\n")
    before = _snapshot(deploy_root)
    run = _deploy(playbook, deploy_root, archive, deploy_archive_dir=str(tmp_path / "archives"))
    assert run.failed() == 1
    failures = [e["res"].get("msg", "") for e in run.results if e["event"] == "runner_on_failed"]
    assert any(f"expected sha256 {'0' * 64}" in msg and "nothing was changed" in msg for msg in failures), failures
    assert _snapshot(deploy_root) == before
    assert not (tmp_path / "archives").exists()  # the upload was refused before anything was placed
    assert os.readlink(deploy_root / "current").endswith("r1")


def test_a_malformed_release_sha256_is_refused_before_any_host(deploy_root, tmp_path, playbook):
    archive = sample_archive(tmp_path)
    before = _snapshot(deploy_root)
    run = _deploy(playbook, deploy_root, archive, release_sha256="abc123")
    assert run.failed() == 1
    msg = run.task("Check the release archive")["msg"]
    assert "(-e release_sha256) is not 64 hex digits: abc123" in msg, msg
    assert _snapshot(deploy_root) == before
