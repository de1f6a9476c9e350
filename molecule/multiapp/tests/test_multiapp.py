"""Three apps on one host (stackops_apps in molecule.yml), provisioned by site.yml in converge.

The tests run in file order: each app deployed with -e app=<name> (a release version of its own, so an answer
names its app), one app redeployed and rolled back, status.yml read, then the refusals. Around every playbook run
the other apps' `current`, colour links, blue_green state, nginx files and running colour processes are compared:
one app's operation must never move another's.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
RELEASES = PROJECT / "build" / "releases"
APPS = {
    "web": {"root": "/srv/web", "ports": (8101, 8102), "version": "1.0.0", "workers": 1},
    "admin": {"root": "/opt/admin", "ports": (8111, 8112), "version": "2.0.0", "workers": 0},
    "jobs": {"root": "/srv/jobs", "ports": (8121, 8122), "version": "3.0.0", "workers": 2},
}


def server_name(app):
    return f"{app}.multiapp.test"


def run_playbook(name, *extra):
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or "ansible-playbook"
    argv = [ansible_playbook, "-i", inventory, str(PROJECT / "playbooks" / name)]
    for item in extra:
        argv += ["-e", item]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"}, check=False)
    return run.returncode, re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)


def through_nginx(host, app, path="/"):
    """(status, JSON body) of a request to the app's own nginx site (by server_name)."""
    out = host.run("curl -s -m 10 -o /dev/stdout -w '\\n%%{http_code}' -H 'Host: %s' http://127.0.0.1%s",
                   server_name(app), path)
    body, _sep, status = out.stdout.rpartition("\n")
    return int(status or 0), (json.loads(body) if body.startswith("{") else body)


def snapshot(host, app):
    """What a deploy, switch or rollback of another app must leave exactly as it was."""
    root = APPS[app]["root"]
    state = host.file(f"/var/lib/stackops/blue_green/{app}.json")
    links = {}
    for link in ("current", "colors/blue", "colors/green"):
        f = host.file(f"{root}/{link}")
        links[link] = f.linked_to if f.is_symlink else None
    pids = host.run("systemctl show -p MainPID --value %s@blue %s@green", app, app).stdout.split()
    return {
        "links": links,
        "releases": sorted(host.run("ls %s/releases", root).stdout.split()),
        "state": state.content_string if state.exists else None,
        "site": host.file(f"/etc/nginx/sites-available/{app}.conf").sha256sum,
        "upstream": host.file(f"/etc/nginx/conf.d/{app}_upstream.conf").content_string,
        "pids": pids,
    }


def others(host, app):
    return {name: snapshot(host, name) for name in APPS if name != app}


def deploy(app, version):
    return run_playbook("deploy.yml", f"app={app}", f"release_archive={RELEASES}/sample-app-{version}.tar.gz")


@pytest.fixture(autouse=True)
def show_journal_on_failure(host, request):
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(host.run("journalctl --no-pager -n 80").stdout)


def test_site_gave_each_app_its_own_units_ports_root_and_site(host):
    assert host.run("nginx -t").rc == 0
    for app, spec in APPS.items():
        assert host.file(f"/etc/systemd/system/{app}@.service").contains(f"WorkingDirectory={spec['root']}/colors/%i")
        for color, port in zip(("blue", "green"), spec["ports"], strict=True):
            assert host.file(f"/etc/systemd/system/{app}@{color}.service.d/10-listen.conf").contains(f"APP_PORT={port}")
        # The api role's static routing: the site proxies to the app's own $<app>_backend (a colour upstream chosen
        # per request through /var/lib/stackops/routing/<app>), defined in the app's own routing file.
        site = host.file(f"/etc/nginx/sites-enabled/{app}.conf").content_string
        assert f"server_name {server_name(app)};" in site and f"proxy_pass http://${app}_backend;" in site
        routing = host.file(f"/etc/nginx/conf.d/{app}_upstream.conf").content_string
        assert f"upstream {app}_blue" in routing and f"upstream {app}_green" in routing
        assert f"/var/lib/stackops/routing/{app}/" in site + routing
        assert host.file(f"{spec['root']}/shared/.env").mode == 0o600
        assert host.file(f"/etc/systemd/system/{app}-worker@.service").contains(f"{spec['root']}/current")


@pytest.mark.parametrize("app", list(APPS))
def test_deploying_one_app_leaves_the_others_untouched(host, app):
    before = others(host, app)
    rc, output = deploy(app, APPS[app]["version"])
    assert rc == 0, output[-4000:]
    assert others(host, app) == before
    status, body = through_nginx(host, app, "/health")
    assert status == 200 and body["version"] == APPS[app]["version"], body


def test_every_app_answers_on_its_own_site_units_and_ports(host):
    listening = host.run("ss -ltnH").stdout
    for app, spec in APPS.items():
        status, body = through_nginx(host, app)
        assert status == 200 and body["version"] == spec["version"], (app, body)
        color = body["color"]
        assert host.service(f"{app}@{color}").is_running
        port = spec["ports"][0 if color == "blue" else 1]
        assert f"127.0.0.1:{port} " in listening, listening
        # The colour unit runs the app's own release tree.
        assert host.file(f"{spec['root']}/colors/{color}").linked_to.startswith(f"{spec['root']}/releases/")


def test_workers_run_per_app(host):
    for app, spec in APPS.items():
        running = host.run("systemctl list-units --state=active --no-legend --plain '%s-worker@*'", app).stdout
        assert len([line for line in running.splitlines() if ".service" in line]) == spec["workers"], running


def test_redeploy_rollback_and_switch_of_one_app_leave_the_others_untouched(host):
    first = through_nginx(host, "web")[1]["color"]
    second = "blue" if first == "green" else "green"
    before = others(host, "web")
    rc, output = deploy("web", "1.0.1")
    assert rc == 0, output[-4000:]
    status, body = through_nginx(host, "web")
    assert status == 200 and body["version"] == "1.0.1" and body["color"] == second, body
    assert others(host, "web") == before

    rc, output = run_playbook("rollback.yml", "app=web")
    assert rc == 0, output[-4000:]
    status, body = through_nginx(host, "web")
    assert status == 200 and body["version"] == "1.0.0" and body["color"] == first, body
    assert others(host, "web") == before

    rc, output = run_playbook("switch.yml", "app=web", "color=toggle")
    assert rc == 0, output[-4000:]
    status, body = through_nginx(host, "web")
    assert status == 200 and body["version"] == "1.0.1" and body["color"] == second, body
    assert others(host, "web") == before


def test_status_shows_every_app(host):
    serving = {app: through_nginx(host, app)[1]["color"] for app in APPS}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "status.txt"
        rc, output = run_playbook("status.yml", f"status_table_file={table}")
        assert rc == 0, output[-4000:]
        lines = table.read_text().splitlines()
    print("\n".join(lines))
    rows = {line.split()[0]: line for line in lines[1:]}
    for app, spec in APPS.items():
        api = rows[f"api/{app}"]
        assert re.search(rf" yes +colour {serving[app]}, release \d{{8}}T\d{{6}}Z$", api), api
        assert f"http://{server_name(app)}/" in api
        worker = rows[f"worker/{app}"]
        assert re.search(rf" yes +{spec['workers']} of {spec['workers']} running$", worker), worker


def test_unknown_app_is_refused_and_nothing_changes(host):
    before = {app: snapshot(host, app) for app in APPS}
    rc, output = deploy("nope", "1.0.1")
    assert rc != 0
    assert "Unknown app nope. Known apps: admin, jobs, web" in output, output[-3000:]
    assert {app: snapshot(host, app) for app in APPS} == before


def test_two_apps_on_one_port_are_refused_and_nothing_changes(host):
    before = {app: snapshot(host, app) for app in APPS}
    units = host.run("ls /etc/systemd/system").stdout
    clash = {
        "stackops_apps": {
            "web": {"api_ports": {"blue": 8101, "green": 8102}, "api_server_name": server_name("web")},
            "admin": {"api_ports": {"blue": 8111, "green": 8112}, "api_server_name": server_name("admin"),
                      "api_deploy_root": "/opt/admin", "worker_instances": 0},
            "jobs": {"api_ports": {"blue": 8101, "green": 8122}, "api_server_name": server_name("jobs"),
                     "worker_instances": 2},
        }
    }
    rc, output = run_playbook("site.yml", json.dumps(clash))
    assert rc != 0
    assert "apps jobs and web share the colour port 8101" in output, output[-3000:]
    assert {app: snapshot(host, app) for app in APPS} == before
    assert host.run("ls /etc/systemd/system").stdout == units
