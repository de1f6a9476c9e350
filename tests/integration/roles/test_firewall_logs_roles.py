"""stackops.platform.firewall and .logs: bad input is refused by name before anything changes, and
the firewall derives who may reach what from the inventory, in both layouts (edge group or none)."""

import json

import pytest
import yaml
from role_helpers import failure_messages, role_play


@pytest.mark.parametrize(
    ("role_vars", "named"),
    [
        ({"firewall_ssh_sources": ["10.0.0.0/33"]}, "10.0.0.0/33"),
        ({"firewall_ssh_sources": ["not-a-cidr"]}, "not-a-cidr"),
        ({"firewall_ssh_sources": ["256.1.1.1"]}, "256.1.1.1"),
        ({"firewall_extra_services": [{"name": "web", "hosts_group": "all", "ports": [70000]}]}, "web: port 70000"),
        ({"firewall_extra_services": [{"name": "web", "hosts_group": "all", "ports": [0]}]}, "web: port 0"),
        ({"firewall_extra_services": [{"name": "web", "hosts_group": "all", "ports": ["http"]}]}, "web: port http"),
        (
            {
                "firewall_extra_services": [
                    {"name": "web", "hosts_group": "all", "ports": [80], "sources": ["10.1.2.0/40"]}
                ]
            },
            "web: source 10.1.2.0/40",
        ),
        (
            {"firewall_extra_services": [{"name": "web", "hosts_group": "all", "ports": [80], "protocol": "sctp"}]},
            "sctp",
        ),
        ({"firewall_extra_rules": ["tcp dport 1 accept; flush ruleset"]}, "flush ruleset"),
        ({"firewall_rollback_timeout": 20, "firewall_confirm_timeout": 20}, "firewall_rollback_timeout=20"),
        ({"firewall_ssh_port": 70000}, "firewall_ssh_port=70000"),
        ({"firewall_table_name": "bad-name"}, "bad-name"),
    ],
)
def test_firewall_bad_input_named_and_nothing_changed(playbook, role_vars, named):
    run = playbook(role_play("firewall", role_vars))
    assert run.failed() == 1
    assert run.changed() == 0
    assert named in failure_messages(run)


def test_firewall_host_without_address_is_named(playbook):
    inventory = "localhost ansible_connection=local\n[app]\napp-9.example.internal\n"
    plays = role_play("firewall", {})
    run = playbook(plays, inventory=inventory, limit="localhost")
    assert run.failed() == 1
    assert run.changed() == 0
    assert "app-9.example.internal" in failure_messages(run)


@pytest.mark.parametrize(
    ("role_vars", "named"),
    [
        ({"logs_nginx_rotate": 0}, "logs_nginx_rotate=0"),
        ({"logs_nginx_maxsize": "lots"}, "lots"),
        ({"logs_journald_system_max_use": "1 gigabyte"}, "1 gigabyte"),
        ({"logs_journald_max_retention_sec": "forever"}, "forever"),
        ({"logs_app_files": [{"name": "api", "paths": ["relative/app.log"]}]}, "api: paths"),
        (
            {"logs_app_files": [{"name": "api", "paths": ["/srv/api/shared/log/*.log"], "reopen": "signal"}]},
            "without units",
        ),
        (
            {"logs_app_files": [{"name": "api", "paths": ["/a.log"], "reopen": "copytruncate", "maxsize": "big"}]},
            "api: maxsize big",
        ),
    ],
)
def test_logs_bad_input_named_and_nothing_changed(playbook, role_vars, named):
    run = playbook(role_play("logs", role_vars))
    assert run.failed() == 1
    assert run.changed() == 0
    assert named in failure_messages(run)


# Production-like estate: two api hosts; with_edge adds an edge group in front of them.
def estate(with_edge):
    hosts = {
        "db-1": ("10.0.1.10", ["postgres"]),
        "cache-1": ("10.0.1.20", ["redis"]),
        "app-1": ("10.0.1.31", ["api", "worker"]),
        "app-2": ("10.0.1.32", ["api", "worker"]),
        "mon-1": ("10.0.1.40", ["monitoring"]),
    }
    if with_edge:
        hosts["edge-1"] = ("10.0.1.5", ["edge"])
    children = {}
    for name, (_addr, groups) in hosts.items():
        for group in groups:
            children.setdefault(group, {"hosts": {}})["hosts"][name] = None
    app = {"children": {"api": children.pop("api"), "worker": children.pop("worker")}}
    inv = {
        "all": {
            "hosts": {
                n: {"stackops_private_address": a, "ansible_connection": "local"} for n, (a, _g) in hosts.items()
            },
            "children": {**children, "app": app},
            "vars": {"postgres_port": 6432, "api_ports": {"blue": 9001, "green": 9002}},
        }
    }
    return yaml.safe_dump(inv)


PLAN_PLAY = [
    {
        "name": "derive the rules",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Load the role's checks and computed rules",
                "ansible.builtin.include_role": {
                    "name": "stackops.platform.firewall",
                    "tasks_from": "preflight.yml",
                    "public": True,
                },
            },
            {"name": "Show the plan", "ansible.builtin.debug": {"msg": "{{ _firewall_host_services | to_json }}"}},
        ],
    }
]


def plan(run):
    out = {}
    for event in run.results:
        if event["task"] == "Show the plan" and event["event"] == "runner_on_ok":
            out[event["host"]] = {s["name"]: s for s in json.loads(event["res"]["msg"])}
    return out


def test_rules_without_edge_group_api_hosts_are_the_edge(playbook):
    run = playbook(PLAN_PLAY, inventory=estate(with_edge=False))
    assert run.rc == 0
    rules = plan(run)
    # postgres (port from the inventory's postgres_port) only from the app hosts
    assert rules["db-1"]["postgres"]["ports"] == [6432]
    assert rules["db-1"]["postgres"]["v4"] == ["10.0.1.31", "10.0.1.32"]
    assert rules["cache-1"]["redis"]["v4"] == ["10.0.1.31", "10.0.1.32"]
    assert rules["db-1"]["postgres-exporter"]["v4"] == ["10.0.1.40"]
    assert "postgres" not in rules["cache-1"] and "redis" not in rules["db-1"]
    # api colours (from api_ports) only from monitoring; 80/443 from anywhere on the api hosts
    assert rules["app-1"]["api-colours"]["ports"] == [9001, 9002]
    assert rules["app-1"]["api-colours"]["v4"] == ["10.0.1.40"]
    assert rules["app-2"]["edge"]["ports"] == [80, 443]
    assert rules["app-2"]["edge"]["v4"] == ["0.0.0.0/0"] and rules["app-2"]["edge"]["v6"] == ["::/0"]
    assert "edge" not in rules["db-1"] and "edge" not in rules["mon-1"]
    assert "api-nginx-behind-edge" not in rules["app-1"]
    # every host: node exporter only from monitoring
    assert all(r["node-exporter"]["v4"] == ["10.0.1.40"] for r in rules.values())


def test_rules_with_edge_group_only_the_edge_is_public(playbook):
    run = playbook(PLAN_PLAY, inventory=estate(with_edge=True))
    assert run.rc == 0
    rules = plan(run)
    assert rules["edge-1"]["edge"]["ports"] == [80, 443]
    assert rules["edge-1"]["edge"]["v4"] == ["0.0.0.0/0"]
    assert "edge" not in rules["app-1"]
    # the api hosts' nginx and colours only from the edge (colours also from monitoring)
    assert rules["app-1"]["api-nginx-behind-edge"]["ports"] == [80]
    assert rules["app-1"]["api-nginx-behind-edge"]["v4"] == ["10.0.1.5"]
    assert rules["app-1"]["api-colours"]["v4"] == ["10.0.1.40", "10.0.1.5"]


def test_rules_edge_mtail_only_from_monitoring_when_enabled(playbook):
    inv = yaml.safe_load(estate(with_edge=True))
    inv["all"]["hosts"]["edge-1"].update({"edge_mtail_enabled": True, "edge_mtail_port": 9390})
    run = playbook(PLAN_PLAY, inventory=yaml.safe_dump(inv))
    assert run.rc == 0
    rules = plan(run)
    assert rules["edge-1"]["edge-mtail"]["ports"] == [9390]
    assert rules["edge-1"]["edge-mtail"]["v4"] == ["10.0.1.40"]
    assert not rules["edge-1"]["edge-mtail"]["v6"]
    assert all("edge-mtail" not in rules[h] for h in rules if h != "edge-1")


def test_rules_edge_mtail_closed_when_disabled(playbook):
    run = playbook(PLAN_PLAY, inventory=estate(with_edge=True))
    assert run.rc == 0
    assert all("edge-mtail" not in r for r in plan(run).values())
