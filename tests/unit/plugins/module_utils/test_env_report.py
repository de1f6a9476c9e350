# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.stackops.platform.plugins.module_utils.env_report import (
    EnvReportError,
    comparison_markdown,
    comparison_rows,
    figures_from_answers,
    format_value,
    prometheus_scalar,
)


def vector(*values):
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, v]} for v in values]},
    }


FIGURES = {
    "staging": {"avg_response_seconds": 0.12, "p95_response_seconds": 0.375, "error_ratio": 0.01, "cpu_ratio": 0.3},
    "production": {"avg_response_seconds": 0.15, "p95_response_seconds": 0.45, "error_ratio": 0.005, "cpu_ratio": 0.45},
}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (vector("0.25"), 0.25),
        (vector(), None),
        (vector("NaN"), None),
        (vector("+Inf"), None),
        ({"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}}, 3.0),
    ],
)
def test_prometheus_scalar(answer, expected):
    assert prometheus_scalar(answer) == expected


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"status": "error", "error": "parse error: unexpected character"}, "parse error: unexpected character"),
        (vector("1", "2"), "expected one series"),
        (vector("abc"), "unreadable sample"),
        ("<html>", "did not answer"),
    ],
)
def test_prometheus_scalar_refuses(answer, message):
    with pytest.raises(EnvReportError, match=message):
        prometheus_scalar(answer, "up")


def test_figures_from_answers_groups_by_environment():
    answers = [
        {"item": ["staging", "error_ratio"], "json": vector("0.01")},
        {"item": ["production", "error_ratio"], "json": vector()},
    ]
    assert figures_from_answers(answers) == {"staging": {"error_ratio": 0.01}, "production": {"error_ratio": None}}


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([{"item": ["staging", "error_ratio"], "msg": "Connection refused", "status": -1}], "Connection refused"),
        ([{"item": ["staging", "latency"], "json": vector("1")}], "unknown figure 'latency'"),
        ([{"json": vector("1")}], "looped over"),
        ([{"item": ["staging", "cpu_ratio"], "json": {"status": "error", "error": "bad"}}], r"1 - avg.*\(staging\)"),
    ],
)
def test_figures_from_answers_refuses(answers, message):
    with pytest.raises(EnvReportError, match=message):
        figures_from_answers(answers, {"cpu_ratio": "1 - avg(rate(x[1h]))"})


def test_rows_hold_deltas_production_minus_staging():
    rows = {row["key"]: row for row in comparison_rows(FIGURES, "staging", "production")}
    assert rows["avg_response_seconds"]["delta"] == pytest.approx(0.03)
    assert rows["avg_response_seconds"]["relative"] == pytest.approx(0.25)
    assert rows["error_ratio"]["delta"] == pytest.approx(-0.005)
    assert rows["error_ratio"]["relative"] == pytest.approx(-0.5)


def test_rows_without_a_baseline_have_no_relative_delta():
    figures = {"staging": {"error_ratio": 0.0}, "production": {"error_ratio": 0.02, "cpu_ratio": 0.5}}
    rows = {row["key"]: row for row in comparison_rows(figures, "staging", "production")}
    assert rows["error_ratio"]["delta"] == pytest.approx(0.02)
    assert rows["error_ratio"]["relative"] is None
    assert rows["cpu_ratio"]["delta"] is None
    assert rows["avg_response_seconds"]["baseline"] is None


@pytest.mark.parametrize(
    ("figures", "message"),
    [
        ({"staging": {}}, "no figures for environment 'production'"),
        ({"staging": {}, "production": {"cpu": 1}}, r"unknown figure\(s\) \['cpu'\]"),
        ({"staging": {}, "production": {"cpu_ratio": "high"}}, "cpu_ratio of 'production' is 'high'"),
    ],
)
def test_rows_refuse_bad_figures(figures, message):
    with pytest.raises(EnvReportError, match=message):
        comparison_rows(figures, "staging", "production")


@pytest.mark.parametrize(
    ("value", "unit", "signed", "text"),
    [
        (0.12, "ms", False, "120.0 ms"),
        (0.03, "ms", True, "+30.0 ms"),
        (-0.0004, "ms", True, "-0.4 ms"),
        (0.01, "percent", False, "1.00 %"),
        (-0.005, "percent", True, "-0.50 pp"),
        (None, "ms", True, "n/a"),
    ],
)
def test_format_value(value, unit, signed, text):
    assert format_value(value, unit, signed) == text


def test_markdown_table():
    text = comparison_markdown(FIGURES, "staging", "production", window="7d", end="2026-11-01T00:00:00Z")
    lines = text.splitlines()
    assert lines[0] == "# Staging vs Production"
    assert "Window: 7d ending 2026-11-01T00:00:00Z." in lines
    assert lines[-4:] == [
        "| Average response time | 120.0 ms | 150.0 ms | +30.0 ms | +25.0 % |",
        "| p95 response time | 375.0 ms | 450.0 ms | +75.0 ms | +20.0 % |",
        "| 5xx ratio | 1.00 % | 0.50 % | -0.50 pp | -50.0 % |",
        "| Average CPU | 30.00 % | 45.00 % | +15.00 pp | +50.0 % |",
    ]
