# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import loadtest_stats as lt

THRESHOLDS = {"p95_seconds": 0.3, "error_ratio": 0.01}


def steady(start, end, rps, ms=10.0, status=200, retry_after=None):
    """rps requests a second from start to end, each taking ms (retry_after: 1/0 whether it had Retry-After)."""
    n = int((end - start) * rps)
    if retry_after is None:
        return [(start + i / rps, ms, status) for i in range(n)]
    return [(start + i / rps, ms, status, retry_after) for i in range(n)]


def test_plan_orders_stages_then_the_rate_limit():
    plan = lt.build_plan(
        [{"rps": 50, "duration": 10}, {"rps": 100, "duration": 20}],
        {"rps": 10, "burst": 20, "duration": 5, "path": "/api"},
    )
    assert [(s["kind"], s["rps"], s["start"], s["end"], s["path"]) for s in plan] == [
        ("load", 50, 0.0, 10.0, "/"),
        ("load", 100, 10.0, 30.0, "/"),
        ("rate_limit", 30, 30.0, 35.0, "/api"),
    ]
    assert plan[0]["measure_from"] == 1.0
    assert plan[2]["measure_from"] == 30.0  # the burst allowance is part of what is measured
    assert plan[2]["url"] == ""  # the load stages' URL


def test_rate_limit_stage_can_target_another_url():
    plan = lt.build_plan([{"rps": 5, "duration": 5}], {"rps": 10, "url": "https://127.0.0.1:8443/", "path": "/api"})
    assert (plan[-1]["url"], plan[-1]["path"]) == ("https://127.0.0.1:8443", "/api")


@pytest.mark.parametrize(
    ("stages", "rate_limit", "message"),
    [
        ([], None, "non-empty list"),
        ("50:10", None, "non-empty list"),
        ([{"rps": 50}], None, r"loadtest_stages\[0\].duration must be a number above 0"),
        ([{"rps": 2.5, "duration": 5}], None, "whole number"),
        ([{"rps": True, "duration": 5}], None, "rps must be a number"),
        ([{"rps": 5, "duration": 5, "users": 3}], None, "mapping with rps and duration"),
        ([{"rps": 5, "duration": 5}], {"rps": 10, "stage_rps": 10}, "must exceed"),
        ([{"rps": 5, "duration": 5}], {"rps": 10, "limit": 3}, "unknown keys"),
        ([{"rps": 5, "duration": 5}], {"rps": 10, "burst": -1}, "burst must be"),
        ([{"rps": 5, "duration": 5}], "10r/s", "must be a mapping"),
        ([{"rps": 5, "duration": 5}], {"rps": 10, "url": "edge:443"}, "loadtest_rate_limit.url must be an http"),
        ([{"rps": 5, "duration": 5}], {"rps": 10, "url": "https://a b"}, "loadtest_rate_limit.url must be an http"),
    ],
)
def test_plan_refuses_bad_input(stages, rate_limit, message):
    with pytest.raises(lt.LoadTestError, match=message):
        lt.build_plan(stages, rate_limit)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([5.0], 0.99, 5.0), ([float(v) for v in range(1, 101)], 0.95, 95.0), ([1.0, 2.0], 0.5, 1.0)],
)
def test_percentile_nearest_rank(values, fraction, expected):
    assert lt.percentile(values, fraction) == expected


def test_load_stage_figures_and_pass():
    plan = lt.build_plan([{"rps": 10, "duration": 10}])
    samples = steady(0, 10, 10, ms=20.0)
    samples[50] = (5.0, 250.0, 200)
    (r,) = lt.summarise(plan, samples, THRESHOLDS)
    assert r["requests"] == 90  # the first second (users spawning) is left out
    assert r["achieved_rps"] == pytest.approx(10.0)
    assert (r["p50_ms"], r["p99_ms"]) == (20.0, 250.0)
    assert r["passed"] and r["reasons"] == []


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        (steady(0, 10, 10, ms=400.0), "p95 400.0 ms over 300 ms"),
        (steady(0, 10, 10)[:50] + steady(5, 10, 10, status=502), "error ratio"),
        (steady(0, 10, 10)[:50] + steady(5, 10, 10, status=0), "error ratio"),
        (steady(0, 10, 5), "reached 5.0 of 10 rps"),
        ([], "no request was answered or sent"),
    ],
)
def test_load_stage_fails(samples, reason):
    plan = lt.build_plan([{"rps": 10, "duration": 10}])
    (r,) = lt.summarise(plan, samples, THRESHOLDS)
    assert not r["passed"]
    assert any(reason in text for text in r["reasons"]), r["reasons"]


def _limit_plan():
    return lt.build_plan([{"rps": 1, "duration": 1}], {"rps": 10, "burst": 5, "stage_rps": 40, "duration": 10})


def test_rate_limit_stage_passes_when_the_excess_gets_429():
    ok = steady(1, 11, 10)
    refused = steady(1, 11, 30, status=429, retry_after=1)
    r = lt.summarise(_limit_plan(), ok + refused, THRESHOLDS)[-1]
    assert r["passed"], r["reasons"]
    assert r["status_429"] == 300 and r["passed_rps"] == pytest.approx(10.0)
    assert r["status_429_retry_after"] == 300


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        (steady(1, 11, 40), "no 429 while sending 40 rps over a limit of 10 rps"),
        (steady(1, 11, 10) + steady(1, 11, 30, status=503), "5xx or none (a limit should answer 429)"),
        (
            steady(1, 11, 30) + steady(1, 11, 10, status=429, retry_after=1),
            "requests got through, the limit allows about 125",
        ),
        (steady(1, 11, 10) + steady(1, 11, 30, status=429), "300 of 300 429 answers had no Retry-After header"),
        (steady(1, 11, 8), "reached 8.0 rps, not over the limit of 10 rps"),
        (
            steady(1, 11, 10)
            + steady(1, 11, 20, status=429, retry_after=1)
            + steady(1, 11, 10, status=429, retry_after=0),
            "100 of 300 429 answers had no Retry-After header",
        ),
    ],
)
def test_rate_limit_stage_fails(samples, reason):
    r = lt.summarise(_limit_plan(), samples, THRESHOLDS)[-1]
    assert not r["passed"]
    assert any(reason in text for text in r["reasons"]), r["reasons"]


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"error_ratio": 0.01}, "loadtest_p95_seconds"),
        ({"p95_seconds": 0.3, "error_ratio": 1.5}, "loadtest_error_ratio"),
    ],
)
def test_thresholds_checked(thresholds, message):
    with pytest.raises(lt.LoadTestError, match=message):
        lt.summarise(_limit_plan(), [], thresholds)


def test_table_has_a_line_per_stage():
    plan = lt.build_plan([{"rps": 10, "duration": 10}])
    lines = lt.render_table(lt.summarise(plan, steady(0, 10, 10, ms=400.0), THRESHOLDS))
    assert lines[0].split()[:4] == ["stage", "target", "achieved", "p50"]
    assert "retry-after" in lines[0].split()
    assert lines[1].startswith("1: 10 rps") and "FAIL: p95 400.0 ms over 300 ms" in lines[1]
