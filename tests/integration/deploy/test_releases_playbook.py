"""playbooks/releases.yml: current/previous release and serving colour per api host, mixed releases flagged.

Two inventory hosts over the local connection, each with its own deploy root in tmp (built with
stackops.platform.release), colour links and blue_green state file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

RELEASES = str(Path(__file__).resolve().parents[3] / "playbooks" / "releases.yml")
SHOW = "Show the releases per host"
FAIL = "Fail on mixed releases (releases_fail_on_mixed)"
ENV = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"}


def build(playbook, tmp_path, root, releases, failed=()):
    """Deploy `releases` in order (each becomes current), then mark `failed` ones (built, not activated)."""
    tasks = []
    for rid in list(releases) + list(failed):
        src = tmp_path / f"src-{rid}"
        src.mkdir(exist_ok=True)
        (src / "VERSION").write_text(rid)
        tasks.append(
            {
                "name": f"Build {rid}",
                "stackops.platform.release": {
                    "path": str(root),
                    "src": str(src),
                    "release_id": rid,
                    "activate": rid not in failed,
                },
            }
        )
    tasks += [
        {"name": f"Fail {rid}", "stackops.platform.release": {"path": str(root), "release_id": rid, "state": "failed"}}
        for rid in failed
    ]
    run = playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert run.failed() == 0, run.results


def colour(root, active, links):
    (root / "colors").mkdir(exist_ok=True)
    for color, rid in links.items():
        os.symlink(str(root / "releases" / rid), root / "colors" / color)
    (root / "blue_green.json").write_text(json.dumps({"active": active}) + "\n")


def inventory(tmp_path, hosts):
    lines = ["[api]"]
    for host in hosts:
        root = tmp_path / host
        lines.append(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} api_deploy_root={root}"
            f" deploy_state_file={root}/blue_green.json"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def two_hosts(tmp_path, playbook):
    a, b = tmp_path / "rel-a", tmp_path / "rel-b"
    build(playbook, tmp_path, a, ["r1", "r2"], failed=["r3"])
    colour(a, "green", {"blue": "r1", "green": "r2"})
    build(playbook, tmp_path, b, ["r1"])
    colour(b, "blue", {"blue": "r1"})
    return tmp_path


def test_mixed_releases_are_flagged(two_hosts, playbook):
    run = playbook(RELEASES, inventory=inventory(two_hosts, ["rel-a", "rel-b"]), extravars={"api_env": ENV})
    assert run.failed("rel-a") == 0 and run.failed("rel-b") == 0 and run.failed() == 0, run.results
    lines = run.task(SHOW)["msg"]
    assert lines[0].split() == ["host", "current", "previous", "serves", "blue", "green", "failed", "releases"]
    assert lines[1].split() == ["rel-a", "r2", "r1", "green", "r1", "r2", "r3"], lines
    assert lines[2].split() == ["rel-b", "r1", "none", "blue", "r1", "none", "-"], lines
    assert lines[3] == "WARNING: the api hosts run different releases: r1 on rel-b; r2 on rel-a", lines
    assert len(lines) == 4
    assert run.task_status(FAIL) == "runner_on_skipped"


def test_mixed_releases_fail_when_asked(two_hosts, playbook):
    run = playbook(
        RELEASES,
        inventory=inventory(two_hosts, ["rel-a", "rel-b"]),
        extravars={"api_env": ENV, "releases_fail_on_mixed": True},
    )
    assert run.failed() == 1
    assert "run different releases: r1 on rel-b; r2 on rel-a" in run.task(FAIL)["msg"]


def test_same_release_everywhere_passes_and_drift_is_flagged(tmp_path, playbook):
    for host in ("rel-a", "rel-b"):
        build(playbook, tmp_path, tmp_path / host, ["r1", "r2"])
    colour(tmp_path / "rel-a", "green", {"blue": "r1", "green": "r2"})
    # rel-b: nginx still serves blue (r1) while current says r2.
    colour(tmp_path / "rel-b", "blue", {"blue": "r1", "green": "r2"})
    run = playbook(
        RELEASES,
        inventory=inventory(tmp_path, ["rel-a", "rel-b"]),
        extravars={"api_env": ENV, "releases_fail_on_mixed": True},
    )
    lines = run.task(SHOW)["msg"]
    assert not any("different releases" in line for line in lines), lines
    assert lines[-1] == "WARNING: rel-b: nginx serves blue, which runs r1, but current is r2", lines
    assert run.failed() == 1
    # Once nginx serves green there too, all agree: no warning, no failure.
    (tmp_path / "rel-b" / "blue_green.json").write_text('{"active": "green"}\n')
    run = playbook(
        RELEASES,
        inventory=inventory(tmp_path, ["rel-a", "rel-b"]),
        extravars={"api_env": ENV, "releases_fail_on_mixed": True},
    )
    assert run.failed() == 0, run.results
    assert len(run.task(SHOW)["msg"]) == 3


def test_host_without_deploy_root_shows_none(tmp_path, playbook):
    build(playbook, tmp_path, tmp_path / "rel-a", ["r1"])
    colour(tmp_path / "rel-a", "blue", {"blue": "r1"})
    run = playbook(RELEASES, inventory=inventory(tmp_path, ["rel-a", "rel-new"]), extravars={"api_env": ENV})
    assert run.failed() == 0, run.results
    lines = run.task(SHOW)["msg"]
    assert lines[2].split() == ["rel-new", "none", "none", "none", "none", "none", "-"], lines
    assert lines[3] == "WARNING: the api hosts run different releases: none on rel-new; r1 on rel-a", lines
