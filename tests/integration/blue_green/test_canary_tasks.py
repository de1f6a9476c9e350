"""playbooks/tasks/canary.yml against a real nginx configured by the api role's templates (symlink routing).

The canary's watch is i12w's playbooks/tasks/watch_color.yml; here a STANDIN watch_color.yml beside the test play
reports a breach at one chosen weight, so the abort path runs for real: every request back to the old colour,
the split link and the nginx files as before the canary, the host failed with the step figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_blue_green_routing import route_by_hand

REPO_ROOT = Path(__file__).resolve().parents[3]
CANARY = REPO_ROOT / "playbooks" / "tasks" / "canary.yml"
FAIL_TASK = "Fail the deploy with the canary's figures"

STANDIN_WATCH = """\
---
- name: STANDIN watch of the new colour (breaches at standin_breach_at percent)
  ansible.builtin.set_fact:
    __deploy_watch:
      color: "{{ __watch_color }}"
      seconds: "{{ __watch_seconds }}"
      requests: 42
      errors_5xx: 0
      error_ratio: 0.0
      p95_ms: 12
      breached: "{{ __canary_weight | int == standin_breach_at | int }}"
      reason: "STANDIN breach at {{ __canary_weight }} %"
"""


@pytest.fixture
def canary_play(routed, tmp_path):
    """Write the play (and the STANDIN watch beside it); return a function giving its path for some settings."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "watch_color.yml").write_text(STANDIN_WATCH)

    def make(steps, breach_at=0):
        play = [
            {
                "name": "canary",
                "hosts": "localhost",
                "gather_facts": False,
                "vars": {
                    "api_app_name": routed.name,
                    "api_nginx_upstream_file": str(routed.routing_file),
                    "api_nginx_upstream_keepalive": 8,
                    "api_health_path": "/health",
                    "_api_routing_dir": str(routed.routing_dir),
                    "__deploy_upstreams": routed.upstreams,
                    "__deploy_state_file": str(routed.state_file),
                    "__deploy_verify_url": routed.url,
                    "__deploy_active": "blue",
                    "__deploy_idle": "green",
                    "__deploy_health_interval": 0.05,
                    "__deploy_healthy_threshold": 1,
                    "deploy_strategy": "canary",
                    "deploy_canary_steps": steps,
                    "deploy_canary_step_seconds": 0,
                    "standin_breach_at": breach_at,
                },
                "tasks": [{"name": "Run the canary", "ansible.builtin.include_tasks": str(CANARY)}],
            }
        ]
        path = tmp_path / "canary.yml"
        path.write_text(json.dumps(play))
        return str(path)

    return make


@pytest.fixture
def routed_blue(routed):
    for backend in routed.backends.values():
        backend.healthy = True
    route_by_hand(routed, "blue")
    routed.wait_served("blue")
    return routed


def test_aborted_canary_leaves_routing_and_nginx_as_before(routed_blue, canary_play, playbook):
    before = (routed_blue.split_target(), routed_blue.nginx_files())
    workers = routed_blue.worker_pids()
    run = playbook(canary_play([10, 50, 100], breach_at=50))
    assert run.failed() == 1
    msg = run.task(FAIL_TASK)["msg"]
    assert "aborted" in msg and "after the steps 10 %" in msg and "breached the guardrails at 50 %" in msg, msg
    assert "STANDIN breach at 50 %" in msg and "requests 42" in msg, msg
    assert "blue serves 100 % again" in msg, msg
    assert (routed_blue.split_target(), routed_blue.nginx_files()) == before
    assert routed_blue.worker_pids() == workers
    assert routed_blue.shares(200) == {"blue": 200}
    state = json.loads(routed_blue.state_file.read_text())
    assert (state["active"], state["canary"], state["routing"]) == ("blue", None, "bbbbbbbbbb")


def test_canary_promotes_after_the_last_step(routed_blue, canary_play, playbook):
    run = playbook(canary_play([20, 100]))
    assert run.failed() == 0, [r for r in run.results if r["event"] == "runner_on_failed"]
    assert routed_blue.split_target() == "sets/gggggggggg"
    assert routed_blue.shares(50) == {"green": 50}
    state = json.loads(routed_blue.state_file.read_text())
    assert (state["active"], state["previous"], state["canary"]) == ("green", "blue", None)


@pytest.mark.parametrize("steps", [[10, 50], [50, 10, 100], [15, 100], []])
def test_bad_canary_steps_are_refused_before_any_switch(routed_blue, canary_play, playbook, steps):
    before = routed_blue.split_target()
    run = playbook(canary_play(steps))
    assert run.failed() == 1
    assert "deploy_canary_steps must be rising percentages" in run.task("Check the canary settings")["msg"]
    assert routed_blue.split_target() == before
