"""playbooks/status.yml counts the workers against the worker role's worker_instances, not a default of its own.

The worker host is localhost (no worker units run here), so the row reads "0 of N running": N must be the
role's default (2) when the inventory says nothing, and the inventory's value when it sets one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
STATUS = str(REPO_ROOT / "playbooks" / "status.yml")
HOST = "status-worker-test"
ROW_TASK = "Record the worker row"


def inventory(extra: str = "") -> str:
    line = f"{HOST} ansible_connection=local ansible_python_interpreter={sys.executable} {extra}".rstrip()
    return f"[worker]\n{line}\n"


def worker_row(run) -> dict:
    rows = run.task(ROW_TASK)["ansible_facts"]["__status_rows"]
    return next(row for row in rows if row["service"] == "worker")


@pytest.mark.parametrize(("extra", "expected"), [("", 2), ("worker_instances=3", 3), ("worker_instances=0", 0)])
def test_worker_count_comes_from_the_worker_role(playbook, tmp_path, extra, expected):
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=x\n")
    table = tmp_path / "status.txt"
    run = playbook(
        STATUS,
        inventory=inventory(f"worker_app_name=statustest worker_env_file={env_file} {extra}"),
        extravars={"status_table_file": str(table)},
    )
    assert run.failed(HOST) == 0, run.results
    row = worker_row(run)
    assert row["detail"] == f"0 of {expected} running"
    # Nothing runs here: healthy only when nothing is expected either.
    assert row["healthy"] is (expected == 0)
    line = next(line for line in table.read_text().splitlines() if line.startswith("worker "))
    assert re.search(rf" {'yes' if expected == 0 else 'NO'} +0 of {expected} running$", line), line


def test_unusable_worker_settings_show_in_the_row(playbook):
    # No environment file and no worker_env: the worker role itself would refuse this host. A short path: the row's
    # detail is cut at 120 characters, and a long temporary path pushed "does not exist" past the cut.
    missing = Path("/nonexistent/env")
    assert not missing.exists()
    run = playbook(STATUS, inventory=inventory(f"worker_app_name=statustest worker_env_file={missing}"))
    assert run.failed(HOST) == 0, run.results
    row = next(r for r in run.task("Record the worker row (settings not usable)")["ansible_facts"]["__status_rows"]
               if r["service"] == "worker")
    assert row["healthy"] is False
    assert "worker settings:" in row["detail"] and "does not exist" in row["detail"], row
