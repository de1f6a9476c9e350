"""The firewall with the inventory's edge settings: the edge host exposes only 80/443 (and SSH); the api host's
nginx and colours are reachable from the edge, its database not; its nginx not from a non-edge host. (The full
port matrix is molecule/firewall's.)"""

import pytest
from conftest import ADDRESS

# A small client: "open" when the connect succeeds, "dropped" on a timeout, "refused" on RST.
PROBE = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(2)\n"
    "try:\n"
    "    s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
    "except socket.timeout:\n"
    "    print('dropped')\n"
    "except ConnectionRefusedError:\n"
    "    print('refused')\n"
)

CASES = [
    # (from, to, port, expected, why)
    ("edge-api2", "edge-proxy", 443, "open", "HTTPS on the edge from anywhere"),
    ("edge-api2", "edge-proxy", 80, "open", "HTTP (redirect) on the edge from anywhere"),
    ("edge-api2", "edge-proxy", 22, "open", "SSH"),
    ("edge-api2", "edge-proxy", 9999, "dropped", "nothing else on the edge (a listener is there)"),
    ("edge-proxy", "edge-api1", 8080, "open", "the sample app's nginx from the edge"),
    ("edge-proxy", "edge-api1", 8081, "open", "the second app's nginx from the edge (firewall_extra_services)"),
    # Only one colour may run: "refused" (the host's RST) also shows the firewall let the SYN through.
    ("edge-proxy", "edge-api1", 8001, "open|refused", "an api colour from the edge"),
    ("edge-api2", "edge-api1", 8001, "dropped", "an api colour not from a non-edge, non-monitoring host"),
    ("edge-proxy", "edge-api1", 5432, "dropped", "postgres not from the edge"),
    ("edge-proxy", "edge-api1", 9999, "dropped", "a port no rule opens"),
    ("edge-api2", "edge-api1", 5432, "open", "postgres from the other app host"),
    ("edge-api2", "edge-api1", 8080, "dropped", "the app's nginx only from the edge"),
    ("edge-api2", "edge-api1", 80, "dropped", "no public port on an api host behind an edge"),
]


@pytest.mark.parametrize(
    ("src", "dst", "port", "expected", "why"), CASES, ids=[f"{c[0]}->{c[1]}:{c[2]}" for c in CASES]
)
def test_only_allowed_ports_connect(hosts, src, dst, port, expected, why):
    out = hosts(src).run("python3 -c %s %s %s", PROBE, ADDRESS[dst], str(port))
    assert out.stdout.strip() in expected.split("|"), (
        f"{why}: {src} -> {dst}:{port} was {out.stdout.strip()} {out.stderr}"
    )


@pytest.mark.parametrize("name", ["edge-proxy", "edge-api1"])
def test_dropped_ports_have_listeners(hosts, name):
    # 9999 answers on the host itself: a "dropped" above is the firewall, not a missing service.
    out = hosts(name).run("python3 -c %s %s %s", PROBE, "127.0.0.1", "9999")
    assert out.stdout.strip() == "open"
