"""Health logic, independent of the real backends (checks are callables) so it is testable with fakes."""

from __future__ import annotations

from collections.abc import Callable


def run_check(check: Callable[[], None] | None) -> str:
    if check is None:
        return "not configured"
    try:
        check()
    except Exception as exc:  # any backend failure makes the check fail, with its reason
        return f"error: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return "ok"


def evaluate(db_check, redis_check, *, version: str, color: str, forced_down: bool = False) -> tuple[int, dict]:
    """(HTTP status, body): 200 only when db and redis both answer and the release is not marked bad."""
    body = {"status": "ok", "db": run_check(db_check), "redis": run_check(redis_check)}
    body.update(version=version, color=color)
    failed = [name for name in ("db", "redis") if body[name] != "ok"]
    if forced_down:
        failed.append("forced")
        body["forced"] = "APP_FAIL_HEALTH=1 or FAIL_HEALTH file present"
    if failed:
        body["status"] = "fail"
        body["failed"] = failed
        return 503, body
    return 200, body
