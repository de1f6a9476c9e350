"""site.yml run again through ansible-runner's Python API changes nothing on any host.

Molecule's idempotence step already ran converge (site.yml) twice; this is the runner-based
proof the environments issue asks for, read from the run's per-host stats.
"""

import os
from pathlib import Path

import ansible_runner
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
CHANGE_EVENTS = ("runner_on_ok", "runner_item_on_ok")


def test_site_second_run_changes_nothing(tmp_path):
    inventory_dir = str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    extravars = yaml.safe_load((SCENARIO / "vars" / "test.yml").read_text())
    env = {k: v for k, v in os.environ.items() if k.startswith(("ANSIBLE_", "MOLECULE_"))}
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path),
        playbook=str(PROJECT / "playbooks" / "site.yml"),
        inventory=inventory_dir,
        extravars=extravars,
        envvars=env,
        quiet=True,
    )
    stats = runner.stats or {}
    hosts = set(stats.get("ok", {}))
    assert {"fullstack-db", "fullstack-cache", "fullstack-app", "fullstack-mon"} <= hosts, stats
    assert runner.rc == 0, stats
    assert not stats.get("failures") and not stats.get("dark"), stats
    changed = {host: count for host, count in stats.get("changed", {}).items() if count}
    # Name what changed (host, task, item) so a failure says where to look.
    changed_tasks = sorted(
        {
            (data.get("host"), data.get("task"), str(data.get("res", {}).get("item", "")))
            for data in (e.get("event_data", {}) for e in runner.events if e.get("event") in CHANGE_EVENTS)
            if data.get("res", {}).get("changed")
        }
    )
    assert changed == {}, (changed, changed_tasks)
