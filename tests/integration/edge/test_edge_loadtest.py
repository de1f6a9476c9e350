"""loadtest.yml's rate-limit stage against the edge, as the local inventory aims it.

The local inventory sends the stage to the edge's limited route (loadtest_rate_limit: url, path, rps and burst of
that route's rate_limit); the first test holds the two in step. The second renders the local inventory's routes
with the edge role into a throwaway nginx on free loopback ports (local CA; the route's limit scaled down to
10 per second, burst 5, so a 2-core CI machine can go over it at 40 rps) and runs loadtest.yml's stage against
it, verifying HTTPS with the CA: the excess must be refused with 429 and Retry-After, and no more than the limit
get through.
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from edge_stack import REPO_ROOT, Backend, Edge, failure_messages, role_play, run_playbook

LOCAL = REPO_ROOT / "inventories" / "local" / "group_vars" / "all"
PLAYBOOK = str(REPO_ROOT / "playbooks" / "loadtest.yml")
SCALED = {"window": 1, "max": 10, "burst": 5}


def local_settings():
    routes = yaml.safe_load((LOCAL / "edge.yml").read_text())["stackops_edge_routes"]
    main = yaml.safe_load((LOCAL / "main.yml").read_text())
    return routes, main["loadtest_rate_limit"]


def limited_route(routes, rate_limit):
    (route,) = [r for r in routes if r.get("path_prefix", "/") == rate_limit["path"]]
    return route


def stage_limit(limit):
    """What loadtest_rate_limit says about a route's rate_limit: rps and burst as the edge role applies them."""
    return {"rps": limit["max"] / limit["window"], "burst": limit.get("burst", limit["max"] - 1)}


def test_local_rate_limit_stage_matches_the_edge_route():
    routes, rate_limit = local_settings()
    limit = limited_route(routes, rate_limit)["rate_limit"]
    assert {k: rate_limit[k] for k in ("rps", "burst")} == stage_limit(limit)
    assert rate_limit["stage_rps"] > rate_limit["rps"]
    # The edge's published HTTPS port (containers.yml), not the app's own nginx.
    assert rate_limit["url"] == "https://127.0.0.1:8443"


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    routes, rate_limit = local_settings()
    backend = Backend("sample")
    stack = Edge(tmp_path_factory.mktemp("edge-loadtest"))
    apps = []
    for route in routes:
        app = {k: v for k, v in route.items() if k not in ("hosts", "nginx_port")} | {"backends": [backend.address]}
        if route is limited_route(routes, rate_limit):
            app["rate_limit"] = SCALED
        apps.append(app)
    stack.vars = stack.role_vars(apps)
    run = run_playbook(role_play(stack.vars), tmp_path_factory.mktemp("edge-loadtest-runner"))
    assert run.failed() == 0, failure_messages(run)
    stack.start()
    yield stack
    stack.stop()
    backend.stop()


def test_rate_limit_stage_reports_429_with_retry_after(edge, tmp_path):
    _routes, local = local_settings()
    url = f"https://127.0.0.1:{edge.https_port}"
    rate_limit = {**local, **stage_limit(SCALED), "url": url, "stage_rps": 40, "duration": 6}
    result = tmp_path / "result.json"
    run = run_playbook(
        PLAYBOOK,
        tmp_path / "runner",
        inventory=f"[monitoring]\n[local]\nlocalhost ansible_python_interpreter={sys.executable}\n",
        extravars={
            # The load stage goes to the app's own nginx in the local inventory; here to the backend directly.
            "loadtest_url": f"http://{edge.vars['edge_apps'][0]['backends'][0]}",
            "loadtest_stages": [{"rps": 10, "duration": 3}],
            "loadtest_rate_limit": rate_limit,
            "loadtest_ca_file": str(edge.ca_cert),
            "loadtest_p95_seconds": 0.3,
            "loadtest_error_ratio": 0.01,
            # A shared 2-core CI machine: accept 80 % of the target rate as reached (the default is 90 %).
            "loadtest_min_rate_ratio": 0.8,
            "loadtest_result": str(result),
        },
    )
    print("\n" + "\n".join(run.task("Show the figures per stage")["msg"]))
    assert run.failed() == 0, failure_messages(run)
    load, limit = json.loads(result.read_text())["stages"]
    assert load["passed"] and load["status_429"] == 0 and load["errors"] == 0, load
    assert limit["kind"] == "rate_limit" and limit["passed"], limit
    assert limit["status_429"] > 0
    assert limit["status_429_retry_after"] == limit["status_429"]
    allowed = rate_limit["rps"] * rate_limit["duration"] * 1.2 + rate_limit["burst"] + 1
    assert limit["requests"] - limit["status_429"] <= allowed
    # The 429s came from the edge: they are in the route's access log (what the edge's mtail counts).
    log = (edge.prefix / "logs" / f"edge-{edge.vars['edge_apps'][0]['name']}.access.log").read_text()
    assert '" 429 ' in log
