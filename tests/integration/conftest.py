"""Shared fixtures for integration tests: drive playbooks through ansible-runner's Python API.

Every test asserts on runner events (per-host failed/changed counts, per-task results),
never on console text. Tests that need real services (PostgreSQL, nginx) start their own
throwaway instances in their own conftest and stop them afterwards.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PlaybookRun:
    """What one ansible-runner run did, read from its events."""

    rc: int
    status: str
    stats: dict[str, dict[str, int]]
    results: list[dict[str, Any]] = field(default_factory=list)

    def count(self, kind: str, host: str = "localhost") -> int:
        # ansible-runner names failures 'failures' and unreachable hosts 'dark'.
        return int(self.stats.get(kind, {}).get(host, 0))

    def changed(self, host: str = "localhost") -> int:
        return self.count("changed", host)

    def failed(self, host: str = "localhost") -> int:
        return self.count("failures", host) + self.count("dark", host)

    def task(self, name: str) -> dict[str, Any]:
        """The result dict of the last event of a task, by task name."""
        for event in reversed(self.results):
            if event["task"] == name:
                return event["res"]
        raise KeyError(f"no result for task {name!r}; tasks seen: {[e['task'] for e in self.results]}")

    def task_status(self, name: str) -> str:
        for event in reversed(self.results):
            if event["task"] == name:
                return event["event"]
        raise KeyError(name)


def _local_inventory() -> str:
    return f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def run_playbook(
    plays: list[dict[str, Any]] | str,
    private_dir: Path,
    *,
    inventory: str | None = None,
    extravars: dict[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    envvars: dict[str, str] | None = None,
) -> PlaybookRun:
    """Run plays (a list of play dicts, or a playbook path) and collect results per task."""
    private_dir.mkdir(parents=True, exist_ok=True)
    cmdline = []
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    env = {
        "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""),
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    env.update(envvars or {})
    runner = ansible_runner.run(
        private_data_dir=str(private_dir),
        playbook=plays,
        inventory=inventory or _local_inventory(),
        extravars=extravars or {},
        cmdline=" ".join(cmdline) or None,
        limit=limit,
        envvars=env,
        quiet=True,
        rotate_artifacts=1,
    )
    results = []
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event", "").startswith("runner_on_") and "task" in data:
            results.append(
                {"event": event["event"], "task": data["task"], "host": data.get("host"), "res": data.get("res", {})}
            )
    return PlaybookRun(rc=runner.rc, status=runner.status, stats=runner.stats or {}, results=results)


@pytest.fixture
def playbook(tmp_path):
    """Call as playbook(plays, **kwargs); each call gets its own private data dir."""
    counter = {"n": 0}

    def _run(plays, **kwargs):
        counter["n"] += 1
        return run_playbook(plays, tmp_path / f"runner-{counter['n']}", **kwargs)

    return _run
