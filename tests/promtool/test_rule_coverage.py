"""rule_coverage.py: a rule without a firing and a resolving case, or without a test file, fails the stage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rule_coverage

RULES = {
    "groups": [
        {
            "name": "g",
            "rules": [
                {"alert": "Down", "expr": "up == 0", "labels": {"severity": "critical"}},
                {"alert": "Watchdog", "expr": "vector(1)", "labels": {"severity": "none"}},
                {"record": "job:up:sum", "expr": "sum by (job) (up)"},
            ],
        }
    ]
}


def make_doc(down_cases, watchdog_fires=True, expr="job:up:sum"):
    cases = list(down_cases)
    if watchdog_fires:
        cases.append({"eval_time": "1m", "alertname": "Watchdog", "exp_alerts": [{"exp_labels": {"severity": "none"}}]})
    return {
        "rule_files": ["g.rules.yml"],
        "tests": [{"alert_rule_test": cases, "promql_expr_test": [{"expr": expr, "eval_time": "1m"}]}],
    }


FIRES = {"eval_time": "2m", "alertname": "Down", "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}
RESOLVED = {"eval_time": "5m", "alertname": "Down", "exp_alerts": []}
BEFORE = {"eval_time": "1m", "alertname": "Down", "exp_alerts": []}


def run(tmp_path, doc, capsys):
    (tmp_path / "g.rules.yml").write_text(yaml.safe_dump(RULES))
    if doc is not None:
        (tmp_path / "g.test.yml").write_text(yaml.safe_dump(doc))
    rc = rule_coverage.check(tmp_path)
    return rc, capsys.readouterr().out


def test_fully_covered_passes_and_counts(tmp_path, capsys):
    rc, out = run(tmp_path, make_doc([FIRES, RESOLVED]), capsys)
    assert rc == 0, out
    assert "rules: 3 (2 alerting, 1 recording) in 1 files; tests: 1 (3 alert cases, 1 expression cases)" in out


@pytest.mark.parametrize(
    ("doc", "missing"),
    [
        (make_doc([RESOLVED]), "alert Down (severity critical): no test makes it fire"),
        (make_doc([FIRES]), "alert Down (severity critical): no test shows it resolved"),
        # "Not firing" before it fired is no resolution.
        (make_doc([BEFORE, FIRES]), "alert Down (severity critical): no test shows it resolved"),
        (make_doc([FIRES, RESOLVED], watchdog_fires=False), "alert Watchdog (severity none): no test makes it fire"),
        (make_doc([FIRES, RESOLVED], expr="job:up:sum_other"), "recording rule job:up:sum: no promql_expr_test"),
        (None, "g.rules.yml: no tests/promtool/g.test.yml"),
    ],
)
def test_uncovered_rule_fails(tmp_path, capsys, doc, missing):
    rc, out = run(tmp_path, doc, capsys)
    assert rc == 1
    assert missing in out, out


def test_firing_with_another_severity_does_not_count(tmp_path, capsys):
    wrong = {"eval_time": "2m", "alertname": "Down", "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}
    rc, out = run(tmp_path, make_doc([wrong, RESOLVED]), capsys)
    assert rc == 1
    assert "no test makes it fire" in out


@pytest.mark.parametrize(("text", "value"), [("90s", 90), ("1h30m", 5400), ("1d2h", 93600), ("0", 0)])
def test_durations(text, value):
    assert rule_coverage.seconds(text) == value


@pytest.mark.parametrize("text", ["", "5", "1x", "h1"])
def test_bad_duration_is_named(text):
    with pytest.raises(ValueError, match="not a duration"):
        rule_coverage.seconds(text)
