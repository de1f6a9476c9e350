"""After failover.yml: the old primary is fenced (stopped, masked, marked) and takes no writes."""

testinfra_hosts = ["ansible://replica-primary"]

SERVICE = "postgresql@15-main"
APP = "molecule-app-password-0123"


def test_cluster_stopped_and_masked(host):
    assert not host.service(SERVICE).is_running
    assert host.run(f"systemctl is-enabled {SERVICE}").stdout.strip() == "masked"


def test_fence_mark_names_the_new_primary(host):
    mark = host.file("/etc/stackops/postgres-fenced")
    assert mark.exists
    assert "new_primary=replica-standby" in mark.content_string


def test_old_primary_refuses_writes_over_the_network(host):
    # From the old primary's own host, over TCP to its private address: nothing answers.
    res = host.run(
        "env PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -XAtq -h 172.30.61.11 -U app -d app -c %s",
        APP,
        "INSERT INTO failover_probe (id) VALUES (-1)",
    )
    assert res.rc != 0
    assert "Connection refused" in res.stderr or "could not connect" in res.stderr, res.stderr
