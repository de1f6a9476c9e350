"""deploy.yml stages the release on every api host before the serial rollout, and the batches do not stage again.

Two api hosts over the local connection, each with its own deploy root, one host per batch, no failures
allowed. This machine runs no systemd, so the restart of the idle colour fails: with staging first it fails on
every host during the staging, which is then called off before any batch; without it the first batch fails and
the rollout stops there. The tests with a host that stages fine while another fails (the call-off puts its idle
colour back) run where systemd does: molecule/multiapp.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from archives import sample_archive

DEPLOY = str(Path(__file__).resolve().parents[3] / "playbooks" / "deploy.yml")
HOSTS = ["app-a", "app-b"]
# copy_release.yml's one task (its name ends with the release id).
COPY_TASK = "Send the release archive and build the release"
RESTART_TASK = "Restart and health-check (failing at once if its unit dies) the colour green"


@pytest.fixture
def estate(tmp_path):
    archive = sample_archive(tmp_path)
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    lines = ["[api]"]
    for host in HOSTS:
        root = tmp_path / host
        lines.append(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} api_deploy_root={root}"
            f" deploy_state_file={root}/blue_green.json deploy_archive_dir={tmp_path}/archives-{host}"
        )
    (inv / "hosts.ini").write_text("\n".join(lines) + "\n")
    (inv / "group_vars" / "all" / "guardrails.yml").write_text("---\ndeploy_serial: 1\ndeploy_max_fail_percentage: 0\n")
    extravars = {
        "release_archive": str(archive),
        "release_id": "r2",
        "api_env": {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"},
    }
    return tmp_path, inv, extravars


def _copies(run, host):
    # One result per run of the task on the host (runner_on_start events left aside).
    runs = [e for e in run.results if e["task"].startswith(COPY_TASK) and e["host"] == host]
    return sum(1 for e in runs if e["event"] != "runner_on_start")


def _events(run, task, host):
    return [e for e in run.results if e["task"] == task and e["host"] == host and e["event"] != "runner_on_start"]


def test_release_is_staged_and_started_on_every_host_before_the_first_batch(estate, playbook):
    tmp_path, inv, extravars = estate
    run = playbook(DEPLOY, inventory=str(inv), extravars=extravars)
    # Both hosts tried to start the release in staging, failed, and no batch ran.
    # app-b tried to start its idle colour (app-a, the first host, failed at its migrations before that).
    assert _events(run, RESTART_TASK, "app-b")
    for host in HOSTS:
        assert run.failed(host) == 1, host
        # The release task pointed the idle colour at the release itself: no release_color call of its own.
        copy = [e for e in run.results if e["task"].startswith(COPY_TASK) and e["host"] == host][-1]["res"]
        assert (copy["colors"]["idle"], copy["colors"]["after"]) == ("green", str(tmp_path / host / "releases" / "r2"))
        assert not any(e["task"].startswith("Read the colours") and e["host"] == host for e in run.results), host
        assert "Staging failed on " + host in _events(run, "Fail this host, its staging failed", host)[-1]["res"]["msg"]
        assert not _events(run, "Switch nginx to the new colour (or move traffic to it in canary steps)", host), host
        root = tmp_path / host
        assert (root / "releases" / "r2" / "VERSION").read_text() == "2.0.0\n", host
        # Nothing switched: current never moved, the idle colour's link is gone again (it ran nothing before).
        assert not (root / "current").exists()
        assert not (root / "colors" / "blue").exists() and not (root / "colors" / "green").exists()
        assert _copies(run, host) == 1, host
        # The error that stopped it, not one from putting things back.
        failure = _events(run, "Fail the host with the error of the deploy", host)[-1]["res"]["msg"]
        assert "was not switched to on " + host in failure, failure
        audit = [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]
        assert [(a["event"], a["result"], a["release"]) for a in audit] == [("deploy", "failed", "r2")], audit
        # The archive stays on the host for the tasks that build from it later: 0600 in a 0700 directory.
        cached = tmp_path / f"archives-{host}" / "sample-app-2.0.0.tar.gz"
        assert (cached.stat().st_mode & 0o777, cached.parent.stat().st_mode & 0o777) == (0o600, 0o700), host


def test_staging_can_be_left_to_the_batches(estate, playbook):
    tmp_path, inv, extravars = estate
    run = playbook(DEPLOY, inventory=str(inv), extravars=dict(extravars, deploy_stage_first=False))
    assert run.failed("app-a") == 1
    assert (tmp_path / "app-a" / "releases" / "r2").is_dir()
    # Without staging, the host after the failed batch got nothing.
    assert not os.path.exists(tmp_path / "app-b" / "releases")
    assert _copies(run, "app-b") == 0
