"""What the firewall lets through, tried from the other containers (testinfra runs every test on
every host; each case runs on its source host only)."""

import pytest

ADDRESS = {"firewall-db": "172.30.64.11", "firewall-app": "172.30.64.12", "firewall-mon": "172.30.64.13"}

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
    ("firewall-app", "firewall-db", 5432, "open", "postgres from the app host"),
    ("firewall-mon", "firewall-db", 5432, "dropped", "postgres not from the monitoring host"),
    ("firewall-app", "firewall-db", 6379, "open", "redis from the app host"),
    ("firewall-mon", "firewall-db", 6379, "dropped", "redis not from the monitoring host"),
    ("firewall-mon", "firewall-db", 9187, "open", "postgres exporter from the monitoring host"),
    ("firewall-app", "firewall-db", 9187, "dropped", "postgres exporter not from the app host"),
    ("firewall-mon", "firewall-db", 9121, "open", "redis exporter from the monitoring host"),
    ("firewall-app", "firewall-db", 9121, "dropped", "redis exporter not from the app host"),
    ("firewall-mon", "firewall-app", 9100, "open", "node exporter from the monitoring host"),
    ("firewall-db", "firewall-app", 9100, "dropped", "node exporter not from the db host"),
    ("firewall-mon", "firewall-app", 8001, "open", "api colour scraped by the monitoring host"),
    ("firewall-db", "firewall-app", 8001, "dropped", "api colour not from the db host"),
    ("firewall-db", "firewall-app", 80, "open", "edge port 80 from anywhere (api hosts are the edge: no edge group)"),
    ("firewall-app", "firewall-mon", 4317, "open", "traces from the app host"),
    ("firewall-app", "firewall-mon", 9090, "dropped", "Prometheus UI closed (no operator sources)"),
    ("firewall-app", "firewall-db", 22, "open", "ssh"),
    ("firewall-mon", "firewall-db", 22, "open", "ssh"),
    ("firewall-db", "firewall-mon", 22, "open", "ssh"),
    ("firewall-app", "firewall-db", 8443, "dropped", "a port no rule opens"),
]


def name(host):
    return host.ansible.get_variables()["inventory_hostname"]


@pytest.mark.parametrize(
    ("src", "dst", "port", "expected", "why"), CASES, ids=[f"{c[0]}->{c[1]}:{c[2]}" for c in CASES]
)
def test_only_allowed_ports_connect(host, src, dst, port, expected, why):
    if name(host) != src:
        pytest.skip(f"runs on {src}")
    out = host.run("python3 -c %s %s %s", PROBE, ADDRESS[dst], str(port))
    assert out.stdout.strip() == expected, f"{why}: {src} -> {dst}:{port} was {out.stdout.strip()} {out.stderr}"


def test_listener_answers_locally_so_drops_are_the_firewall(host):
    # Loopback is allowed: every listener answers on the host itself, so a "dropped" above is the firewall.
    out = host.run("python3 -c %s %s %s", PROBE, "127.0.0.1", "22")
    assert out.stdout.strip() == "open"


def test_own_table_only_and_default_drop(host):
    tables = host.check_output("nft list tables")
    assert "table inet stackops_filter" in tables
    chain = host.check_output("nft list chain inet stackops_filter input")
    assert "policy drop" in chain
    assert "ct state established,related accept" in chain


def test_ruleset_survives_a_reboot_of_the_unit(host):
    unit = host.service("stackops-firewall")
    assert unit.is_enabled
    before = host.check_output("nft list table inet stackops_filter")
    assert host.run("systemctl restart stackops-firewall").rc == 0
    assert host.check_output("nft list table inet stackops_filter") == before


def test_no_rollback_left_armed(host):
    assert host.run("systemctl status --no-pager stackops-firewall-rollback.timer").rc != 0
