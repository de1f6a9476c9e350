"""A deploy of the sample app across both api hosts (serial 1) while a bounded keep-alive load runs through the
edge from edge-api2: no request fails, and the edge serves from both hosts before, during and after."""

import json
import time

from conftest import CA, EDGE, SCENARIO, app_state, burst, curl, release, run_playbook

LOAD = "/tmp/edge_load.py"
OUT = "/tmp/edge-load.json"
STOP = "/tmp/edge-load.stop"


def hosts_serving(client, count=20):
    seen = set()
    for _n in range(count):
        status, _headers, body = curl(client, "/")
        assert status == 200, body
        seen.add(json.loads(body)["hostname"])
    return seen


def wait_inactive(host, unit, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if host.run("systemctl is-active %s", unit).stdout.strip() not in ("active", "activating"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{unit} still running after {seconds}s")


def test_deploy_across_both_hosts_under_load(hosts):
    client, api1 = hosts("edge-api2"), hosts("edge-api1")
    assert hosts_serving(client) == {"edge-api1", "edge-api2"}
    other_before = app_state(api1, "other")
    client.run("rm -f %s %s", OUT, STOP)
    with open(SCENARIO / "files" / "edge_load.py", encoding="utf-8") as fh:
        assert client.run("cat > %s <<'PY'\n%s\nPY", LOAD, fh.read()).rc == 0
    start = client.run(
        "systemd-run --collect --unit=edge-load /usr/bin/python3 %s --address %s --host edge.test --cafile %s "
        "--seconds 60 --rate 40 --clients 4 --stop-file %s --out %s",
        LOAD,
        EDGE,
        CA,
        STOP,
        OUT,
    )
    assert start.rc == 0, start.stderr
    time.sleep(2)
    rc, out, seconds = run_playbook("deploy.yml", "-e", f"release_archive={release('1.0.1')}", "-e", "deploy_serial=1")
    client.run("touch %s", STOP)
    wait_inactive(client, "edge-load")
    assert rc == 0, out[-3000:]
    result = json.loads(client.file(OUT).content_string)
    print(f"\n---- deploy of 2 api hosts took {seconds:.0f} s; load through the edge: {result}")
    assert result["stopped_by"] == "stop-file", f"the load ended before the deploy did: {result}"
    assert result["total"] >= 20 * seconds, result
    assert result["failed"] == 0, result
    assert set(result["hosts"]) == {"edge-api1", "edge-api2"}, result
    assert hosts_serving(client) == {"edge-api1", "edge-api2"}
    assert {curl(client, "/")[1]["x-app-version"] for _n in range(6)} == {"1.0.1"}
    # The second app on edge-api1 was not touched by the sample app's deploy.
    assert app_state(api1, "other") == other_before
    assert burst(hosts("edge-proxy"), "/other/x", 1) == [(404, "")]
