"""playbooks/service.yml refuses bad input and an unconfirmed stop of the serving colour before touching any unit.

Two api hosts over the local connection, each with a deploy root in tmp and a blue_green state file: rel-a
serves blue, rel-b serves green. This machine runs no systemd, so every test here must stop before a unit is
touched; the units themselves are driven in the api Molecule scenario (molecule/api/tests/test_service.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SERVICE = str(Path(__file__).resolve().parents[3] / "playbooks" / "service.yml")
CHECK = "Check the action, colour and services"
REFUSE = "Refuse to stop the colour nginx serves without confirm_stop"
UNIT_TASKS = {"Start the colours that have a release", "Stop the colours", "Read the state of the colours"}
ENV = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"}


@pytest.fixture
def estate(tmp_path):
    lines = ["[api]"]
    for host, active in (("rel-a", "blue"), ("rel-b", "green")):
        root = tmp_path / host
        (root / "colors").mkdir(parents=True)
        (root / "blue_green.json").write_text(json.dumps({"active": active}) + "\n")
        lines.append(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} api_deploy_root={root}"
            f" deploy_state_file={root}/blue_green.json api_app_name=shop"
        )
    return "\n".join(lines) + "\n"


def host_result(run, task, host):
    return next(e for e in reversed(run.results) if e["task"] == task and e["host"] == host)


def unit_tasks_run(run):
    return {e["task"] for e in run.results if e["task"] in UNIT_TASKS and e["event"] != "runner_on_skipped"}


@pytest.mark.parametrize(
    ("extravars", "expected"),
    [
        ({}, "Set -e action=status, start, stop or restart (got nothing)"),
        ({"action": "reload"}, "Set -e action=status, start, stop or restart (got reload)"),
        ({"action": "status", "color": "purple"}, "-e color=blue|green (got purple)"),
        ({"action": "status", "services": "api,postgres"}, "(got api,postgres)"),
    ],
)
def test_bad_input_is_refused_before_anything(estate, playbook, extravars, expected):
    run = playbook(SERVICE, inventory=estate, extravars=dict(extravars, api_env=ENV))
    assert run.failed() == 1
    assert expected in run.task(CHECK)["msg"]
    # The api hosts never started: no settings loaded, no unit touched.
    assert not [e for e in run.results if e["host"] in ("rel-a", "rel-b")]


def test_stop_of_the_serving_colour_needs_confirm_stop_on_every_host(estate, playbook):
    # blue is idle on rel-b but serves on rel-a: rel-a refuses, so rel-b stops nothing either.
    run = playbook(SERVICE, inventory=estate, extravars={"action": "stop", "color": "blue", "api_env": ENV})
    assert run.failed("rel-a") == 1
    assert host_result(run, REFUSE, "rel-b")["event"] == "runner_on_ok"
    msg = host_result(run, REFUSE, "rel-a")["res"]["msg"]
    assert "Stopping shop@blue on rel-a would take shop down" in msg and "-e confirm_stop=shop" in msg, msg
    assert "-e color=green" in msg
    assert unit_tasks_run(run) == set()


def test_wrong_confirmation_is_refused_too(estate, playbook):
    run = playbook(SERVICE, inventory=estate, extravars={"action": "stop", "api_env": ENV, "confirm_stop": "api"})
    assert run.failed("rel-a") == 1 and run.failed("rel-b") == 1
    assert unit_tasks_run(run) == set()


def test_confirmed_stop_goes_on_to_the_units(estate, playbook):
    # With the confirmation the check passes and the stop reaches systemd (absent here, so it fails there).
    run = playbook(SERVICE, inventory=estate, extravars={"action": "stop", "api_env": ENV, "confirm_stop": "shop"})
    assert run.task_status(REFUSE) == "runner_on_ok"
    assert "Stop the colours" in unit_tasks_run(run)


@pytest.mark.parametrize(("extravars", "redis_touched"), [({"color": "blue"}, False), ({}, True)])
def test_a_colour_means_the_api_units_only(playbook, extravars, redis_touched):
    # A redis host only (the api play has no hosts). No systemd here, so reading the unit fails: what matters is
    # whether redis was reached at all.
    inventory = f"[redis]\nrel-r ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    run = playbook(SERVICE, inventory=inventory, extravars=dict(extravars, action="status", api_env=ENV))
    status = host_result(run, "Read the state of redis", "rel-r")["event"]
    assert (status != "runner_on_skipped") is redis_touched, status
