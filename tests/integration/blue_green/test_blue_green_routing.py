"""stackops.platform.blue_green with routing_dir against a real nginx configured by the api role's templates.

Checked independently of the module: which colour answers through nginx, nginx's worker processes (a reload
replaces them, a symlink switch must not), the split link, the bytes of the nginx files and the access log.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

TASK = "Route"
SHARE_REQUESTS = 1500
SHARE_TOLERANCE = 5


def route_by_hand(routed, color):
    """Independent of the module: every slot linked to ``color``, the state file saying so."""
    letter = color[0]
    sets = routed.routing_dir / "sets" / (letter * 10)
    for name in ("blue", "green"):
        (routed.routing_dir / name).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(sets, ignore_errors=True)
    sets.mkdir(parents=True)
    for slot in range(10):
        (sets / f"slot{slot}").symlink_to(f"../../{color}")
    tmp = routed.routing_dir / ".split.test"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"sets/{letter * 10}")
    os.replace(tmp, routed.routing_dir / "split")
    routed.state_file.write_text(
        json.dumps(
            {
                "active": color,
                "previous": None,
                "upstream": routed.upstreams[color],
                "routing": letter * 10,
                "canary": None,
            }
        )
    )


@pytest.fixture
def routed_blue(routed):
    """Every slot routed to blue, both colours healthy."""
    for backend in routed.backends.values():
        backend.healthy = True
    route_by_hand(routed, "blue")
    routed.wait_served("blue")
    return routed


def test_first_run_creates_the_links_and_nginx_serves_the_colour(routed, playbook):
    shutil.rmtree(routed.routing_dir, ignore_errors=True)
    routed.state_file.unlink(missing_ok=True)
    assert routed.shares(5) == {"other 503": 5}
    run = playbook(routed.play("blue", force=True))
    assert run.failed() == 0, run.task(TASK)
    assert run.task(TASK)["routing_before"] is None
    assert routed.split_target() == "sets/bbbbbbbbbb"
    for slot in range(10):
        assert (routed.routing_dir / "split" / f"slot{slot}").resolve() == routed.routing_dir / "blue"
    assert routed.shares(20) == {"blue": 20}


def test_switch_without_reload_then_unchanged_rerun(routed_blue, playbook):
    workers = routed_blue.worker_pids()
    files = routed_blue.nginx_files()
    run = playbook(routed_blue.play("green"))
    assert run.failed() == 0, run.task(TASK)
    res = run.task(TASK)
    assert (res["previous"], res["active"], res["switched"], res["reloaded"]) == ("blue", "green", True, False)
    assert (res["routing_before"], res["routing"]) == ("bbbbbbbbbb", "gggggggggg")
    assert res["health_checks"] == 2
    assert res["verify_checks"] >= 1
    assert routed_blue.shares(50) == {"green": 50}
    # No reload: the same workers serve (nginx_test_cmd/nginx_reload_cmd are `false`, so any call would fail too).
    assert routed_blue.worker_pids() == workers
    assert routed_blue.nginx_files() == files
    state = json.loads(routed_blue.state_file.read_text())
    assert (state["active"], state["previous"], state["routing"], state["canary"]) == (
        "green",
        "blue",
        "gggggggggg",
        None,
    )

    rerun = playbook(routed_blue.play("green"))
    assert rerun.failed() == 0, rerun.task(TASK)
    assert rerun.changed() == 0
    assert rerun.task(TASK)["health_checks"] == 0


def test_check_mode_predicts_and_changes_nothing(routed_blue, playbook):
    state = routed_blue.state_file.read_bytes()
    run = playbook(routed_blue.play("green", weight=30), check=True, diff=True)
    assert run.failed() == 0, run.task(TASK)
    assert run.changed() == 1
    res = run.task(TASK)
    assert res["routing"] == "gggbbbbbbb"
    assert "blue 70 %, green 30 %" in res["diff"]["after"]
    assert routed_blue.split_target() == "sets/bbbbbbbbbb"
    assert routed_blue.state_file.read_bytes() == state
    assert routed_blue.shares(20) == {"blue": 20}


def test_canary_share_follows_the_weight_and_abort_returns_everything(routed_blue, playbook, capsys):
    before = (routed_blue.split_target(), routed_blue.nginx_files())
    workers = routed_blue.worker_pids()
    figures = []
    for weight in (10, 50, 90):
        run = playbook(routed_blue.play("green", weight=weight))
        assert run.failed() == 0, run.task(TASK)
        res = run.task(TASK)
        assert res["weights"] == {"blue": 100 - weight, "green": weight}
        assert res["active"] == "blue"
        assert res["canary"] == {"color": "green", "weight": weight}
        counts = routed_blue.shares(SHARE_REQUESTS)
        share = 100.0 * counts["green"] / SHARE_REQUESTS
        figures.append((weight, share, dict(counts)))
        assert counts["blue"] + counts["green"] == SHARE_REQUESTS, counts
        assert abs(share - weight) <= SHARE_TOLERANCE, f"weight {weight} %: green answered {share:.1f} %"
    state = json.loads(routed_blue.state_file.read_text())
    assert (state["active"], state["canary"]) == ("blue", {"color": "green", "weight": 90})

    abort = playbook(routed_blue.play("blue"))
    assert abort.failed() == 0, abort.task(TASK)
    res = abort.task(TASK)
    assert (res["active"], res["weights"], res["canary"]) == ("blue", {"blue": 100, "green": 0}, None)
    after_abort = routed_blue.shares(500)
    with capsys.disabled():
        for weight, share, counts in figures:
            print(f"\ncanary weight {weight:3d} %: green answered {share:5.1f} % of {SHARE_REQUESTS} ({counts})")
        print(f"after abort: {dict(after_abort)} of 500")
    assert after_abort == {"blue": 500}
    # Aborted canary: routing link and nginx files as before, and never a reload.
    assert (routed_blue.split_target(), routed_blue.nginx_files()) == before
    assert routed_blue.worker_pids() == workers


def test_weight_zero_is_the_other_colour_at_full(routed_blue, playbook):
    run = playbook(routed_blue.play("blue", weight=0))
    assert run.failed() == 0, run.task(TASK)
    assert (run.task(TASK)["active"], run.task(TASK)["routing"]) == ("green", "gggggggggg")
    assert routed_blue.shares(20) == {"green": 20}


def test_unhealthy_canary_target_is_refused_and_nothing_changes(routed_blue, playbook):
    state = routed_blue.state_file.read_bytes()
    routed_blue.backends["green"].healthy = False
    run = playbook(routed_blue.play("green", weight=10, health_timeout=1))
    assert run.failed() == 1
    res = run.task(TASK)
    assert "green unhealthy" in res["msg"]
    assert routed_blue.split_target() == "sets/bbbbbbbbbb"
    assert routed_blue.state_file.read_bytes() == state
    assert routed_blue.shares(20) == {"blue": 20}


@pytest.mark.parametrize("weight", [35, 110])
def test_bad_weight_is_refused_naming_it(routed_blue, playbook, weight):
    state = routed_blue.state_file.read_bytes()
    run = playbook(routed_blue.play("green", weight=weight))
    assert run.failed() == 1
    assert f"weight {weight} is not usable" in run.task(TASK)["msg"]
    assert routed_blue.split_target() == "sets/bbbbbbbbbb"
    assert routed_blue.state_file.read_bytes() == state


def test_reload_layout_file_is_refused_in_routing_mode(routed_blue, playbook, tmp_path):
    old = tmp_path / "old_upstream.conf"
    old.write_text(f"upstream {routed_blue.name}_backend {{\n    server {routed_blue.upstreams['blue']};\n}}\n")
    run = playbook(routed_blue.play("green", upstream_file=str(old)))
    assert run.failed() == 1
    assert "Run the api role" in run.task(TASK)["msg"]
    assert routed_blue.split_target() == "sets/bbbbbbbbbb"
    assert routed_blue.shares(10) == {"blue": 10}


def test_routing_file_is_refused_in_reload_mode(routed_blue, playbook):
    files = routed_blue.nginx_files()
    run = playbook(routed_blue.play("green", routing_dir=None, nginx_test_cmd=None, nginx_reload_cmd=None))
    assert run.failed() == 1
    assert "pass routing_dir" in run.task(TASK)["msg"]
    assert routed_blue.nginx_files() == files


def test_access_log_names_the_colour_and_the_upstream(routed_blue, playbook):
    run = playbook(routed_blue.play("green", weight=50))
    assert run.failed() == 0, run.task(TASK)
    seen = len(routed_blue.log_lines())
    routed_blue.shares(200)
    lines = routed_blue.log_lines()[seen:]
    colors = routed_blue.log_colors(lines)
    assert set(colors) == {"blue", "green"}, lines[:3]
    for line in lines:
        color = line.rsplit(" color=", 1)[1]
        assert f"upstream={routed_blue.upstreams[color]} " in line, line
