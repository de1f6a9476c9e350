# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import blue_green_core as core
from ansible_collections.stackops.platform.plugins.module_utils import http_probe as probe
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import (
    BlueGreenError,
    color_from_upstream,
    parse_state,
    read_state,
    render_upstream,
)
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_params import parse_hostport, validate_params
from ansible_collections.stackops.platform.plugins.module_utils.http_probe import Response, wait_until_ok

UPSTREAMS = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping moves the clock, requests cost `cost` seconds."""

    def __init__(self, cost=0.0):
        self.now = 1000.0
        self.cost = cost
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class FakeFetch:
    """Answers with the given statuses in order (then repeats the last one); records the URLs asked."""

    def __init__(self, statuses, clock=None):
        self.statuses = list(statuses)
        self.urls = []
        self.headers = []
        self.clock = clock

    def __call__(self, url, timeout, headers=None):
        self.urls.append(url)
        self.headers.append(headers)
        status = self.statuses[min(len(self.urls), len(self.statuses)) - 1]
        if self.clock:
            self.clock.now += self.clock.cost
        if status is None:
            return Response(None, error="connection refused")
        headers = {"X-Color": url.rsplit("#", 1)[-1]} if "#" in url else {}
        return Response(status, f"body {status}", headers)


# ---------------------------------------------------------------- host:port


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8001", ("127.0.0.1", 8001)),
        ("app-green.internal:80", ("app-green.internal", 80)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:8002", ("[::1]", 8002)),
        (" 10.0.0.5:1 ", ("10.0.0.5", 1)),
    ],
)
def test_parse_hostport_accepts(value, expected):
    assert parse_hostport(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1",
        "127.0.0.1:",
        ":8001",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:80a",
        "host name:80",
        "evil;} server x:1;:80",
        "[::1]8001",
        "[nothex]:80",
        "",
        None,
        8001,
    ],
)
def test_parse_hostport_refuses_and_names_value(value):
    with pytest.raises(ValueError) as err:
        parse_hostport(value)
    assert repr(value.strip() if isinstance(value, str) else value) in str(err.value)


# ---------------------------------------------------------------- validation


def params(**overrides):
    base = {"name": "shop", "color": "green", "upstreams": dict(UPSTREAMS)}
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"color": "red"}, "'red'"),
        ({"upstreams": {"blue": "127.0.0.1:8001", "green": "127.0.0.1"}}, "upstreams.green"),
        ({"upstreams": {"blue": "127.0.0.1:99999", "green": "127.0.0.1:8002"}}, "upstreams.blue"),
        ({"upstreams": {"blue": "127.0.0.1:8001"}}, "exactly the keys"),
        ({"upstreams": {**UPSTREAMS, "red": "127.0.0.1:8003"}}, "exactly the keys"),
        ({"upstreams": {"blue": "127.0.0.1:8001", "green": " 127.0.0.1:8001"}}, "both 127.0.0.1:8001"),
        ({"name": "shop app"}, "'shop app'"),
        ({"name": "shop;"}, "'shop;'"),
        ({"healthy_threshold": 0}, "healthy_threshold"),
        ({"health_timeout": 0}, "health_timeout"),
        ({"health_interval": -1}, "health_interval"),
        ({"expected_status": 42}, "expected_status"),
        ({"keepalive": -1}, "keepalive"),
        ({"health_url": "ftp://{host}:{port}/"}, "health_url"),
        ({"verify_url": "127.0.0.1/health"}, "verify_url"),
        ({"nginx_test_cmd": []}, "nginx_test_cmd"),
    ],
)
def test_validate_params_refuses(overrides, named):
    with pytest.raises(ValueError) as err:
        validate_params(params(**overrides))
    assert named in str(err.value)


def test_validate_params_fills_defaults():
    filled = validate_params(params(health_path=None))
    assert filled["upstream_file"] == "/etc/nginx/conf.d/shop_upstream.conf"
    assert filled["state_file"] == "/var/lib/stackops/blue_green/shop.json"
    assert (filled["healthy_threshold"], filled["health_timeout"], filled["expected_status"]) == (3, 60.0, 200)


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("name", "color", "server", "keepalive", "lines"),
    [
        (
            "shop",
            "green",
            "127.0.0.1:8002",
            32,
            ["upstream shop_backend {", "    server 127.0.0.1:8002;", "    keepalive 32;"],
        ),
        ("shop", "blue", "127.0.0.1:8001", 0, ["upstream shop_backend {", "    server 127.0.0.1:8001;"]),
        (
            "api-v2",
            "green",
            "[::1]:9002",
            8,
            ["upstream api-v2_backend {", "    server [::1]:9002;", "    keepalive 8;"],
        ),
    ],
)
def test_render_upstream(name, color, server, keepalive, lines):
    text = render_upstream(name, color, server, keepalive)
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [*lines, "}"]
    assert f"active colour: {color}" in text
    assert text.endswith("}\n")
    assert ("keepalive" in text) == bool(keepalive)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (render_upstream("shop", "green", "127.0.0.1:8002"), "green"),
        (render_upstream("shop", "blue", "127.0.0.1:8001", 0), "blue"),
        ("upstream shop_backend {\n  server 127.0.0.1:8001 max_fails=3;\n}\n", "blue"),
        ("upstream shop_backend {\n  server 127.0.0.1:9999;\n}\n", None),
        ("upstream x {\n server 127.0.0.1:8001;\n server 127.0.0.1:8002;\n}\n", None),
        ("", None),
        (None, None),
    ],
)
def test_color_from_upstream(text, expected):
    assert color_from_upstream(text, UPSTREAMS) == expected


# ---------------------------------------------------------------- state file


def test_parse_state_valid():
    state = core.build_state("shop", "green", "blue", "127.0.0.1:8002", now=0)
    assert state["switched_at"] == "1970-01-01T00:00:00Z"
    assert parse_state(core.dump_state(state))["active"] == "green"


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '"green"', '{"previous": "blue"}', '{"active": "red"}', '{"active": "blue", "previous": "x"}'],
)
def test_parse_state_corrupt(text):
    with pytest.raises(ValueError):
        parse_state(text)


def test_read_state_missing_is_first_run(tmp_path):
    assert read_state(str(tmp_path / "absent.json")) == (None, None)


def test_read_state_corrupt_is_a_warning(tmp_path):
    path = tmp_path / "shop.json"
    path.write_text("{not json")
    state, warning = read_state(str(path))
    assert state is None
    assert str(path) in warning
    assert "not JSON" in warning


# ---------------------------------------------------------------- consecutive successes


@pytest.mark.parametrize(
    ("statuses", "threshold", "ok", "attempts"),
    [
        ([200, 200, 200], 3, True, 3),
        ([200, 200, 500, 200, 200, 200], 3, True, 6),
        ([None, 503, 200, 200, 200], 3, True, 5),
        ([500, 200], 1, True, 2),
        ([200, 500, 200, 500, 200, 500, 200, 500], 2, False, 8),
        ([503], 3, False, 8),
    ],
)
def test_wait_until_ok_counts_consecutive_successes(statuses, threshold, ok, attempts):
    clock = FakeClock()
    fetch = FakeFetch(statuses)
    # timeout 7.5s, interval 1s: at most 8 attempts (t=0..7)
    result = wait_until_ok(
        fetch,
        "http://x/health",
        probe.status_is(200),
        threshold=threshold,
        timeout=7.5,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert (result.ok, result.attempts) == (ok, attempts)
    assert len(fetch.urls) == attempts
    assert len(clock.slept) == attempts - 1


def test_wait_until_ok_stops_at_timeout_with_slow_answers():
    clock = FakeClock(cost=2.0)
    result = wait_until_ok(
        FakeFetch([503], clock),
        "u",
        probe.status_is(200),
        threshold=3,
        timeout=10,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert not result.ok
    assert result.attempts == 4  # 0-2s, 3-5s, 6-8s, 9-11s; the next would start after the deadline
    assert result.as_dict()["last_status"] == 503
    assert result.as_dict()["last_body"] == "body 503"


@pytest.mark.parametrize(
    ("response", "header", "ok"),
    [
        (Response(200, "", {"X-Color": "green"}), "X-Color", True),
        (Response(200, "", {"x-color": "green "}), "X-COLOR", True),
        (Response(200, "", {"X-Color": "blue"}), "X-Color", False),
        (Response(200, "", {}), "X-Color", False),
        (Response(200, "", {}), None, True),
        (Response(502, "", {"X-Color": "green"}), "X-Color", False),
    ],
)
def test_color_answer(response, header, ok):
    assert probe.color_answer(200, header, "green")(response) is ok


def test_excerpt_truncates():
    assert probe.excerpt("x" * 500).endswith("...(truncated)")
    assert len(probe.excerpt("x" * 500)) < 250
    assert Response(None, error="refused").describe() == "no answer (refused)"


# ---------------------------------------------------------------- nginx commands and URLs


@pytest.mark.parametrize(
    ("overrides", "test_argv", "reload_argv"),
    [
        ({}, ["nginx", "-t", "-q"], ["nginx", "-s", "reload"]),
        (
            {"nginx_binary": "/usr/sbin/nginx", "nginx_prefix": "/srv/n", "nginx_conf": "/srv/n/nginx.conf"},
            ["/usr/sbin/nginx", "-p", "/srv/n", "-c", "/srv/n/nginx.conf", "-t", "-q"],
            ["/usr/sbin/nginx", "-p", "/srv/n", "-c", "/srv/n/nginx.conf", "-s", "reload"],
        ),
        (
            {"nginx_test_cmd": ["nginx", "-t"], "nginx_reload_cmd": ["systemctl", "reload", "nginx"]},
            ["nginx", "-t"],
            ["systemctl", "reload", "nginx"],
        ),
    ],
)
def test_nginx_argv(overrides, test_argv, reload_argv):
    filled = validate_params(params(**overrides))
    assert core.nginx_test_argv(filled) == test_argv
    assert core.nginx_reload_argv(filled) == reload_argv


@pytest.mark.parametrize(
    ("overrides", "url"),
    [
        ({}, "http://127.0.0.1:8002/health"),
        ({"health_path": "ready"}, "http://127.0.0.1:8002/ready"),
        ({"health_url": "https://{host}:{port}/up?c={color}"}, "https://127.0.0.1:8002/up?c=green"),
    ],
)
def test_health_url_for(overrides, url):
    assert core.health_url_for(validate_params(params(**overrides)), "green") == url


# ---------------------------------------------------------------- the whole switch, with fakes


class FakeNginx:
    """Records the commands; fails the ones named in `fail` with rc 1 and an nginx-like stderr."""

    def __init__(self, fail=()):
        self.calls = []
        self.fail = set(fail)

    def __call__(self, argv):
        self.calls.append(argv)
        kind = "test" if "-t" in argv else "reload"
        if kind in self.fail:
            return 1, "", f'nginx: [emerg] {kind} broke in "{argv[0]}"'
        return 0, "", ""

    @property
    def kinds(self):
        return ["test" if "-t" in argv else "reload" for argv in self.calls]


@pytest.fixture
def site(tmp_path):
    """Upstream file pointing at blue, state saying blue."""
    up = tmp_path / "shop_upstream.conf"
    state = tmp_path / "state" / "shop.json"
    up.write_text(render_upstream("shop", "blue", UPSTREAMS["blue"]))
    state.parent.mkdir()
    state.write_text(core.dump_state(core.build_state("shop", "blue", None, UPSTREAMS["blue"])))

    def run_switch(color, statuses=(200,), nginx=None, check_mode=False, **overrides):
        clock = FakeClock()
        fetch = FakeFetch(statuses)
        nginx = nginx or FakeNginx()
        p = params(color=color, upstream_file=str(up), state_file=str(state), health_interval=1, **overrides)
        result = core.switch(p, nginx, check_mode, fetch=fetch, clock=clock, sleep=clock.sleep)
        return result, fetch, nginx

    def files():
        return tuple(p.read_bytes() if p.exists() else None for p in (up, state))

    return {"up": up, "state": state, "switch": run_switch, "files": files}


def test_switch_writes_tests_reloads_records(site):
    result, fetch, nginx = site["switch"]("green")
    assert (result["changed"], result["switched"], result["previous"], result["active"]) == (
        True,
        True,
        "blue",
        "green",
    )
    assert result["health_checks"] == 3
    assert fetch.urls == ["http://127.0.0.1:8002/health"] * 3
    assert nginx.kinds == ["test", "reload"]
    assert "server 127.0.0.1:8002;" in site["up"].read_text()
    state = json.loads(site["state"].read_text())
    assert (state["active"], state["previous"], state["upstream"]) == ("green", "blue", "127.0.0.1:8002")
    assert result["diff"]["before"] != result["diff"]["after"]


def test_switch_already_active_does_nothing(site):
    before = site["files"]()
    result, fetch, nginx = site["switch"]("blue")
    assert (result["changed"], result["switched"], result["health_checks"]) == (False, False, 0)
    assert fetch.urls == []
    assert nginx.calls == []
    assert site["files"]() == before


def test_switch_check_mode_checks_health_and_writes_nothing(site):
    before = site["files"]()
    result, nginx = site["switch"]("green", check_mode=True)[0::2]
    assert (result["changed"], result["switched"], result["health_checks"]) == (True, True, 3)
    assert nginx.calls == []
    assert site["files"]() == before
    assert not (site["state"].parent / "shop.json.lock").exists()


@pytest.mark.parametrize("check_mode", [False, True])
def test_switch_unhealthy_changes_nothing(site, check_mode):
    before = site["files"]()
    with pytest.raises(BlueGreenError) as err:
        site["switch"]("green", statuses=[200, 200, 503], health_timeout=5, check_mode=check_mode)
    assert "status 503" in err.value.msg
    assert "body 503" in err.value.msg
    assert "Nothing was changed" in err.value.msg
    assert err.value.details["health"]["last_status"] == 503
    assert (err.value.details["active"], err.value.details["switched"]) == ("blue", False)
    assert site["files"]() == before


@pytest.mark.parametrize(("fail", "calls"), [(("test",), ["test"]), (("reload",), ["test", "reload"])])
def test_switch_nginx_failure_restores_file(site, fail, calls):
    before = site["files"]()
    nginx = FakeNginx(fail=fail)
    with pytest.raises(BlueGreenError) as err:
        site["switch"]("green", nginx=nginx)
    assert "[emerg]" in err.value.msg
    assert "restored" in err.value.msg
    assert err.value.details["nginx_stderr"].startswith("nginx: [emerg]")
    assert nginx.kinds == calls
    assert site["files"]() == before


def test_switch_nginx_test_failure_removes_a_new_file(site):
    site["up"].unlink()
    site["state"].unlink()
    with pytest.raises(BlueGreenError):
        site["switch"]("green", nginx=FakeNginx(fail=("test",)))
    assert site["files"]() == (None, None)


def test_switch_missing_nginx_binary_restores_file(site):
    before = site["files"]()

    def missing(argv):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(BlueGreenError, match="cannot run nginx"):
        site["switch"]("green", nginx=missing)
    assert site["files"]() == before


def test_switch_verify_failure_rolls_back_and_reloads(site):
    before = site["files"]()
    nginx = FakeNginx()
    with pytest.raises(BlueGreenError) as err:
        # health answers 200 three times, then verify sees 502 until its timeout
        site["switch"](
            "green", statuses=[200, 200, 200, 502], nginx=nginx, verify_url="http://nginx/", verify_timeout=2
        )
    assert "status 502" in err.value.msg
    assert "restored and nginx reloaded" in err.value.msg
    assert nginx.kinds == ["test", "reload", "reload"]
    assert site["files"]() == before


def test_switch_verify_header_must_name_the_colour(site):
    result, fetch = site["switch"]("green", verify_url="http://nginx/#green", verify_header="X-Color")[:2]
    assert result["verify_checks"] == 1
    assert fetch.urls[-1] == "http://nginx/#green"


def test_switch_verify_host_is_sent_only_to_the_verify_url(site):
    result, fetch = site["switch"]("green", verify_url="http://nginx/#green", verify_host="web.example.test")[:2]
    assert result["verify_checks"] == 1
    assert fetch.headers[-1] == {"Host": "web.example.test"}
    # The colour's own health checks go straight to its port, without the site's name.
    assert all(h is None for h in fetch.headers[:-1])


def test_switch_state_only_out_of_date_reloads_without_rewriting(site):
    """A run that died after writing the file: the file is right, the state is not -> test, reload, record."""
    site["up"].write_text(render_upstream("shop", "green", UPSTREAMS["green"]))
    upstream_before = site["up"].read_bytes()
    result, nginx = site["switch"]("green")[0::2]
    # the state says blue serves (nginx may never have loaded the file): this run moves traffic
    assert (result["changed"], result["switched"], result["previous"]) == (True, True, "blue")
    assert nginx.kinds == ["test", "reload"]
    assert site["up"].read_bytes() == upstream_before
    assert json.loads(site["state"].read_text())["active"] == "green"


def test_switch_corrupt_state_warns_and_uses_upstream_file(site):
    site["state"].write_text("garbage")
    result = site["switch"]("green")[0]
    assert result["previous"] == "blue"
    assert any("unusable" in w for w in result["warnings"])
    assert json.loads(site["state"].read_text())["active"] == "green"


def test_switch_force_skips_health_check(site):
    result, fetch = site["switch"]("green", statuses=[503], force=True)[:2]
    assert result["switched"] is True
    assert fetch.urls == []
    assert any("force" in w for w in result["warnings"])


def test_switch_refuses_missing_upstream_dir(tmp_path):
    p = params(upstream_file=str(tmp_path / "nope" / "up.conf"), state_file=str(tmp_path / "s.json"))
    with pytest.raises(BlueGreenError, match="does not exist"):
        core.switch(p, FakeNginx(), fetch=FakeFetch([200]))


# ---------------------------------------------------------------- the real HTTP client, on loopback


@pytest.fixture
def http_server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if self.path == "/ok" else 503
            body = ("fine" if status == 200 else "down " * 100).encode()
            self.send_response(status)
            self.send_header("X-Color", "green")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_get_answers(http_server):
    ok = probe.http_get(f"{http_server}/ok", 2)
    assert (ok.status, ok.body, ok.headers["x-color"]) == (200, "fine", "green")
    down = probe.http_get(f"{http_server}/down", 2)
    assert down.status == 503
    assert down.body.startswith("down down")


def test_http_get_no_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = probe.http_get(f"http://127.0.0.1:{port}/", 1)
    assert answer.status is None
    assert answer.error
    assert probe.http_get("file:///etc/passwd", 1).status is None
