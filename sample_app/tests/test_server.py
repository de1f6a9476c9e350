"""The real HTTP server on 127.0.0.1 with fake db/redis checks: routes, request ids, metrics, graceful stop."""

import http.client
import json
import threading
import time
from dataclasses import replace

import pytest
from app import config, server


def make(tmp_path, checks=None, **overrides):
    settings = replace(
        config.load({"APP_COLOR": "blue"}, host="127.0.0.1", port=0), release_dir=tmp_path, version="9.9.9", **overrides
    )
    srv = server.AppServer(("127.0.0.1", 0), settings, checks=checks or (lambda: None, lambda: None))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return srv, thread


@pytest.fixture
def app(tmp_path):
    srv, thread = make(tmp_path)
    yield srv
    srv.graceful_stop()
    srv.close_idle_connections()
    srv.server_close()
    thread.join(5)


def request(srv, method, path, headers=None, body=None, *, conn=None):
    conn = conn or http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp, resp.read()


def test_index(app):
    resp, body = request(app, "GET", "/")
    data = json.loads(body)
    assert resp.status == 200 and data["version"] == "9.9.9" and data["color"] == "blue" and data["hostname"]


def test_request_id_echoed_or_generated(app):
    resp, _body = request(app, "GET", "/", {"X-Request-ID": "given-123"})
    assert resp.headers["X-Request-ID"] == "given-123"
    resp, _body = request(app, "GET", "/")
    assert len(resp.headers["X-Request-ID"]) == 32


def test_request_logged_with_id(app, caplog):
    caplog.set_level("INFO", logger="app.server")
    request(app, "GET", "/health", {"X-Request-ID": "log-me-42"})
    time.sleep(0.1)
    assert any("request_id=log-me-42" in r.getMessage() and "status=200" in r.getMessage() for r in caplog.records)


def test_health_and_fail_hook(app, tmp_path):
    resp, body = request(app, "GET", "/health")
    assert resp.status == 200 and json.loads(body)["status"] == "ok"
    (tmp_path / "FAIL_HEALTH").touch()
    resp, body = request(app, "GET", "/health")
    assert resp.status == 503 and json.loads(body)["failed"] == ["forced"]


def test_health_reports_failed_backend(tmp_path):
    def broken():
        raise OSError("redis down")

    srv, thread = make(tmp_path, checks=(lambda: None, broken))
    try:
        resp, body = request(srv, "GET", "/health")
        data = json.loads(body)
        assert resp.status == 503 and data["db"] == "ok" and "redis down" in data["redis"]
    finally:
        srv.graceful_stop()
        srv.server_close()
        thread.join(5)


def test_metrics_count_requests(app):
    request(app, "GET", "/")
    request(app, "GET", "/nope")
    resp, body = request(app, "GET", "/metrics")
    text = body.decode()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'http_requests_total{method="GET",path="/",status="200"} 1' in text
    assert 'http_requests_total{method="GET",path="other",status="404"} 1' in text
    assert 'app_info{version="9.9.9",color="blue"} 1' in text
    assert "http_request_duration_seconds_count 2" in text


def test_bad_input(app):
    assert request(app, "POST", "/items", {"Content-Type": "application/json"}, b"{not json")[0].status == 400
    assert request(app, "POST", "/items", {"Content-Type": "application/json"}, b'{"name": ""}')[0].status == 400
    assert request(app, "POST", "/health")[0].status == 405


def test_keepalive_then_graceful_stop(tmp_path):
    """An idle keep-alive connection does not hold the shutdown; an in-flight request completes."""
    release = {"go": threading.Event()}

    def slow_db():
        release["go"].wait(5)

    srv, thread = make(tmp_path, checks=(slow_db, lambda: None))
    port = srv.server_address[1]
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    release["go"].set()
    assert request(srv, "GET", "/", conn=idle)[0].status == 200  # now idle, kept alive
    release["go"].clear()
    result = {}

    def inflight():
        result["resp"] = request(srv, "GET", "/health")

    t = threading.Thread(target=inflight)
    t.start()
    time.sleep(0.2)  # the health request is now waiting in slow_db
    started = time.monotonic()
    srv.graceful_stop()
    thread.join(5)
    closed = srv.close_idle_connections()
    release["go"].set()
    srv.server_close()  # joins the in-flight handler
    t.join(5)
    assert result["resp"][0].status == 200
    assert closed >= 1
    assert time.monotonic() - started < 5
