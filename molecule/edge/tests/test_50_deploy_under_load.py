"""A deploy of the sample app across both api hosts (serial 1) while a bounded keep-alive load runs through the
edge from edge-api2: no request fails, and the edge serves from both hosts before, during and after. The load runs
from deploy.yml's staging play (every idle colour restarts there) through its colour-by-colour play (every switch
happens there): it starts at the staging play's header and stops at the workers play's."""

import base64
import json
import os
import subprocess
import time

from conftest import CA, EDGE, SCENARIO, app_state, burst, curl, playbook_argv, release

LOAD = "/tmp/edge_load.py"
OUT = "/tmp/edge-load.json"
STOP = "/tmp/edge-load.stop"
SERIAL_PLAY = "PLAY [Stage the release on every api host at once (idle colours started, nothing switched)]"
NEXT_PLAY = "PLAY [Restart the workers onto the new release]"
# A light load (20 requests/s over 4 keep-alive connections), stopped by the stop file at the end of the serial
# play. Hard cap 300 s: on a busy 2-core machine that play takes minutes for two hosts.
LOAD_ARGS = "--seconds 300 --rate 20 --clients 4"


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
    script = base64.b64encode((SCENARIO / "files" / "edge_load.py").read_bytes()).decode()
    assert client.run("echo %s | base64 -d > %s", script, LOAD).rc == 0
    argv = playbook_argv("deploy.yml", "-e", f"release_archive={release('1.0.1')}", "-e", "deploy_serial=1")
    deploy = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    lines, load_started, serial_started, serial_seconds = [], False, None, None
    for line in deploy.stdout:
        lines.append(line)
        if SERIAL_PLAY in line and not load_started:
            start = client.run(
                f"systemd-run --collect --unit=edge-load /usr/bin/python3 %s --address %s --host edge.test "
                f"--cafile %s {LOAD_ARGS} --stop-file %s --out %s",
                LOAD,
                EDGE,
                CA,
                STOP,
                OUT,
            )
            assert start.rc == 0, start.stderr
            load_started, serial_started = True, time.monotonic()
        elif NEXT_PLAY in line and load_started and serial_seconds is None:
            client.run("touch %s", STOP)
            serial_seconds = time.monotonic() - serial_started
    rc = deploy.wait()
    out = "".join(lines)
    client.run("touch %s", STOP)
    assert load_started and serial_seconds is not None, out[-3000:]
    wait_inactive(client, "edge-load")
    assert rc == 0, out[-3000:]
    result = json.loads(client.file(OUT).content_string)
    print(f"\n---- deploy.yml's staging and serial plays, 2 api hosts: {serial_seconds:.0f} s; load: {result}")
    assert result["stopped_by"] == "stop-file", f"the load ended before the deploy's switches did: {result}"
    assert result["total"] >= 10 * serial_seconds, result
    assert result["failed"] == 0, result
    assert set(result["hosts"]) == {"edge-api1", "edge-api2"}, result
    # Each host served its old colour and then its new one while the load ran: both switches happened under it.
    assert set(result["served"]) == {f"{h}/{c}" for h in ("edge-api1", "edge-api2") for c in ("blue", "green")}, result
    assert hosts_serving(client) == {"edge-api1", "edge-api2"}
    assert {curl(client, "/")[1]["x-app-version"] for _n in range(6)} == {"1.0.1"}
    # The second app on edge-api1 was not touched by the sample app's deploy.
    assert app_state(api1, "other") == other_before
    assert burst(hosts("edge-proxy"), "/other/x", 1) == [(404, "")]
