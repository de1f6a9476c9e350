# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged load test (playbooks/loadtest.yml): the plan, per-stage figures and verdicts. Pure, stdlib only.

The load itself comes from locust (playbooks/files/loadtest/); this module turns the plan into stage windows
and each request sample ``(start offset s, duration ms, HTTP status; 0 = no answer[, 1 when the answer had a
Retry-After header])`` into, per stage: achieved RPS, p50/p95/p99, error ratio (5xx and no answer), 429 count
(and how many of them said when to retry), and pass/fail against the environment's thresholds. The rate-limit
stage passes only when requests over the limit got 429 with Retry-After and no more than the limit got through.
"""

from __future__ import annotations

import math

LOAD = "load"
RATE_LIMIT = "rate_limit"


class LoadTestError(ValueError):
    """Bad plan: the message names the value and what to set."""


def _number(value, name, minimum=0.0, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= minimum:
        raise LoadTestError(f"{name} must be a number above {minimum:g}, got {value!r}")
    if integer and int(value) != value:
        raise LoadTestError(f"{name} must be a whole number, got {value!r}")
    return value


def build_plan(stages, rate_limit=None, path="/", warmup=1.0):
    """Stage windows in run order: the load stages, then the rate-limit burst when one is configured.

    stages: [{"rps": 50, "duration": 60}, ...]; rate_limit: {"rps": 10, "burst": 20, "stage_rps": 50,
    "duration": 10, "path": "/", "url": "https://edge.example.com"} or empty (url: where the limit is, when not
    the load stages' URL, e.g. the edge in front of the app). Each stage gets ``start``/``end`` offsets (seconds
    from the start) and the window its figures are measured over (``warmup`` seconds after the start left out of
    load stages: users are still being spawned then).
    """
    if not isinstance(stages, list) or not stages:
        raise LoadTestError(f"loadtest_stages must be a non-empty list of {{rps, duration}}, got {stages!r}")
    plan, start = [], 0.0
    for i, stage in enumerate(stages, 1):
        if not isinstance(stage, dict) or set(stage) - {"rps", "duration", "path"}:
            raise LoadTestError(f"loadtest_stages[{i - 1}] must be a mapping with rps and duration, got {stage!r}")
        rps = int(_number(stage.get("rps"), f"loadtest_stages[{i - 1}].rps", integer=True))
        duration = float(_number(stage.get("duration"), f"loadtest_stages[{i - 1}].duration"))
        skip = min(warmup, duration / 4)
        plan.append(
            {
                "name": f"{i}: {rps} rps",
                "kind": LOAD,
                "rps": rps,
                "path": stage.get("path") or path,
                "start": start,
                "end": start + duration,
                "measure_from": start + skip,
            }
        )
        start += duration
    if rate_limit:
        if not isinstance(rate_limit, dict):
            raise LoadTestError(
                f"loadtest_rate_limit must be a mapping (rps, burst, stage_rps, duration), got {rate_limit!r}"
            )
        unknown = set(rate_limit) - {"rps", "burst", "stage_rps", "duration", "path", "url"}
        if unknown:
            raise LoadTestError(f"loadtest_rate_limit has unknown keys {sorted(unknown)}")
        limit = float(_number(rate_limit.get("rps"), "loadtest_rate_limit.rps"))
        burst = rate_limit.get("burst", 0)
        if isinstance(burst, bool) or not isinstance(burst, (int, float)) or burst < 0:
            raise LoadTestError(f"loadtest_rate_limit.burst must be a number >= 0, got {burst!r}")
        stage_rps = int(
            _number(rate_limit.get("stage_rps", math.ceil(limit * 3)), "loadtest_rate_limit.stage_rps", integer=True)
        )
        if stage_rps <= limit:
            raise LoadTestError(
                f"loadtest_rate_limit.stage_rps ({stage_rps}) must exceed loadtest_rate_limit.rps ({limit:g}) "
                "to go over the limit"
            )
        duration = float(_number(rate_limit.get("duration", 10), "loadtest_rate_limit.duration"))
        url = rate_limit.get("url") or ""
        if url and (
            not isinstance(url, str) or not url.startswith(("http://", "https://")) or any(c.isspace() for c in url)
        ):
            raise LoadTestError(f"loadtest_rate_limit.url must be an http(s) URL, got {url!r}")
        plan.append(
            {
                "name": f"{len(plan) + 1}: rate limit, {stage_rps} rps over {limit:g}",
                "kind": RATE_LIMIT,
                "rps": stage_rps,
                "path": rate_limit.get("path") or path,
                "url": url.rstrip("/"),
                "limit_rps": limit,
                "limit_burst": float(burst),
                "start": start,
                "end": start + duration,
                # The burst allowance is spent at the start: measure the whole stage.
                "measure_from": start,
            }
        )
    return plan


def stage_at(plan, offset):
    """The index of the stage running at ``offset`` seconds, or None after the last one."""
    for i, stage in enumerate(plan):
        if stage["start"] <= offset < stage["end"]:
            return i
    return None


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(plan, samples, thresholds):
    """Figures and verdict per stage. samples: iterable of (offset s, duration ms, status[, retry_after 0/1]).

    thresholds: {"p95_seconds": 0.3, "error_ratio": 0.01, "min_rate_ratio": 0.9, "limit_tolerance": 0.2}.
    """
    p95_max = float(_number(thresholds.get("p95_seconds"), "loadtest_p95_seconds"))
    error_max = thresholds.get("error_ratio")
    if isinstance(error_max, bool) or not isinstance(error_max, (int, float)) or not 0 <= error_max < 1:
        raise LoadTestError(f"loadtest_error_ratio must be a ratio in [0, 1), got {error_max!r}")
    min_rate = float(thresholds.get("min_rate_ratio", 0.9))
    tolerance = float(thresholds.get("limit_tolerance", 0.2))
    buckets = [[] for _stage in plan]
    for offset, duration_ms, status, *retry_after in samples:
        i = stage_at(plan, offset)
        if i is not None and offset >= plan[i]["measure_from"]:
            buckets[i].append((float(duration_ms), int(status), bool(retry_after and retry_after[0])))
    return [
        _stage_result(stage, got, p95_max=p95_max, error_max=error_max, min_rate=min_rate, tolerance=tolerance)
        for stage, got in zip(plan, buckets, strict=True)
    ]


def _stage_result(stage, got, *, p95_max, error_max, min_rate, tolerance):
    window = stage["end"] - stage["measure_from"]
    total = len(got)
    durations = sorted(d for d, _status, _ra in got)
    errors = sum(1 for _d, status, _ra in got if status == 0 or status >= 500)
    limited = sum(1 for _d, status, _ra in got if status == 429)
    limited_retry_after = sum(1 for _d, status, ra in got if status == 429 and ra)
    p50, p95, p99 = (percentile(durations, f) for f in (0.50, 0.95, 0.99))
    result = {
        "name": stage["name"],
        "kind": stage["kind"],
        "path": stage["path"],
        "target_rps": stage["rps"],
        "requests": total,
        "achieved_rps": total / window if window > 0 else 0.0,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "errors": errors,
        "error_ratio": errors / total if total else None,
        "status_429": limited,
        "status_429_retry_after": limited_retry_after,
    }
    reasons = []
    if total == 0:
        reasons.append("no request was answered or sent")
    elif stage["kind"] == LOAD and result["achieved_rps"] < stage["rps"] * min_rate:
        reasons.append(f"reached {result['achieved_rps']:.1f} of {stage['rps']} rps")
    elif stage["kind"] != LOAD and result["achieved_rps"] <= stage["limit_rps"]:
        # The rate-limit stage has to go over the limit, not to hold its own target: on a busy load generator
        # (hundreds of users opening TLS connections at once) the target is a ceiling, the limit is the bar.
        reasons.append(
            f"reached {result['achieved_rps']:.1f} rps, not over the limit of {stage['limit_rps']:g} rps: "
            "nothing to refuse"
        )
    if stage["kind"] == LOAD:
        if p95 is not None and p95 / 1000 > p95_max:
            reasons.append(f"p95 {p95:.1f} ms over {p95_max * 1000:g} ms")
        if total and errors / total > error_max:
            reasons.append(f"error ratio {errors / total:.2%} over {error_max:.2%}")
    else:
        passed_through = total - limited - errors
        allowed = stage["limit_rps"] * window * (1 + tolerance) + stage["limit_burst"] + 1
        result["limit_rps"] = stage["limit_rps"]
        result["passed_rps"] = passed_through / window if window > 0 else 0.0
        if limited == 0:
            reasons.append(f"no 429 while sending {stage['rps']} rps over a limit of {stage['limit_rps']:g} rps")
        elif limited_retry_after < limited:
            reasons.append(f"{limited - limited_retry_after} of {limited} 429 answers had no Retry-After header")
        if passed_through > allowed:
            reasons.append(
                f"{passed_through} requests got through, the limit allows about {allowed - 1:.0f} "
                f"({stage['limit_rps']:g} rps x {window:g} s + burst {stage['limit_burst']:g})"
            )
        if errors:
            reasons.append(f"{errors} answers were 5xx or none (a limit should answer 429)")
    result["passed"] = not reasons
    result["reasons"] = reasons
    return result


def _ms(value):
    return "n/a" if value is None else f"{value:.1f}"


def render_table(results):
    """The per-stage table, one line per stage (fixed-width text)."""
    header = (
        f"{'stage':<34} {'target':>7} {'achieved':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'429':>6} {'retry-after':>11}  verdict"
    )
    lines = [header]
    for r in results:
        ratio = "n/a" if r["error_ratio"] is None else f"{r['error_ratio']:.2%}"
        verdict = "PASS" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(
            f"{r['name']:<34} {r['target_rps']:>7} {r['achieved_rps']:>9.1f} {_ms(r['p50_ms']):>8} "
            f"{_ms(r['p95_ms']):>8} {_ms(r['p99_ms']):>8} {ratio:>7} {r['status_429']:>6} "
            f"{r['status_429_retry_after']:>11}  {verdict}"
        )
    return lines
