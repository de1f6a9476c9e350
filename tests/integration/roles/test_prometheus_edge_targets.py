"""The prometheus role's edge job: every edge host with edge_mtail_enabled is a target at its mtail address/port.

The role's defaults and vars are loaded as they are (include_vars) and the generated scrape jobs are printed
for an inventory with two edge hosts, one of them without mtail.
"""

import json
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


PLAY = [
    {
        "name": "derive the scrape jobs",
        "hosts": "mon-1",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Load the defaults",
                "ansible.builtin.include_vars": str(REPO_ROOT / "roles/prometheus/defaults/main.yml"),
            },
            {
                "name": "Load the vars",
                "ansible.builtin.include_vars": str(REPO_ROOT / "roles/prometheus/vars/main.yml"),
            },
            {
                "name": "Show the jobs",
                "ansible.builtin.debug": {"msg": "{{ _prometheus_generated_scrape_configs | to_json }}"},
            },
        ],
    }
]


def inventory(edge_1_vars):
    hosts = {
        "mon-1": {"stackops_private_address": "10.0.1.40"},
        "edge-1": {"stackops_private_address": "10.0.1.5", **edge_1_vars},
        "edge-2": {"stackops_private_address": "10.0.1.6"},
    }
    for h in hosts.values():
        h["ansible_connection"] = "local"
    return yaml.safe_dump(
        {"all": {"hosts": hosts, "children": {"monitoring": {"hosts": {"mon-1": None}},
                                              "edge": {"hosts": {"edge-1": None, "edge-2": None}}}}}
    )  # fmt: skip


def jobs(run):
    for event in run.results:
        if event["task"] == "Show the jobs" and event["event"] == "runner_on_ok":
            return {j["job_name"]: j for j in json.loads(event["res"]["msg"])}
    raise AssertionError("no jobs printed")


def test_edge_job_scrapes_mtail_where_enabled(playbook):
    run = playbook(PLAY, inventory=inventory({"edge_mtail_enabled": True, "edge_mtail_listen_address": "10.0.9.5",
                                              "edge_mtail_port": 9390}))  # fmt: skip
    assert run.rc == 0
    assert jobs(run)["edge"]["static_configs"] == [{"targets": ["10.0.9.5:9390"], "labels": {"host": "edge-1"}}]


def test_edge_job_defaults_to_private_address_and_port_3903(playbook):
    run = playbook(PLAY, inventory=inventory({"edge_mtail_enabled": True}))
    assert run.rc == 0
    assert jobs(run)["edge"]["static_configs"] == [{"targets": ["10.0.1.5:3903"], "labels": {"host": "edge-1"}}]


def test_no_edge_job_without_mtail(playbook):
    run = playbook(PLAY, inventory=inventory({}))
    assert run.rc == 0
    assert "edge" not in jobs(run)
