"""Build hooks (deploy_build_commands) and the audit log of deploy.yml, on the controller.

One api host over the local connection with a deploy root in tmp that runs r1 in the blue colour. This machine
runs no systemd, so a deploy whose hooks pass fails later, at the restart of the idle colour: that is the
failed-deploy path of the audit log and the failed mark of the release. A failing or timed-out hook must leave
everything as it was (current, colour links, the blue_green state) and remove the half-built release.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = str(REPO_ROOT / "playbooks" / "deploy.yml")
AUDITED = str(REPO_ROOT / "playbooks" / "tasks" / "audited.yml")
FAIL_TASK = "Fail the host with the error of the deploy"


def snapshot(root: Path) -> dict:
    """Links with their targets and files with their content; audit, lock files and the build cache apart."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.name in {"audit.jsonl", ".audit.jsonl.lock", ".deploy.lock"} or rel.startswith("build-home"):
            continue
        if p.is_symlink():
            found[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            found[rel] = p.read_bytes()
        else:
            found[rel] = "dir"
    return found


def audit_lines(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]


@pytest.fixture
def estate(tmp_path, playbook):
    """r1 current and in the blue colour (blue_green state: blue), the archive of r2, the inventory."""
    root = tmp_path / "srv"
    src = tmp_path / "src-r1"
    src.mkdir()
    (src / "VERSION").write_text("1.0.0\n")
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
    (root / "colors").mkdir()
    os.symlink(str(root / "releases" / "r1"), root / "colors" / "blue")
    (root / "blue_green.json").write_text('{"active": "blue"}\n')
    build = tmp_path / "build" / "sample-app-2.0.0"
    build.mkdir(parents=True)
    (build / "VERSION").write_text("2.0.0\n")
    archive = tmp_path / "sample-app-2.0.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(build, arcname="sample-app-2.0.0")
    inventory = f"[api]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    extravars = {
        "api_deploy_root": str(root),
        "api_user": "root",
        "api_group": "root",
        "api_migrate_command": "",
        "api_env": {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"},
        "deploy_state_file": str(root / "blue_green.json"),
        "deploy_archive_dir": str(tmp_path / "archives"),
        "release_archive": str(archive),
        "release_id": "r2",
    }
    return root, inventory, extravars


@pytest.mark.parametrize(
    ("commands", "timeout", "expected"),
    [
        (
            ["echo step-one", "echo fetching deps; echo 'E: no such package' >&2; exit 3"],
            600,
            "Build hook 2 (echo fetching deps; echo 'E: no such package' >&2; exit 3) exited with status 3",
        ),
        (["echo started; sleep 60"], 2, "Build hook 1 (echo started; sleep 60) timed out (deploy_build_timeout=2s)"),
    ],
    ids=["failing", "timed-out"],
)
def test_failed_hook_changes_nothing_that_serves(estate, playbook, commands, timeout, expected):
    root, inventory, extravars = estate
    before = snapshot(root)
    run = playbook(
        DEPLOY,
        inventory=inventory,
        extravars=dict(extravars, deploy_build_commands=commands, deploy_build_timeout=timeout),
    )
    assert run.failed() == 1
    msg = run.task(FAIL_TASK)["msg"]
    assert expected in msg, msg
    assert "the release was removed" in msg and "`current` (r1)" in msg, msg
    # The output's tail is in the message: stdout and stderr, in order.
    if timeout == 600:
        assert "fetching deps\nE: no such package" in msg, msg
    else:
        assert "started" in msg, msg
    # current, colour links, blue_green state and r1 exactly as before; r2 removed.
    after = snapshot(root)
    assert after == before, set(after.items()) ^ set(before.items())
    assert not (root / "releases" / "r2").exists()
    # Nothing went past the hooks: no colour was restarted or linked.
    tasks = [e["task"] for e in run.results]
    assert "Point the idle colour at the new release" not in tasks
    assert not any(t.startswith("Restart the idle colour") for t in tasks)
    [line] = audit_lines(root)
    assert line["event"] == "deploy" and line["result"] == "failed" and line["app"] == "api", line
    assert line["release"] == "r2" and line["previous"] == "r1" and line["host"] == "localhost", line
    assert expected in line["message"] and line["duration_s"] >= 0 and line["who"]["user"], line
    assert os.stat(root / "audit.jsonl").st_mode & 0o777 == 0o640


def test_hooks_build_the_release_as_the_app_user_then_give_it_back(estate, playbook):
    root, inventory, extravars = estate
    run = playbook(
        DEPLOY,
        inventory=inventory,
        extravars=dict(
            extravars,
            deploy_build_commands=[
                "mkdir -p vendor && echo built > vendor/marker",
                "id -un > vendor/who; echo $HOME > vendor/home",
            ],
            deploy_build_environment={"BUILD_FLAVOUR": "prod"},
        ),
    )
    release = root / "releases" / "r2"
    assert (release / "vendor" / "marker").read_text() == "built\n"
    assert (release / "vendor" / "who").read_text() == "root\n"
    assert (release / "vendor" / "home").read_text() == f"{root}/build-home\n"
    assert json.loads((release / ".build-hooks.done").read_text())[0].startswith("mkdir -p vendor")
    # Back to root, whoever the hooks ran as.
    assert all(p.lstat().st_uid == 0 for p in release.rglob("*"))
    # No systemd here: the deploy failed at the restart of the idle colour, after the hooks.
    assert run.failed() == 1
    assert any(e["task"].startswith("Restart and health-check") for e in run.results), run.results
    meta = json.loads((release / ".release-meta").read_text())
    assert meta["status"] == "failed" and meta["failed_reason"], meta
    assert os.readlink(root / "current") == "releases/r1"
    [line] = audit_lines(root)
    assert line["result"] == "failed" and line["release"] == "r2" and line["previous"] == "r1", line


def test_bad_hook_settings_are_refused_before_any_hook(estate, playbook):
    root, inventory, extravars = estate
    run = playbook(
        DEPLOY,
        inventory=inventory,
        extravars=dict(extravars, deploy_build_commands=["true", ""], deploy_build_timeout="ten"),
    )
    assert run.failed() == 1
    msg = run.task(FAIL_TASK)["msg"]
    assert "deploy_build_commands must be a list of non-empty command strings" in msg, msg
    assert "got ten" in msg, msg
    assert not (root / "releases" / "r2").exists()
    assert os.readlink(root / "current") == "releases/r1"


def test_audit_wrapper_records_a_good_event_and_who_ran_it(tmp_path, playbook):
    """audited.yml around tasks that succeed: one ok line with the release, previous, colour and watch figures."""
    root = tmp_path / "srv"
    root.mkdir()
    inner = tmp_path / "inner.yml"
    inner.write_text(
        "---\n- name: Pretend to deploy\n  ansible.builtin.set_fact:\n"
        "    __deploy_activated: {release_id: r3, previous: r2, current: r3}\n"
        "    __deploy_switch: {active: green, previous: blue}\n"
        "    __deploy_watch: {color: green, requests: 420, errors_5xx: 0, error_ratio: 0.0, p95_ms: 12,\n"
        "                     breached: false}\n"
    )
    run = playbook(
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "vars": {
                    "api_deploy_root": str(root),
                    "api_app_name": "shop",
                    "__deploy_src": {"__deploy_release_id": "r3"},
                    "awx_job_id": 4711,
                    "awx_user_name": "alice",
                },
                "tasks": [
                    {
                        "name": "Deploy",
                        "ansible.builtin.include_tasks": AUDITED,
                        "vars": {"__audit_event": "deploy", "__audit_tasks": str(inner)},
                    }
                ],
            }
        ]
    )
    assert run.failed() == 0, run.results
    [line] = audit_lines(root)
    assert line["event"] == "deploy" and line["result"] == "ok" and line["app"] == "shop", line
    assert (line["release"], line["previous"], line["color"], line["from_color"]) == ("r3", "r2", "green", "blue")
    assert line["watch"]["requests"] == 420 and line["watch"]["breached"] is False, line
    assert line["who"] == {"user": "alice", "job_id": "4711"}, line
    assert "message" not in line
