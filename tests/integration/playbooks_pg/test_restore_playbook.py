"""playbooks/restore.yml refuses an unconfirmed production restore before touching anything.

The inventory's host uses a local connection, so these runs need no server: the gate must fire
(or, in staging, let the run through to the restore task) before any database connection.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
RESTORE = str(REPO_ROOT / "playbooks" / "restore.yml")
HOST = "pg-gate-test"
GATE = "Require confirmation before restoring in production"
RESTORE_TASK = "Restore the database from its backup"


def inventory(environment: str | None, extra: str = "") -> str:
    line = f"{HOST} ansible_connection=local ansible_python_interpreter={sys.executable} {extra}".rstrip()
    text = f"[postgres]\n{line}\n"
    if environment is not None:
        text += f"[postgres:vars]\nstackops_environment={environment}\n"
    return text


def tasks_run(run) -> list[str]:
    return [event["task"] for event in run.results]


@pytest.mark.parametrize(
    ("environment", "extra"),
    [
        (None, {}),  # undefined environment counts as production
        ("production", {}),
        ("production", {"confirm_restore": "billing"}),  # confirmation must name this database
        ("production", {"confirm_restore": ""}),
    ],
    ids=["undefined-env", "production-no-confirm", "production-wrong-confirm", "production-empty-confirm"],
)
def test_production_restore_refused_without_confirmation(playbook, tmp_path, environment, extra):
    backup_dir = tmp_path / "backups"
    run = playbook(
        RESTORE,
        inventory=inventory(environment),
        extravars={"database": "app", "postgres_backup_dir": str(backup_dir), **extra},
    )
    assert run.failed(HOST) == 1
    assert run.changed(HOST) == 0
    assert run.task_status(GATE) == "runner_on_failed"
    msg = run.task(GATE)["msg"]
    assert "Refusing to restore database app" in msg
    assert "-e confirm_restore=app" in msg
    assert RESTORE_TASK not in tasks_run(run)
    assert not backup_dir.exists()


def test_restore_requires_a_database(playbook):
    run = playbook(RESTORE, inventory=inventory("staging"))
    assert run.failed(HOST) == 1
    assert run.changed(HOST) == 0
    assert "pass -e database=<name>" in run.task("Require the database to restore and a valid mode")["msg"]
    assert GATE not in tasks_run(run)


def test_bad_restore_mode_refused(playbook):
    run = playbook(RESTORE, inventory=inventory("staging"), extravars={"database": "app", "restore_mode": "wipe"})
    assert run.failed(HOST) == 1
    assert "restore_mode=wipe" in run.task("Require the database to restore and a valid mode")["msg"]
    assert RESTORE_TASK not in tasks_run(run)


@pytest.mark.parametrize(
    ("environment", "extra"),
    [("staging", {}), ("production", {"confirm_restore": "app"})],
    ids=["staging-no-confirm", "production-confirmed"],
)
def test_gate_passes_when_allowed(playbook, tmp_path, environment, extra):
    # No server and no backups here: the run gets past the gate and fails in the restore module itself.
    # ansible_become_user=root: the test venv's interpreter is not readable by the postgres OS user.
    missing = tmp_path / "none"
    run = playbook(
        RESTORE,
        inventory=inventory(environment, "ansible_become_user=root"),
        extravars={"database": "app", "postgres_backup_dir": str(missing), **extra},
    )
    assert run.task_status(GATE) == "runner_on_ok"
    assert run.task_status(RESTORE_TASK) == "runner_on_failed"
    assert f"backup_dir {missing} does not exist" in run.task(RESTORE_TASK)["msg"]
    assert run.changed(HOST) == 0
