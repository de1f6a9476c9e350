# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import blue_green_routing as routing
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import BlueGreenError, switch
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_params import validate_params
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_routed import primary_after
from ansible_collections.stackops.platform.plugins.module_utils.http_probe import Response

UPSTREAMS = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}


def no_run(argv):
    raise AssertionError(f"the routed switch must not run commands (ran {argv})")


class Fetch:
    def __init__(self, status=200, header=None):
        self.status = status
        self.header = header
        self.urls = []

    def __call__(self, url, timeout):
        self.urls.append(url)
        return Response(self.status, "ok", {"X-Color": self.header} if self.header else {})


@pytest.fixture
def box(tmp_path):
    routing_dir = tmp_path / "routing" / "shop"
    routing_dir.parent.mkdir()
    conf = tmp_path / "shop_upstream.conf"
    conf.write_text(f"upstream shop_blue {{ server 127.0.0.1:8001; }}\n{routing.marker(str(routing_dir))}\n")
    params = {
        "name": "shop",
        "color": "green",
        "upstreams": UPSTREAMS,
        "upstream_file": str(conf),
        "state_file": str(tmp_path / "state" / "shop.json"),
        "routing_dir": str(routing_dir),
        "health_interval": 0,
        "healthy_threshold": 1,
    }
    return params, routing_dir


def run_switch(params, fetch=None, check_mode=False, **extra):
    return switch({**params, **extra}, no_run, check_mode, fetch=fetch or Fetch(), sleep=lambda s: None)


@pytest.mark.parametrize(
    ("color", "weight", "pattern"),
    [
        ("green", 100, "gggggggggg"),
        ("green", 10, "gbbbbbbbbb"),
        ("green", 50, "gggggbbbbb"),
        ("blue", 30, "bbbggggggg"),
        ("blue", 0, "gggggggggg"),
    ],
)
def test_pattern_for(color, weight, pattern):
    assert routing.pattern_for(color, weight) == pattern
    assert routing.weights_of(pattern)[color] == weight


@pytest.mark.parametrize(("color", "weight", "expected"), [("green", 0, ("blue", 100)), ("green", 20, ("green", 20))])
def test_normalise(color, weight, expected):
    assert routing.normalise(color, weight) == expected


@pytest.mark.parametrize("weight", [-10, 5, 15, 101, 110])
def test_bad_weight_names_the_value(weight):
    with pytest.raises(ValueError, match=f"weight {weight} is not usable"):
        routing.validate_weight(weight)


def test_weight_needs_routing_dir():
    with pytest.raises(ValueError, match="weight 10 needs routing_dir"):
        validate_params({"name": "shop", "color": "green", "upstreams": UPSTREAMS, "weight": 10})


@pytest.mark.parametrize(
    ("color", "weight", "before", "active"),
    [
        ("green", 100, "blue", "green"),
        ("green", 10, "blue", "blue"),
        ("green", 10, None, "blue"),
        ("blue", 50, "blue", "green"),
    ],
)
def test_primary_after(color, weight, before, active):
    assert primary_after(color, weight, before) == active


def test_first_switch_builds_links_and_state(box):
    params, routing_dir = box
    result = run_switch(params)
    assert (result["changed"], result["switched"], result["reloaded"]) == (True, True, False)
    assert os.readlink(routing_dir / "split") == "sets/gggggggggg"
    assert routing.slot_colors(str(routing_dir)) == ["green"] * 10
    state = json.loads(Path(params["state_file"]).read_text())
    assert (state["active"], state["routing"], state["canary"]) == ("green", "gggggggggg", None)
    again = run_switch(params)
    assert again["changed"] is False


def test_canary_keeps_the_old_colour_active_then_promotes(box):
    params, routing_dir = box
    run_switch(params, color="blue")
    step = run_switch(params, weight=20)
    assert (step["active"], step["canary"], step["weights"]) == (
        "blue",
        {"color": "green", "weight": 20},
        {"blue": 80, "green": 20},
    )
    assert routing.slot_colors(str(routing_dir)) == ["green"] * 2 + ["blue"] * 8
    done = run_switch(params, weight=100)
    assert (done["active"], done["previous"], done["canary"]) == ("green", "blue", None)


def test_health_checked_only_when_the_share_grows(box):
    params = box[0]
    run_switch(params, color="blue")
    run_switch(params, weight=50)
    fetch = Fetch(status=503)
    with pytest.raises(BlueGreenError, match="not healthy"):
        run_switch(params, weight=60, fetch=fetch)
    shrink = run_switch(params, weight=10, fetch=fetch)  # green's share shrinks: no health check of green
    assert shrink["health_checks"] == 0


def test_check_mode_writes_nothing(box):
    params, routing_dir = box
    run_switch(params, color="blue")
    state = Path(params["state_file"]).read_text()
    result = run_switch(params, check_mode=True, weight=10)
    assert result["changed"] is True
    assert os.readlink(routing_dir / "split") == "sets/bbbbbbbbbb"
    assert Path(params["state_file"]).read_text() == state
    assert not (routing_dir / "sets" / "gbbbbbbbbb").exists()


def test_failed_verify_puts_the_split_back(box):
    params, routing_dir = box
    run_switch(params, color="blue")
    state = Path(params["state_file"]).read_text()
    with pytest.raises(BlueGreenError, match="was put back"):
        run_switch(
            params,
            fetch=Fetch(header="blue"),
            verify_url="http://127.0.0.1/",
            verify_header="X-Color",
            verify_timeout=0.01,
        )
    assert os.readlink(routing_dir / "split") == "sets/bbbbbbbbbb"
    assert Path(params["state_file"]).read_text() == state


def test_canary_verify_accepts_either_colour(box):
    params = box[0]
    run_switch(params, color="blue")
    result = run_switch(
        params, weight=10, fetch=Fetch(header="blue"), verify_url="http://127.0.0.1/", verify_header="X-Color"
    )
    assert result["verify_checks"] == 1


class HostFetch(Fetch):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.headers = []

    def __call__(self, url, timeout, headers=None):
        self.headers.append(headers)
        return super().__call__(url, timeout)


def test_verify_host_is_sent_only_to_the_verify_url(box):
    """Several apps on one nginx address: the verify request names the app's site, the health checks do not."""
    params = box[0]
    fetch = HostFetch(header="green")
    result = run_switch(
        params, fetch=fetch, verify_url="http://127.0.0.1/", verify_header="X-Color", verify_host="web.example.test"
    )
    assert result["verify_checks"] == 1
    assert fetch.urls[-1] == "http://127.0.0.1/"
    assert fetch.headers[-1] == {"Host": "web.example.test"}
    assert all(h is None for h in fetch.headers[:-1])


def test_reload_layout_file_is_refused(box, tmp_path):
    params, routing_dir = box
    old = tmp_path / "old.conf"
    old.write_text("upstream shop_backend { server 127.0.0.1:8001; }\n")
    with pytest.raises(BlueGreenError, match="Run the api role"):
        run_switch(params, upstream_file=str(old))
    assert not routing_dir.exists()


def test_foreign_split_link_is_refused(box):
    params, routing_dir = box
    routing_dir.mkdir()
    os.symlink("/etc", routing_dir / "split")
    with pytest.raises(BlueGreenError, match="expected sets/"):
        run_switch(params)
    assert os.readlink(routing_dir / "split") == "/etc"
