# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staging-vs-production comparison (playbooks/report.yml): Prometheus answers in, a Markdown table out.

Pure functions, stdlib only: ``prometheus_scalar`` reads one instant-query answer, ``comparison_rows``
works out the deltas, ``comparison_markdown`` renders them. A figure Prometheus has no data for (empty
result, NaN from 0/0) is ``None`` and prints as ``n/a``; it never becomes a zero that looks like a measurement.
"""

from __future__ import annotations

import math

# key -> (row title, unit). "ms": the figure is in seconds, shown in milliseconds;
# "percent": the figure is a ratio (0..1), shown in percent, its delta in percentage points.
METRICS = (
    ("avg_response_seconds", "Average response time", "ms"),
    ("p95_response_seconds", "p95 response time", "ms"),
    ("error_ratio", "5xx ratio", "percent"),
    ("cpu_ratio", "Average CPU", "percent"),
)
METRIC_KEYS = tuple(key for key, _title, _unit in METRICS)


class EnvReportError(ValueError):
    """Bad input: the message names the value and what to do."""


def prometheus_scalar(answer, query=""):
    """The single value of a Prometheus instant-query answer (the JSON body), or None when there is no data."""
    where = f" for query {query!r}" if query else ""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error", answer) if isinstance(answer, dict) else answer
        raise EnvReportError(f"Prometheus did not answer the query{where}: {error}")
    data = answer.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar":
        result = [{"value": result}]
    if not result:
        return None
    if len(result) > 1:
        labels = [series.get("metric", {}) for series in result]
        raise EnvReportError(f"expected one series{where}, got {len(result)}: {labels}; aggregate the expression")
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise EnvReportError(f"unreadable sample{where}: {result[0]!r} ({exc})") from None
    return value if math.isfinite(value) else None


def figures_from_answers(answers, queries=None):
    """``{env: {figure: value}}`` from the loop results of the report's queries.

    ``answers`` are ansible.builtin.uri results looped over ``[env, figure]`` pairs (``item`` and ``json``);
    ``queries`` (figure -> PromQL) only names the query in error messages.
    """
    figures = {}
    for answer in answers:
        try:
            env, key = answer["item"]
        except (KeyError, TypeError, ValueError):
            raise EnvReportError(f"expected a uri result looped over [environment, figure], got {answer!r}") from None
        if key not in METRIC_KEYS:
            raise EnvReportError(f"unknown figure {key!r}; known: {list(METRIC_KEYS)}")
        body = answer.get("json")
        if body is None:
            body = {"status": "error", "error": answer.get("msg") or f"no JSON answer (HTTP {answer.get('status')})"}
        query = (queries or {}).get(key, key)
        figures.setdefault(env, {})[key] = prometheus_scalar(body, f"{query} ({env})")
    return figures


def _check_figures(figures, env):
    if not isinstance(figures, dict) or env not in figures:
        raise EnvReportError(f"no figures for environment {env!r}; environments given: {sorted(figures or {})}")
    values = figures[env]
    unknown = sorted(set(values) - set(METRIC_KEYS))
    if unknown:
        raise EnvReportError(f"unknown figure(s) {unknown} for {env!r}; known: {list(METRIC_KEYS)}")
    for key in METRIC_KEYS:
        value = values.get(key)
        if value is not None and not isinstance(value, (int, float)):
            raise EnvReportError(f"figure {key} of {env!r} is {value!r}, expected a number or None")
    return values


def comparison_rows(figures, baseline, candidate):
    """One dict per metric: title, unit, the two values, the absolute and the relative delta (candidate - baseline)."""
    base = _check_figures(figures, baseline)
    cand = _check_figures(figures, candidate)
    rows = []
    for key, title, unit in METRICS:
        b, c = base.get(key), cand.get(key)
        delta = None if b is None or c is None else c - b
        relative = None if delta is None or b == 0 else delta / b
        rows.append(
            {
                "key": key,
                "title": title,
                "unit": unit,
                "baseline": b,
                "candidate": c,
                "delta": delta,
                "relative": relative,
            }
        )
    return rows


def format_value(value, unit, signed=False):
    """120.0 ms / 1.00 % ; signed deltas: +30.0 ms / -0.50 pp."""
    if value is None:
        return "n/a"
    sign = "+" if signed else ""
    if unit == "ms":
        return f"{value * 1000:{sign}.1f} ms"
    scaled = value * 100
    if signed:
        return f"{scaled:+.2f} pp"
    return f"{scaled:.2f} %"


def format_relative(relative):
    return "n/a" if relative is None else f"{relative * 100:+.1f} %"


def comparison_markdown(figures, baseline, candidate, *, window="", end="", sources=None):
    """The comparison as a Markdown document (a title line, what was compared, the table)."""
    rows = comparison_rows(figures, baseline, candidate)
    lines = [f"# {baseline.capitalize()} vs {candidate.capitalize()}", ""]
    if window or end:
        lines.append(f"Window: {window or '?'} ending {end or 'now'}.")
    for env in (baseline, candidate):
        if sources and sources.get(env):
            lines.append(f"{env.capitalize()} Prometheus: {sources[env]}")
    if len(lines) > 2:
        lines.append("")
    lines.append(f"| Metric | {baseline.capitalize()} | {candidate.capitalize()} | Delta | Delta % |")
    lines.append("|---|---:|---:|---:|---:|")
    for row in rows:
        lines.append(
            "| {title} | {b} | {c} | {d} | {r} |".format(
                title=row["title"],
                b=format_value(row["baseline"], row["unit"]),
                c=format_value(row["candidate"], row["unit"]),
                d=format_value(row["delta"], row["unit"], signed=True),
                r=format_relative(row["relative"]),
            )
        )
    return "\n".join(lines) + "\n"
