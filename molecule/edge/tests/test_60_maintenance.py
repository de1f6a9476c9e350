"""playbooks/maintenance.yml: 503 with Retry-After while on (the allowlisted edge-api1 still reaches the app),
normal service after off; the other app stays up throughout."""

from conftest import curl, run_playbook


def test_maintenance_on_and_off(hosts):
    client, operator, proxy = hosts("edge-api2"), hosts("edge-api1"), hosts("edge-proxy")
    assert curl(client, "/")[0] == 200
    rc, out, _seconds = run_playbook("maintenance.yml", "-e", "app=sample", "-e", "state=on")
    assert rc == 0, out[-3000:]
    try:
        status, headers, body = curl(client, "/items")
        assert status == 503, body
        assert headers["retry-after"] == "120"
        assert "maintenance" in body.lower()
        assert headers["strict-transport-security"].startswith("max-age=")
        assert curl(operator, "/")[0] == 200, "the allowlisted address reaches the app"
        assert curl(proxy, "/other/x")[1].get("x-app-version") == "9.0.0", "the other app is not in maintenance"
    finally:
        rc, out, _seconds = run_playbook("maintenance.yml", "-e", "app=sample", "-e", "state=off")
    assert rc == 0, out[-3000:]
    status, headers, body = curl(client, "/")
    assert status == 200, body
    assert "retry-after" not in headers
