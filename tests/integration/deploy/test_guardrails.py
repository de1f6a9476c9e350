"""The inventory's guardrails.yml drives the rollout batches of the day-2 playbooks.

switch.yml with a bad colour fails every host of a batch at its first task; with the inventory's
deploy_serial 2 and deploy_max_fail_percentage 0 the first batch (2 hosts) fails and the third
host must never be touched. With -e deploy_serial=3 all three run in one batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SWITCH = str(Path(__file__).resolve().parents[3] / "playbooks" / "switch.yml")
HOSTS = ["app-a", "app-b", "app-c"]


@pytest.fixture
def inventory_dir(tmp_path):
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    lines = ["[api]"] + [f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}" for h in HOSTS]
    (inv / "hosts.ini").write_text("\n".join(lines) + "\n")
    (inv / "group_vars" / "all" / "guardrails.yml").write_text(
        "---\ndeploy_serial: 2\ndeploy_max_fail_percentage: 0\nrestore_requires_confirmation: true\n"
    )
    return inv


def touched_hosts(run):
    return {e["host"] for e in run.results}


def test_inventory_batches_stop_the_rollout_at_the_first_failed_batch(playbook, inventory_dir):
    run = playbook(SWITCH, inventory=str(inventory_dir), extravars={"color": "purple"})
    assert touched_hosts(run) == {"app-a", "app-b"}
    assert all(run.failed(h) == 1 for h in ("app-a", "app-b"))
    assert run.changed("app-a") == 0 and run.changed("app-b") == 0


def test_extra_vars_override_the_inventory_batch_size(playbook, inventory_dir):
    run = playbook(SWITCH, inventory=str(inventory_dir), extravars={"color": "purple", "deploy_serial": 3})
    assert touched_hosts(run) == set(HOSTS)


RESTORE = str(Path(__file__).resolve().parents[3] / "playbooks" / "restore.yml")


def restore_messages(run):
    return " ".join(str(e["res"].get("msg", "")) for e in run.results if e["event"] == "runner_on_failed")


def test_restore_confirmation_required_where_the_guardrail_says_so(playbook, tmp_path):
    extravars = {
        "target": "localhost",
        "database": "app",
        "stackops_environment": "staging",
        "restore_requires_confirmation": True,
        "postgres_backup_dir": str(tmp_path / "no-backups"),
    }
    run = playbook(RESTORE, extravars=extravars)
    assert run.failed() == 1 and run.changed() == 0
    assert "confirm_restore=app" in restore_messages(run)


def test_restore_gate_passes_when_confirmation_is_given(playbook, tmp_path):
    extravars = {
        "target": "localhost",
        "database": "app",
        "restore_requires_confirmation": True,
        "confirm_restore": "app",
        "postgres_backup_dir": str(tmp_path / "no-backups"),
    }
    run = playbook(RESTORE, extravars=extravars)
    # Past the gate it fails for want of a backup, never with the refusal.
    assert run.changed() == 0
    assert "Refusing to restore" not in restore_messages(run)
    assert run.task_status("Require confirmation before restoring in production") == "runner_on_ok"
