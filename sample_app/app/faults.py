"""Error hook for alert drills: APP_ERROR_RATIO=0.5 answers that share of requests with 500 (off by default).

A file ERROR_RATIO in the release directory does the same for that release only (APP_ERROR_RATIO wins).

The failures are spread evenly, not drawn at random: of any n requests, floor(n * ratio) or one more fail, so a
burn-rate alert can be driven to a known error ratio. /health and /metrics never fail (the colour stays
healthy and scraped while it serves errors, as a bad release does).
"""

from __future__ import annotations

import threading

ENV = "APP_ERROR_RATIO"
# A file of this name in the release directory sets the ratio for that release only (blue and green share one
# .env): a bad release for the post-switch watch tests. APP_ERROR_RATIO wins when set.
RELEASE_FILE = "ERROR_RATIO"
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
_SCALE = 1_000_000


def parse_ratio(raw: str | None) -> float:
    """The ratio from the environment value; empty means 0. ValueError names the variable and the value."""
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        ratio = float(raw)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r}: give a number between 0 and 1 (e.g. 0.5)") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{ENV}={raw!r}: give a number between 0 and 1 (e.g. 0.5)")
    return ratio


def release_value(release_dir) -> str | None:
    """The raw ratio from <release_dir>/ERROR_RATIO, or None without that file."""
    try:
        return (release_dir / RELEASE_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def configured_ratio(environ: dict, release_dir) -> float:
    """APP_ERROR_RATIO if set (non-empty), else the release's ERROR_RATIO file, else 0."""
    raw = environ.get(ENV)
    if raw is not None and raw.strip():
        return parse_ratio(raw)
    from_file = release_value(release_dir)
    try:
        return parse_ratio(from_file)
    except ValueError:
        raise ValueError(f"{release_dir / RELEASE_FILE} holds {from_file!r}: give a number between 0 and 1") from None


class ErrorInjector:
    """Thread-safe: decides per request whether it answers 500, exactly `ratio` of them over time."""

    def __init__(self, ratio: float = 0.0):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{ENV}={ratio!r}: give a number between 0 and 1 (e.g. 0.5)")
        self.ratio = ratio
        self._per_million = round(ratio * _SCALE)
        self._seen = 0
        self._lock = threading.Lock()

    def should_fail(self, path: str) -> bool:
        if self._per_million == 0 or path in EXEMPT_PATHS:
            return False
        with self._lock:
            n = self._seen
            self._seen += 1
        return (n + 1) * self._per_million // _SCALE > n * self._per_million // _SCALE
