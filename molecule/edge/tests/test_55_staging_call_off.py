"""A release that fails staging on one api host is refused on both before any traffic moves.

deploy.yml stages (builds, runs the build hooks, starts the idle colour of) every api host at once. Here the build
hook fails on edge-api2 only (deploy_build_commands templated per host), while edge-api1 starts the release in its
idle colour. No failure is allowed, so the rollout is called off: edge-api1 puts its idle colour back on the release
it ran before and restarts it (still a quick rollback target), nothing is switched, `current` stays, and both audit
logs record the failed deploy.
"""

import json
import re

from conftest import app_state, release, run_playbook

APP = "sample"
HOSTS = ("edge-api1", "edge-api2")
RELEASE_ID = "20990101T000000Z"


def colour_links(host):
    return {c: host.run("readlink /srv/%s/colors/%s", APP, c).stdout.strip() for c in ("blue", "green")}


def last_audit(host):
    lines = host.run("tail -n 1 /srv/%s/audit.jsonl", APP).stdout.strip()
    return json.loads(lines)


def test_a_release_failing_staging_on_one_host_is_called_off_on_both(hosts):
    before = {name: (app_state(hosts(name), APP), colour_links(hosts(name))) for name in HOSTS}
    hook = '{{ ["exit 3"] if inventory_hostname == "edge-api2" else [] }}'
    rc, out, _seconds = run_playbook(
        "deploy.yml",
        "-e",
        f"release_archive={release('1.0.0')}",
        "-e",
        f"release_id={RELEASE_ID}",
        "-e",
        json.dumps({"deploy_build_commands": hook, "deploy_max_fail_percentage": 0}),
    )
    assert rc != 0, out[-3000:]
    assert "the rollout is called off because staging failed on edge-api2" in out, out[-4000:]
    # edge-api1 did start the release in its idle colour before the call-off.
    restart = out.split("Restart and health-check (failing at once if its unit dies)")[1].split("TASK [")[0]
    assert re.search(r"(ok|changed): \[edge-api1\]", restart), restart
    assert "TASK [Switch nginx to the colour" not in out, out[-4000:]
    for name in HOSTS:
        host = hosts(name)
        (current, active), links = before[name]
        assert app_state(host, APP) == (current, active), name
        assert colour_links(host) == links, name
        idle = "green" if active == "blue" else "blue"
        # The idle colour runs its previous release again: a rollback right now would still only switch.
        assert host.run("systemctl is-active %s@%s", APP, idle).stdout.strip() == "active", name
        entry = last_audit(host)
        assert (entry["event"], entry["result"], entry["release"]) == ("deploy", "failed", RELEASE_ID), entry
    assert "called off" in last_audit(hosts("edge-api1"))["message"]
    # The failed release never counts towards keep_releases (edge-api2 removed its half-built one).
    meta = json.loads(hosts("edge-api1").file(f"/srv/{APP}/releases/{RELEASE_ID}/.release-meta").content_string)
    assert meta["status"] == "failed", meta
    assert not hosts("edge-api2").file(f"/srv/{APP}/releases/{RELEASE_ID}").exists
