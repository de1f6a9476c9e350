"""The edge's exporter: after 200, 404 and 5xx answers through the edge, mtail on the edge counts them per app and
status class; its port is bound to the edge's private address and closed to hosts outside the monitoring group
(this scenario has none). Runs last: it stops edge-api1's nginx for a moment to make the edge answer 502."""

import re

from conftest import EDGE, curl

METRICS = f"http://{EDGE}:3903/metrics"


def counters(edge):
    out = edge.run("curl -sS -m 5 %s", METRICS)
    assert out.rc == 0, out.stderr + edge.run("journalctl -u stackops-edge-mtail --no-pager -n 30").stdout
    found = {}
    for app, status_class, value in re.findall(
        r'^edge_http_requests_total\{app="([^"]+)",status_class="(\dxx)"\} (\d+)', out.stdout, re.M
    ):
        found[(app, status_class)] = int(value)
    return found


def test_mtail_counts_the_edge_answers(hosts):
    edge, client, api1 = hosts("edge-proxy"), hosts("edge-api2"), hosts("edge-api1")
    assert edge.service("stackops-edge-mtail").is_running
    before = counters(edge)
    for _n in range(3):
        assert curl(client, "/")[0] == 200
    for _n in range(2):
        assert curl(client, "/otherwise")[0] == 404
    # The second app runs on edge-api1 only: without its nginx the edge has no backend for it and answers 502.
    assert api1.run("systemctl stop nginx").rc == 0
    try:
        assert curl(client, "/other/x")[0] == 502
    finally:
        assert api1.run("systemctl start nginx").rc == 0
    want = {("sample", "2xx"): 3, ("sample", "4xx"): 2, ("other", "5xx"): 1}
    for _try in range(20):
        after = counters(edge)
        grown = {key: after.get(key, 0) - before.get(key, 0) for key in want}
        if grown == want:
            break
        edge.run("sleep 0.5")
    print(f"mtail on the edge, grown by: {grown}")
    assert grown == want


def test_mtail_port_closed_to_non_monitoring_hosts(hosts):
    out = hosts("edge-api2").run("curl -sS -m 3 -o /dev/null -w '%%{http_code}' %s", METRICS)
    assert out.rc != 0, f"the mtail port answered a host outside the monitoring group: {out.stdout}"
