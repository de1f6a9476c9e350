"""playbooks/report.yml against two Prometheus test instances standing in for staging and production.

Each test instance serves deterministic samples backfilled with promtool (counters growing at fixed rates over a
fixed hour), so the table's figures and deltas are known exactly. The URLs come from throwaway inventories
(stackops_prometheus_url in <env>/group_vars/all/main.yml), as they do from inventories/ in real use.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prom_helpers import PROMETHEUS, PROMTOOL, backfilled_prometheus, need

REPO_ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = str(REPO_ROOT / "playbooks" / "report.yml")
END = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
STEP = 15  # seconds between samples
WINDOW = 3600

# Per 15 s step: requests (2xx, 5xx), duration sum, cumulative buckets, idle/user CPU seconds per cpu.
STAGING = {"ok": 198, "err": 2, "sum": 24.0, "buckets": [80, 180, 200, 200], "idle": 10.5, "user": 4.5}
PRODUCTION = {"ok": 398, "err": 2, "sum": 60.0, "buckets": [200, 340, 390, 400], "idle": 8.25, "user": 6.75}
BOUNDS = ["0.1", "0.25", "0.5", "1.0"]

# Worked out by hand from the rates above (the histogram_quantile interpolation included):
#   staging:    avg 24/200 = 120 ms; p95 rank 190 in (0.25, 0.5]: 0.25 + 0.25*10/20 = 375 ms; 2/200 = 1 %;
#               CPU 1 - 10.5/15 = 30 %
#   production: avg 60/400 = 150 ms; p95 rank 380 in (0.25, 0.5]: 0.25 + 0.25*40/50 = 450 ms; 2/400 = 0.5 %;
#               CPU 1 - 8.25/15 = 45 %
EXPECTED_TABLE = [
    "| Metric | Staging | Production | Delta | Delta % |",
    "|---|---:|---:|---:|---:|",
    "| Average response time | 120.0 ms | 150.0 ms | +30.0 ms | +25.0 % |",
    "| p95 response time | 375.0 ms | 450.0 ms | +75.0 ms | +20.0 % |",
    "| 5xx ratio | 1.00 % | 0.50 % | -0.50 pp | -50.0 % |",
    "| Average CPU | 30.00 % | 45.00 % | +15.00 pp | +50.0 % |",
]


def openmetrics(rates: dict) -> str:
    """Samples from 70 min before END to 10 min after, every STEP seconds, growing at `rates` per step."""
    end = int(END.timestamp())
    times = list(range(end - WINDOW - 600, end + 601, STEP))
    api = 'job="api",instance="app-1:8001"'
    lines = ["# TYPE http_requests counter"]
    for status, key in (("200", "ok"), ("500", "err")):
        for i, t in enumerate(times):
            lines.append(
                f'http_requests_total{{{api},method="GET",path="/",status="{status}"}} {1000 + i * rates[key]} {t}'
            )
    # Another job's failures: the report's selector (job="api") must leave them out.
    for i, t in enumerate(times):
        lines.append(f'http_requests_total{{job="canary",instance="c:1",status="503"}} {i * 50} {t}')
    lines.append("# TYPE http_request_duration_seconds histogram")
    for i, t in enumerate(times):
        for bound, count in zip(BOUNDS, rates["buckets"], strict=True):
            lines.append(f'http_request_duration_seconds_bucket{{{api},le="{bound}"}} {i * count} {t}')
        total = i * (rates["ok"] + rates["err"])
        lines.append(f'http_request_duration_seconds_bucket{{{api},le="+Inf"}} {total} {t}')
        lines.append(f"http_request_duration_seconds_sum{{{api}}} {i * rates['sum']} {t}")
        lines.append(f"http_request_duration_seconds_count{{{api}}} {total} {t}")
    lines.append("# TYPE node_cpu_seconds counter")
    for cpu in ("0", "1"):
        for mode in ("idle", "user"):
            for i, t in enumerate(times):
                value = 50000 + i * rates[mode]
                lines.append(
                    f'node_cpu_seconds_total{{job="node",instance="app-1:9100",cpu="{cpu}",mode="{mode}"}} {value} {t}'
                )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def environments(tmp_path_factory):
    """Two Prometheus test instances (staging, production) and an inventory dir naming them."""
    need(PROMETHEUS, PROMTOOL)
    root = tmp_path_factory.mktemp("report")
    with contextlib.ExitStack() as stack:
        urls = {
            env: stack.enter_context(
                backfilled_prometheus(root / f"prometheus-test-instance-{env}", openmetrics(rates))
            )
            for env, rates in (("staging", STAGING), ("production", PRODUCTION))
        }
        inventories = root / "inventories"
        for env, url in urls.items():
            group_vars = inventories / env / "group_vars" / "all"
            group_vars.mkdir(parents=True)
            (group_vars / "main.yml").write_text(f"---\nstackops_environment: {env}\nstackops_prometheus_url: {url}/\n")
        yield {"urls": urls, "inventories": inventories}


def _vars(environments, output, **extra):
    return {
        "report_inventory_dir": str(environments["inventories"]),
        "report_window": "1h",
        "report_end": END.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "report_output": str(output),
        **extra,
    }


def test_report_prints_and_writes_the_comparison(playbook, environments, tmp_path):
    output = tmp_path / "out" / "staging-vs-production.md"
    run = playbook(PLAYBOOK, extravars=_vars(environments, output))
    assert run.failed() == 0, run.results

    shown = run.task("Show the comparison")["msg"]
    print("\n".join(shown))
    written = output.read_text()
    print(written)
    table = [line for line in written.splitlines() if line.startswith("|")]
    assert table == EXPECTED_TABLE
    assert [line for line in shown if line.startswith("|")] == EXPECTED_TABLE
    assert "Window: 1h ending 2026-11-01T01:00:00Z." in written
    assert f"Staging Prometheus: {environments['urls']['staging']}" in written
    assert output.stat().st_mode & 0o777 == 0o644

    again = playbook(PLAYBOOK, extravars=_vars(environments, output))
    assert again.failed() == 0 and again.changed() == 0, again.results


def test_report_marks_missing_data_as_na(playbook, environments, tmp_path):
    """A window with no samples in it gives n/a, never a zero that looks measured."""
    output = tmp_path / "empty.md"
    run = playbook(PLAYBOOK, extravars=_vars(environments, output, report_end="2026-10-01T00:00:00Z"))
    assert run.failed() == 0, run.results
    rows = [line for line in output.read_text().splitlines() if line.startswith("| Average")]
    assert rows == ["| Average response time | n/a | n/a | n/a | n/a |", "| Average CPU | n/a | n/a | n/a | n/a |"]


@pytest.mark.parametrize(
    ("extra", "task", "needle"),
    [
        ({"report_window": "a week"}, "Check the report settings", "report_window to a Prometheus duration"),
        ({"report_environments": ["staging"]}, "Check the report settings", "two environments"),
        (
            {"report_environments": ["staging", "qa"]},
            "Check each environment's Prometheus URL",
            "qa/group_vars/all/main.yml",
        ),
        ({"report_api_selector": 'job="api"}'}, "Work out the figures and the table", "Prometheus did not answer"),
    ],
)
def test_report_refuses_bad_input(playbook, environments, tmp_path, extra, task, needle):
    output = tmp_path / "never.md"
    run = playbook(PLAYBOOK, extravars=_vars(environments, output, **extra))
    assert run.failed() == 1
    assert run.task_status(task) == "runner_on_failed"
    assert needle in str(run.task(task)), run.task(task)
    assert not output.exists()
