"""stackops.platform.blue_green against a real nginx and two real backends (see conftest.py).

Every case checks the module's answer, then checks independently: the bytes of the upstream and
state files, and which colour actually answers through nginx.
"""

from __future__ import annotations

import json
import threading
import time

from blue_green_stack import get

TASK = "Switch colour"


def test_check_mode_reports_the_switch_and_changes_nothing(blue, playbook):
    before = blue.files()
    run = playbook(blue.switch_play("green"), check=True, diff=True)
    assert run.failed() == 0, run.task(TASK)
    assert run.changed() == 1
    res = run.task(TASK)
    assert res["switched"] is True
    assert (res["previous"], res["active"]) == ("blue", "green")
    assert res["health_checks"] == 3
    assert blue.upstreams["green"] in res["diff"]["after"]
    assert blue.upstreams["blue"] in res["diff"]["before"]
    assert blue.files() == before
    assert blue.served_n(10) == {"blue"}


def test_switch_to_green_rerun_and_switch_back(blue, playbook):
    run = playbook(blue.switch_play("green"))
    assert run.failed() == 0, run.task(TASK)
    assert run.changed() == 1
    res = run.task(TASK)
    assert (res["previous"], res["active"], res["switched"]) == ("blue", "green", True)
    assert res["health_checks"] == 3
    assert res["upstream"] == blue.upstreams["green"]
    assert res["verify_checks"] >= 1
    assert blue.served_n(20) == {"green"}
    assert f"server {blue.upstreams['green']};" in blue.upstream_file.read_text()
    state = json.loads(blue.state_file.read_text())
    assert (state["active"], state["previous"], state["upstream"]) == ("green", "blue", blue.upstreams["green"])
    assert state["switched_at"].endswith("Z")

    files = blue.files()
    rerun = playbook(blue.switch_play("green"))
    assert rerun.failed() == 0, rerun.task(TASK)
    assert rerun.changed() == 0
    assert rerun.task(TASK)["switched"] is False
    assert rerun.task(TASK)["health_checks"] == 0
    assert blue.files() == files

    back = playbook(blue.switch_play("blue"))
    assert back.failed() == 0, back.task(TASK)
    assert back.changed() == 1
    assert (back.task(TASK)["previous"], back.task(TASK)["active"]) == ("green", "blue")
    assert blue.served_n(20) == {"blue"}
    state = json.loads(blue.state_file.read_text())
    assert (state["active"], state["previous"]) == ("blue", "green")


def test_unhealthy_colour_is_refused_and_nothing_changes(blue, playbook):
    before = blue.files()
    blue.backends["green"].healthy = False
    run = playbook(blue.switch_play("green", health_timeout=1.5))
    assert run.failed() == 1
    assert run.changed() == 0
    res = run.task(TASK)
    assert "503" in res["msg"]
    assert "green unhealthy" in res["msg"]
    assert res["health"]["last_status"] == 503
    assert (res["active"], res["switched"]) == ("blue", False)
    assert res["health_checks"] >= 2
    assert blue.files() == before
    assert blue.served_n(10) == {"blue"}


def test_flapping_colour_needs_consecutive_successes(blue, playbook):
    """Healthy only every other request: never 3 in a row, so never switched."""
    green = blue.backends["green"]
    before = blue.files()
    # Per request, not on a clock: a clock-driven flapper let 3 checks in a row land on "healthy" on a loaded machine.
    green.flap = True
    try:
        run = playbook(blue.switch_play("green", health_timeout=2, health_interval=0.1))
    finally:
        green.flap = False
    assert run.failed() == 1
    assert run.task(TASK)["health"]["ok"] is False
    assert blue.files() == before
    assert blue.served_n(10) == {"blue"}


def test_nginx_config_test_failure_restores_the_upstream_file(blue, playbook):
    before = blue.files()
    conf = blue.conf.read_text()
    blue.conf.write_text(conf.replace("access_log off;", "access_log off;\n    no_such_directive on;"))
    try:
        run = playbook(blue.switch_play("green"))
    finally:
        blue.conf.write_text(conf)
    assert run.failed() == 1
    assert run.changed() == 0
    res = run.task(TASK)
    assert "no_such_directive" in res["msg"]
    assert "no_such_directive" in res["nginx_stderr"]
    assert "restored" in res["msg"]
    assert blue.files() == before
    assert blue.served_n(10) == {"blue"}


def test_failed_verification_through_nginx_rolls_back(blue, playbook):
    """nginx answers 404 on the verify URL: the switch is undone and nginx serves blue again."""
    before = blue.files()
    run = playbook(blue.switch_play("green", verify_url=f"{blue.url}missing", verify_timeout=1))
    assert run.failed() == 1
    res = run.task(TASK)
    assert "404" in res["msg"]
    assert "restored" in res["msg"]
    assert blue.files() == before
    deadline = time.monotonic() + 5
    while blue.served_n(5) != {"blue"}:
        assert time.monotonic() < deadline, "nginx did not go back to blue"
        time.sleep(0.1)


def test_three_switches_drop_no_request(blue, playbook):
    """Requests through nginx (a new connection each) while the module switches three times."""
    seen: dict[str, int] = {}
    failures: list[str] = []
    stop = threading.Event()

    def load():
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                status, body = get(blue.url, timeout=2)
                if status != 200:
                    failures.append(f"{status} {body}")
                seen[body] = seen.get(body, 0) + 1
            except OSError as exc:
                failures.append(repr(exc))
            time.sleep(0.002)

    plays = blue.switch_play("green", healthy_threshold=2) + blue.switch_play("blue", healthy_threshold=2)
    plays += blue.switch_play("green", healthy_threshold=2)
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        run = playbook(plays)
    finally:
        stop.set()
        worker.join()
    assert run.failed() == 0, run.results
    assert run.changed() == 3
    assert failures == []
    assert seen.get("blue", 0) > 0
    assert seen.get("green", 0) > 0
    assert sum(seen.values()) > 50
    assert blue.served_n(10) == {"green"}


def _deploy_root(tmp_path, playbook):
    """A real deploy root (stackops.platform.release): current r2 on green, previous r1 on blue."""
    root = tmp_path / "srv"
    tasks = []
    for rid in ("r1", "r2"):
        src = tmp_path / f"src-{rid}"
        src.mkdir()
        (src / "VERSION").write_text(rid)
        tasks.append({"name": f"Deploy {rid}", "stackops.platform.release": {"path": str(root), "src": str(src),
                                                                             "release_id": rid}})  # fmt: skip
    run = playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert run.failed() == 0
    (root / "colors").mkdir()
    (root / "colors" / "blue").symlink_to("../releases/r1")
    (root / "colors" / "green").symlink_to("../releases/r2")
    return root


def test_release_cutover_is_the_fast_rollback(blue, playbook, tmp_path):
    blue.reset("green")
    root = _deploy_root(tmp_path, playbook)
    play = blue.switch_play("blue", release="previous", release_path=str(root))
    del play[0]["tasks"][0]["stackops.platform.blue_green"]["color"]

    # Check mode: predicts blue and r1, changes nothing.
    files, current = blue.files(), (root / "current").readlink()
    run = playbook(play, check=True)
    assert run.failed() == 0, run.task(TASK)
    res = run.task(TASK)
    assert (res["release"], res["active"], res["current_moved"], res["switched"]) == ("r1", "blue", True, True)
    assert blue.files() == files and (root / "current").readlink() == current and blue.served_n(10) == {"green"}

    run = playbook(play)
    assert run.failed() == 0, run.task(TASK)
    res = run.task(TASK)
    assert (res["release"], res["release_before"], res["previous"], res["active"]) == ("r1", "r2", "green", "blue")
    assert blue.served_n(20) == {"blue"}
    assert str((root / "current").readlink()) == "releases/r1"
    assert json.loads((root / ".release-state").read_text())["previous"] == "r2"

    # Unknown release: refused naming it, nginx and current untouched.
    files = blue.files()
    bad = blue.switch_play("blue", release="r9", release_path=str(root))
    del bad[0]["tasks"][0]["stackops.platform.blue_green"]["color"]
    run = playbook(bad)
    assert run.failed() == 1
    assert "release 'r9' does not exist; available releases: r1, r2" in run.task(TASK)["msg"]
    assert blue.files() == files and str((root / "current").readlink()) == "releases/r1"

    # The colour running r2 is down: refused with color_found true and the health result, nothing changed.
    blue.backends["green"].healthy = False
    run = playbook(play)
    assert run.failed() == 1
    res = run.task(TASK)
    assert res["color_found"] is True and res["health"]["ok"] is False and res["release"] == "r2"
    assert blue.files() == files and blue.served_n(10) == {"blue"}
    assert str((root / "current").readlink()) == "releases/r1"
