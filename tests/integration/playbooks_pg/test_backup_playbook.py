"""playbooks/backup.yml wires pg_backup to the inventory: which databases, which directory, which retention.

Check mode only: pg_backup then plans the backup (checks the directory and finds pg_dump) without
connecting to a server, so the wiring is tested here and the real dump in the postgres Molecule scenario.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BACKUP = str(REPO_ROOT / "playbooks" / "backup.yml")
HOST = "pg-backup-test"
TASK = "Back up each database over the local socket"


def inventory(host_vars: dict | None = None) -> str:
    # ansible_become_user=root: the test venv's interpreter is not readable by the postgres OS user.
    line = f"{HOST} ansible_connection=local ansible_python_interpreter={sys.executable} ansible_become_user=root"
    text = f"[postgres]\n{line}\n"
    if host_vars:
        text += "[postgres:vars]\n" + "".join(f"{k}={json.dumps(v)}\n" for k, v in host_vars.items())
    return text


def test_backs_up_every_managed_database_by_default(playbook, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    run = playbook(
        BACKUP,
        check=True,
        inventory=inventory(
            {
                "postgres_databases": [{"name": "app"}, {"name": "billing"}],
                "postgres_backup_dir": str(backup_dir),
                "postgres_backup_keep_last": 3,
            }
        ),
    )
    assert run.failed(HOST) == 0, run.results
    results = run.task(TASK)["results"]
    assert [r["item"] for r in results] == ["app", "billing"]
    for result in results:
        assert result["path"].startswith(f"{backup_dir}/{result['item']}/{result['item']}_")
        assert result["invocation"]["module_args"]["keep_last"] == 3
        assert result["invocation"]["module_args"]["host"] == "/var/run/postgresql"
    assert list(backup_dir.iterdir()) == []  # check mode wrote nothing


def test_one_database_from_the_command_line(playbook, tmp_path):
    run = playbook(
        BACKUP,
        check=True,
        inventory=inventory({"postgres_databases": [{"name": "app"}, {"name": "billing"}]}),
        extravars={"database": "billing", "postgres_backup_dir": str(tmp_path)},
    )
    assert run.failed(HOST) == 0, run.results
    assert [r["item"] for r in run.task(TASK)["results"]] == ["billing"]


def test_nothing_to_back_up_is_refused(playbook, tmp_path):
    run = playbook(BACKUP, check=True, inventory=inventory(), extravars={"postgres_backup_dir": str(tmp_path)})
    assert run.failed(HOST) == 1
    assert run.changed(HOST) == 0
    assert "pass -e database=<name>" in run.task("Require at least one database to back up")["msg"]


def test_missing_backup_dir_named(playbook, tmp_path):
    missing = tmp_path / "nope"
    extravars = {"database": "app", "postgres_backup_dir": str(missing)}
    run = playbook(BACKUP, check=True, inventory=inventory(), extravars=extravars)
    assert run.failed(HOST) == 1
    assert str(missing) in run.task(TASK)["results"][0]["msg"]
