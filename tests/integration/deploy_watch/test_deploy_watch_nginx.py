"""Post-switch watch against a real nginx (the api role's log format) and the sample app as blue and green.

The play runs deploy_host.yml's steps from the switch on (playbooks/tasks: active_color, watch_begin, switch_color,
watch_after_switch) with the real modules: a green release answering 500 to 10 % of requests is switched back to
blue within the watch window; a good one stays; without traffic the watch passes and says so.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from watch_stack import Load

FAIL_TASK = "Fail the deploy, the old colour serves again"


def snapshot(root) -> dict:
    return {str(p.relative_to(root)): os.readlink(p) if p.is_symlink() else "dir" for p in sorted(root.rglob("*"))}


def results(run, prefix: str) -> list[dict]:
    done = ("runner_on_ok", "runner_on_failed")
    return [e["res"] for e in run.results if e["task"].startswith(prefix) and e["event"] in done]


def watch_result(run) -> dict:
    found = results(run, "Watch through the access log")
    assert found, [e["task"] for e in run.results]
    return found[-1]


def assert_nginx_on(stack, color):
    other = "green" if color == "blue" else "blue"
    upstream, state = stack.nginx_files()
    assert f"server {stack.upstreams[color]};" in upstream and stack.upstreams[other] not in upstream, upstream
    assert json.loads(state)["active"] == color
    assert stack.served(10) == {color}


@pytest.mark.parametrize("stack", [0.1], indirect=True)
def test_release_with_10_percent_errors_is_switched_back_within_the_window(stack, deploy_root, playbook):
    before = snapshot(deploy_root)
    seconds = 20
    with Load(stack.port) as load:
        time.sleep(0.5)
        started = time.monotonic()
        run = playbook(
            stack.switch_and_watch_play(deploy_root, deploy_watch_seconds=seconds, deploy_watch_min_requests=50),
            envvars={"PATH": stack.path_env},
        )
        took = time.monotonic() - started
        time.sleep(0.5)
        assert_nginx_on(stack, "blue")
    watch = watch_result(run)
    print(
        f"\nbad release (green, 10 % 500s): served {watch['requests']} requests, 5xx {watch['errors_5xx']} "
        f"(ratio {watch['error_ratio']:.1%}), p95 {watch['p95_ms']} ms; breach seen {watch['elapsed']}s into the "
        f"{seconds}s watch, then switched back (whole play {took:.1f}s); clients saw {dict(load.statuses)} "
        f"from {dict(load.colours)}"
    )
    assert run.failed() == 1
    assert watch["breached"] and watch["stopped_early"] and watch["enough_traffic"], watch
    assert watch["requests"] >= 50 and 0.05 <= watch["error_ratio"] <= 0.15, watch
    assert watch["elapsed"] < seconds
    # The forward switch happened (green served), then the switch back.
    assert [r["active"] for r in results(run, "Switch nginx to the colour")] == ["green", "blue"]
    assert load.colours["green"] > 0
    msg = run.task(FAIL_TASK)["msg"]
    assert "Release r2 was switched back" in msg and "guardrail breached: 5xx ratio" in msg, msg
    assert "nginx serves blue again and `current` is unchanged" in msg and f"{watch['requests']} requests" in msg, msg
    # Nothing else moved: current and the colour links are as before the switch.
    assert snapshot(deploy_root) == before


def test_good_release_stays_and_the_figures_are_shown(stack, deploy_root, playbook):
    with Load(stack.port):
        time.sleep(0.5)
        run = playbook(
            stack.switch_and_watch_play(deploy_root, deploy_watch_seconds=4, deploy_watch_min_requests=20),
            envvars={"PATH": stack.path_env},
        )
        assert_nginx_on(stack, "green")
    assert run.failed() == 0, run.results
    watch = watch_result(run)
    assert not watch["breached"] and watch["enough_traffic"] and watch["requests"] >= 20, watch
    assert watch["errors_5xx"] == 0 and watch["p95_ms"] is not None and watch["elapsed"] >= 4
    shown = run.task("Show the watch figures")["msg"]
    assert f"green served {watch['requests']} requests" in shown and "5xx 0 (0.00 %)" in shown and ": ok (" in shown
    assert not results(run, FAIL_TASK)


def test_without_traffic_the_watch_passes_and_says_so(stack, deploy_root, playbook):
    run = playbook(
        stack.switch_and_watch_play(deploy_root, deploy_watch_seconds=2, deploy_watch_min_requests=20),
        envvars={"PATH": stack.path_env},
    )
    assert run.failed() == 0, run.results
    watch = watch_result(run)
    assert not watch["breached"] and not watch["enough_traffic"]
    assert "not enough traffic to judge" in watch["reason"] and watch["requests"] < 20
    assert_nginx_on(stack, "green")


@pytest.mark.parametrize("stack", [0.1], indirect=True)
def test_watch_off_keeps_the_switch(stack, deploy_root, playbook):
    with Load(stack.port):
        run = playbook(
            stack.switch_and_watch_play(deploy_root, deploy_watch_seconds=0), envvars={"PATH": stack.path_env}
        )
    assert run.failed() == 0, run.results
    assert not results(run, "Watch through the access log")
    assert_nginx_on(stack, "green")


def test_without_a_watch_the_switch_puts_the_release_live_in_one_call(stack, deploy_root, playbook):
    # deploy_host.yml with deploy_watch_seconds=0: blue_green with the release r2 (green's link) switches nginx to
    # green and moves current r1 -> r2 in the same call. Both releases complete, as the release module leaves them.
    for release in ("r1", "r2"):
        (deploy_root / "releases" / release / ".release-meta").write_text(json.dumps({"release_id": release}))
    with Load(stack.port):
        run = playbook(
            stack.switch_and_watch_play(deploy_root, switch_release="r2", deploy_watch_seconds=0),
            envvars={"PATH": stack.path_env},
        )
    assert run.failed() == 0, [e["res"].get("msg") for e in run.results if e["event"] == "runner_on_failed"]
    [switched] = results(run, "Switch nginx to the colour")
    assert (switched["active"], switched["release"], switched["release_before"]) == ("green", "r2", "r1"), switched
    assert switched["current_moved"] is True
    assert (deploy_root / "current").resolve() == (deploy_root / "releases" / "r2").resolve()
    assert_nginx_on(stack, "green")


def test_watch_follows_a_log_rotation_during_the_window(stack, deploy_root, playbook):
    def rotate():
        # Once green serves (the switch is done, the watch starts about now), rotate like logrotate's create.
        deadline = time.monotonic() + 60
        while f"upstream={stack.upstreams['green']} " not in stack.access_log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2)
        os.rename(stack.access_log, f"{stack.access_log}.1")
        assert stack.nginx("-s", "reopen").returncode == 0

    rotation = threading.Thread(target=rotate)
    with Load(stack.port):
        time.sleep(0.5)
        rotation.start()
        run = playbook(
            stack.switch_and_watch_play(deploy_root, deploy_watch_seconds=8, deploy_watch_min_requests=20),
            envvars={"PATH": stack.path_env},
        )
        rotation.join()
    assert run.failed() == 0, run.results
    watch = watch_result(run)
    mark = run.task("Note where the access log ends before the switch")["stat"]["size"]
    green = stack.upstreams["green"]
    with open(f"{stack.access_log}.1", "rb") as old:
        old.seek(mark)
        before_rotation = sum(1 for text in old.read().decode().splitlines() if f"upstream={green} " in text)
    after_rotation = sum(1 for text in stack.access_log.read_text().splitlines() if f"upstream={green} " in text)
    assert after_rotation > 0 and watch["rotated"], watch
    # Seen during the watch, or (on a slow machine) between the mark and the watch's start.
    assert any("rotated during the watch" in note or "rotated to" in note for note in watch["notes"]), watch["notes"]
    # Counted from both files: more than the renamed one holds, at most what both hold.
    assert before_rotation < watch["requests"] <= before_rotation + after_rotation, (watch, before_rotation)
