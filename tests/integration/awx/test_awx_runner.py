"""Job templates run through ansible-runner the way AWX starts a job: a private data dir holding the project
checkout (project/), an inventory script (inventory/hosts), env/extravars and env/settings, streamed
transmit -> worker -> process (AWX's receptor work unit); the job events and artifacts are then read back.

The targets are real: localhost over the local connection, a deploy root in a temp dir holding releases built
by stackops.platform.release. The collection comes from the harness' collections path, as it comes from the
execution environment under AWX.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import ansible_runner
import pytest
from awx_spec import REPO_ROOT, launch_extravars, load_templates

TEMPLATES = {t["name"]: t for t in load_templates()["job_templates"]}
# What AWX does not copy into a job's project dir here: the virtualenv, VCS and test-only trees.
PROJECT_IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "molecule", "tests", "benchmarks", "__pycache__")


def _inventory_script(path: Path, hostvars: dict) -> None:
    """AWX writes the inventory as an executable script printing JSON for --list."""
    data = {
        "all": {"children": ["api", "worker", "ungrouped"]},
        "api": {"hosts": ["localhost"]},
        "worker": {"hosts": ["localhost"]},
        "_meta": {"hostvars": {"localhost": hostvars}},
    }
    path.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({json.dumps(data)!r} and {data!r}))\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def awx_job(tmp_path: Path, template_name: str, answers: dict, hostvars: dict, ident: str):
    """Lay out a private data dir like AWX, stream it through transmit/worker/process, return the runner."""
    template = TEMPLATES[template_name]
    pdd = tmp_path / "awx_job"
    shutil.copytree(REPO_ROOT, pdd / "project", ignore=PROJECT_IGNORE, symlinks=True)
    (pdd / "inventory").mkdir()
    _inventory_script(pdd / "inventory" / "hosts", hostvars)
    (pdd / "env").mkdir()
    extravars = launch_extravars(template, "stackops-staging", answers)
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": template["timeout"], "pexpect_timeout": 5}))
    params = {
        "private_data_dir": str(pdd),
        "ident": ident,
        "playbook": template["playbook"],
        "inventory": str(pdd / "inventory" / "hosts"),
        "envvars": {
            "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""),
            "ANSIBLE_CONFIG": str(pdd / "project" / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "JOB_ID": ident,
        },
        "suppress_env_files": True,
    }
    # Receptor carries the streams between the three steps; files stand in for its sockets.
    transmitted, worked = tmp_path / "transmit.stream", tmp_path / "worker.stream"
    with transmitted.open("wb") as out:
        ansible_runner.run(streamer="transmit", _output=out, **params)
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    with transmitted.open("rb") as inp, worked.open("wb") as out:
        ansible_runner.run(streamer="worker", _input=inp, _output=out, private_data_dir=str(worker_dir))
    with worked.open("rb") as inp:
        return ansible_runner.run(streamer="process", _input=inp, quiet=True, private_data_dir=str(pdd), ident=ident)


@pytest.fixture
def deploy_root(tmp_path, playbook):
    """A deploy root holding releases r1 then r2 (current), built by stackops.platform.release."""
    root = tmp_path / "srv"
    for rid in ("r1", "r2"):
        src = tmp_path / f"src-{rid}"
        (src / "app").mkdir(parents=True)
        (src / "VERSION").write_text(f"{rid}\n")
        task = {"name": "Build", "stackops.platform.release": {"path": str(root), "src": str(src), "release_id": rid}}
        run = playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}])
        assert run.failed() == 0, run.results
    assert os.readlink(root / "current").endswith("releases/r2")
    return root


def _hostvars(root: Path) -> dict:
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # The machine credential's privilege escalation; the job already runs as root here.
        "ansible_become_method": "su",
        "api_app_name": "awxtest",
        "api_deploy_root": str(root),
        "api_nginx_listen": "127.0.0.1:9",
        "api_env": {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"},
        "deploy_state_file": str(root / "blue_green.json"),
        "worker_app_name": "awxtest",
    }


def _artifacts(pdd: Path, ident: str) -> Path:
    return pdd / "artifacts" / ident


def test_status_template_runs_like_an_awx_job(tmp_path, deploy_root):
    runner = awx_job(tmp_path, "status", {}, _hostvars(deploy_root), ident="101")
    art = _artifacts(tmp_path / "awx_job", "101")
    assert runner.status == "successful", (art / "stdout").read_text()
    # AWX reads these back from the artifacts dir.
    assert (art / "status").read_text() == "successful"
    assert (art / "rc").read_text() == "0"
    assert "PLAY RECAP" in (art / "stdout").read_text()
    events = [json.loads(p.read_text()) for p in sorted((art / "job_events").glob("*.json"))]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "playbook_on_start" and "playbook_on_stats" in kinds
    # Every event carries the job's identity the way AWX files it.
    assert {e["runner_ident"] for e in events} == {"101"}
    table = next(e for e in events if e["event"] == "runner_on_ok" and e["event_data"]["task"] == "Status")
    rows = table["event_data"]["res"]["msg"]
    api_row = next(r for r in rows if r.startswith("api "))
    # The status play read the real deploy root: current is r2, nothing answers on the nginx address.
    assert "release r2" in api_row and " NO " in api_row, rows
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    assert stats["failures"] == {} and stats["dark"] == {} and stats["ok"]["localhost"] > 0


def test_rollback_template_passes_the_survey_answer_to_the_playbook(tmp_path, deploy_root):
    before = os.readlink(deploy_root / "current")
    runner = awx_job(tmp_path, "rollback", {"release_id": "no-such-release"}, _hostvars(deploy_root), ident="102")
    art = _artifacts(tmp_path / "awx_job", "102")
    assert runner.status == "failed" and (art / "status").read_text() == "failed"
    events = [json.loads(p.read_text()) for p in sorted((art / "job_events").glob("*.json"))]
    extravars = json.loads((tmp_path / "awx_job" / "env" / "extravars").read_text())
    assert extravars["release_id"] == "no-such-release" and extravars["deploy_max_fail_percentage"] == 50
    failed = [e for e in events if e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors")]
    msg = failed[-1]["event_data"]["res"]["msg"]
    assert "release 'no-such-release' does not exist; available releases: r1, r2" in msg, msg
    # Refused before anything moved.
    assert os.readlink(deploy_root / "current") == before
    assert not (deploy_root / "blue_green.json").exists()
