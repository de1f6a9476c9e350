"""playbooks/maintenance.yml against the running edge: on/off per app or all, refusals before any change."""

from __future__ import annotations

import sys

import pytest
from edge_stack import MAINTENANCE_OPERATOR, REPO_ROOT, failure_messages, run_playbook

PLAYBOOK = str(REPO_ROOT / "playbooks" / "maintenance.yml")


def inventory() -> str:
    return f"[edge]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def maintenance(edge, tmp_path, **extravars):
    settings = {k: edge.vars[k] for k in ("edge_apps", "edge_state_dir", "edge_maintenance_allowlist")}
    return run_playbook(PLAYBOOK, tmp_path / f"runner-{len(list(tmp_path.iterdir()))}", inventory=inventory(),
                        extravars={**settings, **extravars})  # fmt: skip


def shown(run) -> str:
    return run.task("Show which apps are in maintenance")["msg"]


def flags(edge) -> list[str]:
    return sorted(p.name for p in (edge.prefix / "state" / "maintenance").iterdir())


def test_maintenance_on_then_off_for_one_app(edge, tmp_path):
    on = maintenance(edge, tmp_path, app="web", state="on")
    assert on.failed() == 0
    assert on.changed() == 1
    assert shown(on).startswith("maintenance on: web ")
    try:
        answer = edge.request("/", source="127.0.0.50")
        assert answer.status == 503
        assert answer.header("Retry-After") == "120"
        assert edge.request("/api/v1/x", source="127.0.0.50").status == 200
        assert edge.request("/", source=MAINTENANCE_OPERATOR).status == 200
        again = maintenance(edge, tmp_path, app="web", state="on")
        assert again.changed() == 0
    finally:
        off = maintenance(edge, tmp_path, app="web", state="off")
    assert off.failed() == 0
    assert off.changed() == 1
    assert shown(off).startswith("maintenance on: none")
    assert edge.request("/", source="127.0.0.50").status == 200


def test_maintenance_for_all_apps(edge, tmp_path):
    on = maintenance(edge, tmp_path, app="all", state="on")
    try:
        assert on.failed() == 0
        assert flags(edge) == ["ai", "api", "docs", "web"]
        assert edge.request("/ai/x", source="127.0.0.51").status == 503
        assert edge.request("/docs/x", host="docs.localhost", source="127.0.0.51").status == 503
    finally:
        off = maintenance(edge, tmp_path, app="all", state="off")
    assert off.failed() == 0
    assert flags(edge) == []
    assert edge.request("/ai/x", source="127.0.0.51").status == 200


@pytest.mark.parametrize(
    ("extravars", "named"),
    [
        ({"app": "shop", "state": "on"}, 'unknown app "shop"; known apps: web, api, ai, docs or all'),
        ({"app": "web", "state": "paused"}, 'bad state "paused"'),
        ({"state": "on"}, 'unknown app ""'),
        ({"app": "web"}, 'bad state ""'),
    ],
)
def test_bad_app_or_state_is_refused_before_any_change(edge, tmp_path, extravars, named):
    run = maintenance(edge, tmp_path, **extravars)
    assert run.failed() == 1
    assert run.changed() == 0
    message = failure_messages(run)
    assert named in message, message
    assert "Nothing was changed" in message
    assert flags(edge) == []
