"""APP_ERROR_RATIO: off by default, an exact share of requests answers 500, /health and /metrics never fail."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from app import config, faults
from test_server import make, request


def test_off_by_default():
    assert config.load({}).error_ratio == 0.0
    injector = faults.ErrorInjector()
    assert not any(injector.should_fail("/") for _attempt in range(1000))


@pytest.mark.parametrize(("raw", "ratio"), [("0.5", 0.5), ("0", 0.0), ("1", 1.0), ("", 0.0), (" 0.25 ", 0.25)])
def test_parse_ratio(raw, ratio):
    assert config.load({"APP_ERROR_RATIO": raw}).error_ratio == ratio


@pytest.mark.parametrize("raw", ["abc", "-0.1", "1.5", "nan%"])
def test_bad_ratio_names_the_variable(raw):
    with pytest.raises(ValueError, match=f"APP_ERROR_RATIO={raw!r}"):
        config.load({"APP_ERROR_RATIO": raw})


@pytest.mark.parametrize(("ratio", "n", "failed"), [(0.5, 100, 50), (0.1, 1000, 100), (0.25, 8, 2), (1.0, 7, 7)])
def test_exact_share_fails(ratio, n, failed):
    injector = faults.ErrorInjector(ratio)
    assert sum(injector.should_fail("/items") for _attempt in range(n)) == failed


def test_exact_share_under_threads():
    injector = faults.ErrorInjector(0.2)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: injector.should_fail("/"), range(1000)))
    assert sum(results) == 200


def test_health_and_metrics_never_fail():
    injector = faults.ErrorInjector(1.0)
    assert not injector.should_fail("/health")
    assert not injector.should_fail("/metrics")
    assert injector.should_fail("/")


def test_server_answers_500_and_counts_it(tmp_path):
    srv, thread = make(tmp_path, error_ratio=0.5)
    try:
        statuses = [request(srv, "GET", "/")[0].status for _attempt in range(10)]
        assert sorted(statuses) == [200] * 5 + [500] * 5
        # Every second request fails: the 11th answers, the 12th fails and says why.
        assert request(srv, "GET", "/")[0].status == 200
        resp, body = request(srv, "GET", "/")
        assert resp.status == 500
        assert json.loads(body)["error"] == "injected by APP_ERROR_RATIO"
        assert all(request(srv, "GET", "/health")[0].status == 200 for _attempt in range(4))
        _resp, text = request(srv, "GET", "/metrics")
        assert 'http_requests_total{method="GET",path="/",status="500"} ' in text.decode()
        assert 'path="/health",status="500"' not in text.decode()
    finally:
        srv.graceful_stop()
        srv.server_close()
        thread.join(5)


def test_release_file_sets_the_ratio_for_that_release_only(tmp_path):
    assert faults.configured_ratio({}, tmp_path) == 0.0
    (tmp_path / "ERROR_RATIO").write_text("0.1\n")
    assert faults.configured_ratio({}, tmp_path) == 0.1
    assert faults.configured_ratio({"APP_ERROR_RATIO": ""}, tmp_path) == 0.1
    # The environment wins.
    assert faults.configured_ratio({"APP_ERROR_RATIO": "0.5"}, tmp_path) == 0.5


def test_bad_release_file_names_the_file(tmp_path):
    (tmp_path / "ERROR_RATIO").write_text("lots\n")
    with pytest.raises(ValueError, match="ERROR_RATIO holds 'lots'"):
        faults.configured_ratio({}, tmp_path)
