"""Each host name / path reaches its app (the app's X-App-Version names the release, so the app); deploying or
rolling back the second app leaves the sample app's release and colour untouched on both api hosts."""

from conftest import app_state, curl, release, run_playbook


def served_version(client, path, name="edge.test"):
    status, headers, body = curl(client, path, name=name)
    return status, headers.get("x-app-version"), body


def sample_states(hosts):
    return {name: app_state(hosts(name), "sample") for name in ("edge-api1", "edge-api2")}


def test_routes(hosts):
    client = hosts("edge-proxy")
    assert served_version(client, "/")[:2] == (200, "1.0.0")
    assert served_version(client, "/health")[:2] == (200, "1.0.0")
    # /other and below go to the second app (the app itself has no /other routes: 404 with its version).
    assert served_version(client, "/other")[:2] == (404, "9.0.0")
    assert served_version(client, "/other/health")[:2] == (404, "9.0.0")
    assert served_version(client, "/other/health", name="other.edge.test")[:2] == (404, "9.0.0")
    # A prefix is a path segment: /otherwise is the sample app's.
    assert served_version(client, "/otherwise")[:2] == (404, "1.0.0")
    # other.edge.test has no app at /: the edge answers 404 itself.
    status, version, _body = served_version(client, "/", name="other.edge.test")
    assert (status, version) == (404, None)


def test_deploy_and_rollback_one_app_leave_the_other_alone(hosts):
    api1, client = hosts("edge-api1"), hosts("edge-proxy")
    before = sample_states(hosts)
    other_before = app_state(api1, "other")
    rc, out, _seconds = run_playbook("deploy.yml", "-e", f"release_archive={release('9.0.1')}", app_vars=True)
    assert rc == 0, out[-3000:]
    other_after = app_state(api1, "other")
    assert other_after[1] != other_before[1], (other_before, other_after)
    assert served_version(client, "/other/x")[1] == "9.0.1"
    assert sample_states(hosts) == before
    assert served_version(client, "/")[1] == "1.0.0"

    rc, out, _seconds = run_playbook("rollback.yml", app_vars=True)
    assert rc == 0, out[-3000:]
    assert app_state(api1, "other") == other_before
    assert served_version(client, "/other/x")[1] == "9.0.0"
    assert sample_states(hosts) == before
