"""Several apps per host (stackops_apps, playbooks/tasks/app_select.yml) on the controller.

What the runs need no systemd for: each app's settings (app entry over inventory over role default, nothing of one
app left over for the next), the refusals before anything changes (unknown app, several apps without -e app, an
app on none of the hosts, two apps that would collide), and status.yml's row per app. Deploying, rolling back and
serving three apps side by side with real units and nginx is the Molecule scenario `multiapp`.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO_ROOT / "playbooks"
APP_SELECT = str(PLAYBOOKS / "tasks" / "app_select.yml")
HOST = "apps-test-host"
KNOWN = "Check the requested app is known (and runs on a host of this run)"
CLASH = "Refuse two apps of this host that would collide"
ENV = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"}


def inventory(apps: dict | None, **inventory_vars) -> dict:
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    all_vars = dict(inventory_vars)
    if apps is not None:
        all_vars["stackops_apps"] = apps
    return {
        "all": {
            "vars": all_vars,
            "children": {"api": {"hosts": {HOST: host}}, "worker": {"hosts": {HOST: {}}}},
        }
    }


def three_apps(tmp_path: Path) -> dict:
    return {
        "web": {"api_ports": {"blue": 9001, "green": 9002}, "api_server_name": "web.test",
                "api_nginx_client_max_body_size": "10m", "api_deploy_root": str(tmp_path / "web")},
        "admin": {"api_ports": {"blue": 9011, "green": 9012}, "api_server_name": "admin.test",
                  "api_user": "svc-admin", "api_deploy_root": str(tmp_path / "admin"), "worker_instances": 0},
        "jobs": {"api_server_name": "jobs.test", "worker_instances": 3, "api_deploy_root": str(tmp_path / "jobs")},
    }


def failure(run) -> str:
    return " ".join(str(e["res"].get("msg", "")) for e in run.results if e["event"] == "runner_on_failed")


def archive(tmp_path: Path) -> str:
    src = tmp_path / "build" / "sample-app-2.0.0"
    src.mkdir(parents=True)
    (src / "VERSION").write_text("2.0.0\n")
    path = tmp_path / "sample-app-2.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="sample-app-2.0.0")
    return str(path)


def test_each_app_gets_its_entry_then_the_inventory_then_the_role_default(playbook, tmp_path):
    # Every app is selected in turn on one host, the way site.yml and status.yml loop; each records what it sees.
    each = tmp_path / "each.yml"
    each.write_text(
        f"- ansible.builtin.include_tasks: {APP_SELECT}\n"
        "  vars: {__app_select_to: '{{ item }}'}\n"
        "- ansible.builtin.set_fact:\n"
        "    seen: \"{{ seen | default({}) | combine({item: {'ports': api_ports, 'root': api_deploy_root,"
        " 'user': api_user, 'group': api_group, 'body': api_nginx_client_max_body_size,"
        " 'workers': worker_instances, 'worker_root': worker_deploy_root, 'worker_user': worker_user,"
        " 'upstream': api_nginx_upstream_file, 'unit': api_app_name, 'worker_unit': worker_app_name}}) }}\"\n"
    )
    plays = [{
        "hosts": "api", "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_tasks": APP_SELECT, "vars": {"__app_select_list": True}},
            {"ansible.builtin.include_tasks": str(each), "loop": "{{ __app_select_api_apps }}"},
        ],
    }]
    run = playbook(plays, inventory=inventory(
        three_apps(tmp_path), api_ports={"blue": 7001, "green": 7002}, api_nginx_client_max_body_size="5m"))
    assert run.failed(HOST) == 0, failure(run)
    seen = [e for e in run.results if e["task"] == "ansible.builtin.set_fact"][-1]["res"]["ansible_facts"]["seen"]
    # Sorted order admin, jobs, web: admin's api_user and worker_instances must not leak into jobs.
    assert seen["admin"] == {
        "ports": {"blue": 9011, "green": 9012}, "root": str(tmp_path / "admin"), "user": "svc-admin",
        "group": "svc-admin", "body": "5m", "workers": 0, "worker_root": str(tmp_path / "admin"),
        "worker_user": "svc-admin", "upstream": "/etc/nginx/conf.d/admin_upstream.conf", "unit": "admin",
        "worker_unit": "admin",
    }
    assert seen["jobs"] == {
        "ports": {"blue": 7001, "green": 7002}, "root": str(tmp_path / "jobs"), "user": "jobs", "group": "jobs",
        "body": "5m", "workers": 3, "worker_root": str(tmp_path / "jobs"), "worker_user": "jobs",
        "upstream": "/etc/nginx/conf.d/jobs_upstream.conf", "unit": "jobs", "worker_unit": "jobs",
    }
    assert seen["web"]["body"] == "10m" and seen["web"]["user"] == "web" and seen["web"]["workers"] == 2
    assert seen["web"]["ports"] == {"blue": 9001, "green": 9002}


@pytest.mark.parametrize("name", ["deploy.yml", "rollback.yml", "switch.yml"])
@pytest.mark.parametrize(("app", "expected"), [
    ("nope", "Unknown app nope. Known apps: admin, jobs, web"),
    (None, "Several apps are defined: name one with -e app=<name>. Known apps: admin, jobs, web"),
])
def test_unknown_or_missing_app_is_refused_before_anything_changes(playbook, tmp_path, name, app, expected):
    extravars = {"color": "green", "release_archive": archive(tmp_path), "release_id": "r2",
                 "deploy_archive_dir": str(tmp_path / "archives")}
    if app:
        extravars["app"] = app
    # rollback.yml and switch.yml in check mode: had the refusal not come, they would not touch this machine's nginx.
    run = playbook(str(PLAYBOOKS / name), inventory=inventory(three_apps(tmp_path), api_env=ENV),
                   extravars=extravars, check=name != "deploy.yml")
    assert run.failed(HOST) == 1
    assert expected in run.task(KNOWN)["msg"]
    assert run.changed(HOST) == 0
    assert not any((tmp_path / a).exists() for a in ("web", "admin", "jobs", "archives"))


def test_without_stackops_apps_an_app_other_than_api_app_name_is_refused(playbook, tmp_path):
    run = playbook(str(PLAYBOOKS / "switch.yml"), inventory=inventory(None, api_app_name="shop"),
                   extravars={"color": "green", "app": "web"}, check=True)
    assert run.failed(HOST) == 1
    assert "Unknown app web. Known apps: shop (stackops_apps is not set" in run.task(KNOWN)["msg"]


def test_an_app_on_none_of_the_hosts_is_refused(playbook, tmp_path):
    apps = three_apps(tmp_path)
    apps["admin"]["hosts"] = "edge"
    run = playbook(str(PLAYBOOKS / "switch.yml"), inventory=inventory(apps, api_env=ENV),
                   extravars={"color": "green", "app": "admin"}, check=True)
    assert run.failed(HOST) == 1
    msg = run.task(KNOWN)["msg"]
    assert "App admin runs on none of the hosts of this run" in msg and "Known apps: admin, jobs, web" in msg
    assert not (tmp_path / "admin").exists()


@pytest.mark.parametrize(("change", "named"), [
    ({"jobs": {"api_ports": {"blue": 9002, "green": 9003}}}, "apps jobs and web share the colour port 9002"),
    ({"jobs": {"api_server_name": "web.test"}},
     "apps jobs and web share the nginx listen and server_name 127.0.0.1:80 web.test"),
    ({"admin": {"api_deploy_root": "WEB"}}, "apps admin and web share the deploy root"),
    ({"jobs": {"api_ports": {"blue": 80, "green": 9003}}}, "port (colour of jobs, nginx of admin) 80"),
    ({"admin": {"worker_deploy_root": "WEB"}}, "apps admin and web share the deploy root"),
])
def test_two_apps_that_collide_are_refused_before_anything_changes(playbook, tmp_path, change, named):
    apps = three_apps(tmp_path)
    for name, values in change.items():
        apps[name].update({k: (str(tmp_path / "web") if v == "WEB" else v) for k, v in values.items()})
    # Check mode and no firewall: had the refusal not come, site.yml would still change nothing on this machine.
    run = playbook(str(PLAYBOOKS / "site.yml"), inventory=inventory(apps, api_env=ENV, firewall_enabled=False),
                   check=True)
    assert run.failed(HOST) == 1
    msg = run.task(CLASH)["msg"]
    assert named in msg and "nothing was changed" in msg, msg
    assert run.changed(HOST) == 0
    # The run stopped at the check: no firewall, data or app play ran.
    assert run.results[-1]["task"] == CLASH
    assert not any(e["task"].startswith("stackops.platform.") for e in run.results)
    assert not any((tmp_path / a).exists() for a in ("web", "admin", "jobs"))


def test_an_api_unit_that_is_another_apps_worker_unit_is_refused(playbook, tmp_path):
    # App "x" runs units x@blue|green and x-worker@N; an app named "x-worker" would run x-worker@blue|green.
    apps = {"x": {"api_ports": {"blue": 9101, "green": 9102}, "api_server_name": "x.test"},
            "x-worker": {"api_ports": {"blue": 9111, "green": 9112}, "api_server_name": "xw.test"}}
    run = playbook(str(PLAYBOOKS / "switch.yml"), inventory=inventory(apps, api_env=ENV),
                   extravars={"color": "green", "app": "x"}, check=True)
    assert run.failed(HOST) == 1
    assert "apps x and x-worker share the unit name x-worker@" in run.task(CLASH)["msg"]


@pytest.mark.parametrize(("apps", "named"), [
    ({"web": {"color": "blue"}}, "web: color (only api_*, worker_*, hosts, worker_hosts)"),
    ({"web": {"api_app_name": "shop"}}, "web: api_app_name=shop (the key names the app)"),
    ({"bad name": {}}, "bad name: not a usable app name"),
    ({"web": "api"}, "web: not a dict"),
])
def test_a_bad_stackops_apps_entry_is_named(playbook, tmp_path, apps, named):
    run = playbook(str(PLAYBOOKS / "switch.yml"), inventory=inventory(apps, api_env=ENV),
                   extravars={"color": "green", "app": "web"}, check=True)
    assert run.failed(HOST) == 1
    assert named in run.task("Check stackops_apps")["msg"]


def test_status_shows_a_row_per_app(playbook, tmp_path):
    apps = three_apps(tmp_path)
    # One release per app, each with its own id: every row must show its own app's.
    build = [{"name": f"Build {name}", "stackops.platform.release": {
        "path": str(tmp_path / name), "src": str(tmp_path / "src"), "release_id": f"r-{name}"}} for name in apps]
    (tmp_path / "src").mkdir()
    run = playbook([{"hosts": "localhost", "gather_facts": False, "tasks": build}])
    assert run.failed() == 0, failure(run)
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=x\n")
    table = tmp_path / "status.txt"
    run = playbook(str(PLAYBOOKS / "status.yml"), inventory=inventory(apps, worker_env_file=str(env_file)),
                   extravars={"status_table_file": str(table)})
    assert run.failed(HOST) == 0 and run.failed() == 0, failure(run)
    lines = table.read_text().splitlines()
    for name in apps:
        api = next(line for line in lines if line.startswith(f"api/{name} "))
        assert f"release r-{name}" in api and f"http://{name}.test/" in api, api
    workers = {line.split()[0]: line for line in lines if line.startswith("worker/")}
    assert sorted(workers) == ["worker/admin", "worker/jobs", "worker/web"]
    assert workers["worker/admin"].endswith("0 of 0 running") and workers["worker/jobs"].endswith("0 of 3 running")
    # -e app shows that app only.
    run = playbook(str(PLAYBOOKS / "status.yml"), inventory=inventory(apps, worker_env_file=str(env_file)),
                   extravars={"status_table_file": str(table), "app": "jobs"})
    assert run.failed(HOST) == 0, failure(run)
    rows = [line.split()[0] for line in table.read_text().splitlines()[1:]]
    assert rows == ["api/jobs", "worker/jobs"]
