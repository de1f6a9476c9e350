"""playbooks/service.yml against real units: status table, stop/start of the idle colour, a refused stop of the
serving colour, restart of both colours behind nginx, and redis on the redis host.

The scenario's host joins the api and redis groups through a second inventory; the colour nginx serves is read
from the blue_green state file (test_api.py switches to green before this file runs, but nothing here assumes it).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

APP = "api"
SCENARIO_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = SCENARIO_DIR.parent.parent
STATE_FILE = f"/var/lib/stackops/blue_green/{APP}.json"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    work = tmp_path_factory.mktemp("service-inventory")
    groups = work / "groups.ini"
    table = work / "table.txt"
    groups.write_text(f"[api]\n{APP}-instance\n[redis]\n{APP}-instance\n")
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or "ansible-playbook"

    def run(**extravars):
        argv = [ansible_playbook, "-i", os.path.dirname(inventory), "-i", str(groups),
                "-e", f"@{SCENARIO_DIR / 'vars' / 'scenario.yml'}", "-e", f"service_table_file={table}",
                str(REPO_ROOT / "playbooks" / "service.yml")]
        for key, value in extravars.items():
            argv += ["-e", f"{key}={value}"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                              env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"})
        out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
        # The printed table may be folded by the callback: rows are read from the table file.
        text = table.read_text() if proc.returncode == 0 and table.exists() else ""
        table.unlink(missing_ok=True)
        return proc.returncode, out + "\n" + text

    return run


def active(host):
    return json.loads(host.file(STATE_FILE).content_string)["active"]


def row(output, unit):
    """The table row of a unit (from the table file): [unit, state, since..., note]."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[1] == unit:
            return fields[1:]
    raise AssertionError(f"no row for {unit} in:\n{output[-3000:]}")


def nginx_ok(host):
    return host.run("curl -s -o /dev/null -w %{http_code} -m 5 http://127.0.0.1/health").stdout == "200"


def test_status_prints_a_row_per_unit(host, service):
    rc, out = service(action="status")
    assert rc == 0, out[-3000:]
    serving = active(host)
    assert row(out, f"{APP}@{serving}.service")[1] == "active/running"
    assert row(out, f"{APP}@{serving}.service")[-1] == "serves"
    assert row(out, "redis-server.service")[1] == "active/running"


def test_stop_of_the_serving_colour_is_refused(host, service):
    serving = active(host)
    rc, out = service(action="stop", color=serving)
    assert rc != 0 and f"would take {APP} down" in out, out[-3000:]
    assert host.service(f"{APP}@{serving}").is_running and nginx_ok(host)


def test_stop_and_start_the_idle_colour(host, service):
    idle = "blue" if active(host) == "green" else "green"
    rc, out = service(action="stop", color=idle)
    assert rc == 0, out[-3000:]
    assert not host.service(f"{APP}@{idle}").is_running
    assert row(out, f"{APP}@{idle}.service")[1] == "inactive/dead"
    assert "redis-server.service" not in out  # -e color: only the api units
    assert host.service("redis-server").is_running and nginx_ok(host)
    rc, out = service(action="start", color=idle)
    assert rc == 0, out[-3000:]
    assert host.service(f"{APP}@{idle}").is_running and row(out, f"{APP}@{idle}.service")[1] == "active/running"


def test_restart_restarts_both_colours_and_nginx_answers(host, service):
    def started(color):
        return host.run("systemctl show -p ActiveEnterTimestampMonotonic --value %s", f"{APP}@{color}").stdout.strip()

    before = {c: started(c) for c in ("blue", "green")}
    rc, out = service(action="restart", services="api")
    assert rc == 0, out[-3000:]
    assert {c: started(c) for c in ("blue", "green")} != before
    assert all(started(c) != before[c] for c in ("blue", "green"))
    assert nginx_ok(host)
    assert "redis-server.service" not in out  # services=api leaves redis alone


def test_unknown_action_is_refused(host, service):
    rc, out = service(action="reload")
    assert rc != 0 and "Set -e action=status, start, stop or restart (got reload)" in out, out[-3000:]
