"""Check every rendered rule is covered by its group's promtool test file, and print the counts.

Usage: python3 tests/promtool/rule_coverage.py DIR   (DIR holds <group>.rules.yml and <group>.test.yml)

An alerting rule is covered when one test of its group's file makes it fire (exp_alerts with its severity)
and, later in the same test (same input series), shows it resolved (exp_alerts empty). An alert with
severity "none" (Watchdog, always firing) only needs the firing case. A recording rule is covered when a
promql_expr_test of the same file queries the series it records. Exit 1 lists what is not covered.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """Prometheus duration ('1h30m', '90s', '0') in seconds; ValueError names a bad one."""
    text = str(duration).strip()
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(n) * UNITS[u] for n, u in parts)


def rules_of(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(alert name, severity) pairs and recorded series of one rules file."""
    alerts, records = [], []
    for group in (yaml.safe_load(path.read_text()) or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule:
                alerts.append((rule["alert"], (rule.get("labels") or {}).get("severity", "")))
            else:
                records.append(rule["record"])
    return alerts, records


def cases_of(path: Path) -> tuple[list[list[dict]], list[str]]:
    """Per test: its alert_rule_test cases; and every promql_expr_test expression of the file."""
    doc = yaml.safe_load(path.read_text()) or {}
    alert_tests, exprs = [], []
    for test in doc.get("tests") or []:
        alert_tests.append(test.get("alert_rule_test") or [])
        exprs += [case["expr"] for case in test.get("promql_expr_test") or []]
    return alert_tests, exprs


def covered(alert: tuple[str, str], alert_tests: list[list[dict]]) -> tuple[bool, bool]:
    """(fires, fires then resolves) for one (name, severity) across the tests of a file."""
    name, severity = alert
    fires = resolves = False
    for cases in alert_tests:
        mine = [c for c in cases if c.get("alertname") == name]
        fired_at = [
            seconds(c["eval_time"])
            for c in mine
            if any((e.get("exp_labels") or {}).get("severity") == severity for e in c.get("exp_alerts") or [])
        ]
        if not fired_at:
            continue
        fires = True
        if any(not c.get("exp_alerts") and seconds(c["eval_time"]) > min(fired_at) for c in mine):
            resolves = True
    return fires, resolves


def check(directory: Path) -> int:
    problems: list[str] = []
    n_alerts = n_records = n_tests = n_alert_cases = n_expr_cases = 0
    rule_files = sorted(directory.glob("*.rules.yml"))
    test_files = {p.name[: -len(".test.yml")]: p for p in directory.glob("*.test.yml")}
    for rule_file in rule_files:
        group = rule_file.name[: -len(".rules.yml")]
        alerts, records = rules_of(rule_file)
        n_alerts += len(alerts)
        n_records += len(records)
        test_file = test_files.pop(group, None)
        if test_file is None:
            if alerts or records:
                problems.append(f"{rule_file.name}: no tests/promtool/{group}.test.yml")
            continue
        listed = (yaml.safe_load(test_file.read_text()) or {}).get("rule_files") or []
        if listed != [rule_file.name]:
            problems.append(f"{test_file.name}: rule_files must be [{rule_file.name}], got {listed}")
        alert_tests, exprs = cases_of(test_file)
        n_tests += len(alert_tests)
        n_alert_cases += sum(len(cases) for cases in alert_tests)
        n_expr_cases += len(exprs)
        for alert in sorted(set(alerts)):
            fires, resolves = covered(alert, alert_tests)
            label = f"{group}: alert {alert[0]} (severity {alert[1] or 'unset'})"
            if not fires:
                problems.append(f"{label}: no test makes it fire")
            elif not resolves and alert[1] != "none":
                problems.append(f"{label}: no test shows it resolved after firing")
        for record in sorted(set(records)):
            if not any(re.search(rf"(?<![\w:]){re.escape(record)}(?![\w:])", e) for e in exprs):
                problems.append(f"{group}: recording rule {record}: no promql_expr_test reads it")
    for group in sorted(test_files):
        problems.append(f"{group}.test.yml: no rule template renders {group}.rules.yml")
    print(
        f"rules: {n_alerts + n_records} ({n_alerts} alerting, {n_records} recording) in {len(rule_files)} files; "
        f"tests: {n_tests} ({n_alert_cases} alert cases, {n_expr_cases} expression cases)"
    )
    for problem in problems:
        print(f"NOT COVERED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: coverage.py DIR (rendered <group>.rules.yml and <group>.test.yml)")
    sys.exit(check(Path(sys.argv[1])))
