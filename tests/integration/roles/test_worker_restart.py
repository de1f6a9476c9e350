"""The worker role's restart entry point (deploy.yml and rollback.yml): parallel by default, one systemctl restart
for every configured worker (site.yml enables them at boot, before the first release too); a bad
worker_restart_strategy is refused before anything restarts.

systemctl is a STANDIN on PATH that records its arguments (this machine runs no systemd).
"""

import os

import pytest
from role_helpers import failure_messages


def restart_play(role_vars, path):
    return [
        {
            "name": "restart the workers",
            "hosts": "localhost",
            "gather_facts": False,
            "environment": {"PATH": path},
            "tasks": [
                {
                    "name": "Restart the workers",
                    "ansible.builtin.import_role": {"name": "stackops.platform.worker", "tasks_from": "restart.yml"},
                    "vars": role_vars,
                }
            ],
        }
    ]


@pytest.fixture
def systemctl(tmp_path):
    """A STANDIN systemctl first on PATH; returns (PATH value, file of recorded calls)."""
    bindir = tmp_path / "STANDIN-bin"
    bindir.mkdir()
    calls = tmp_path / "systemctl-calls"
    stub = bindir / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    return f"{bindir}:{os.environ['PATH']}", calls


def test_parallel_restart_is_one_systemctl_call_for_every_worker(playbook, systemctl):
    path, calls = systemctl
    run = playbook(restart_play({"worker_app_name": "shop", "worker_instances": 3}, path))
    assert run.failed() == 0, failure_messages(run)
    # One call, no enable: site.yml enabled them (the unit's ConditionPathExists waits for a release).
    units = "shop-worker@1.service shop-worker@2.service shop-worker@3.service"
    assert calls.read_text().splitlines() == [f"restart -- {units}"]


def test_rolling_restart_is_one_systemctl_call_per_worker_in_order(playbook, systemctl):
    path, calls = systemctl
    run = playbook(
        restart_play({"worker_app_name": "shop", "worker_instances": 3, "worker_restart_strategy": "rolling"}, path)
    )
    assert run.failed() == 0, failure_messages(run)
    assert calls.read_text().splitlines() == [f"restart -- shop-worker@{i}.service" for i in (1, 2, 3)]


def test_no_worker_no_call(playbook, systemctl):
    path, calls = systemctl
    run = playbook(restart_play({"worker_instances": 0}, path))
    assert run.failed() == 0, failure_messages(run)
    assert not calls.exists()


def test_bad_strategy_is_refused_before_any_restart(playbook, systemctl):
    path, calls = systemctl
    run = playbook(restart_play({"worker_restart_strategy": "sometimes"}, path))
    assert run.failed() == 1 and run.changed() == 0
    messages = failure_messages(run)
    assert "worker_restart_strategy" in messages and "sometimes" in messages, messages
    assert not calls.exists()
