# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP probes of stackops.platform's switches and health checks: one GET that never raises, and polling until N
answers in a row are good. Standard library only (urllib); callers pass in fakes for the fetcher, the clock and sleep.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

MAX_BODY = 4096
BODY_EXCERPT = 200
MAX_REQUEST_TIMEOUT = 5.0
MIN_REQUEST_TIMEOUT = 0.5


class Response:
    """One HTTP answer: status is None when no answer came (error says why)."""

    def __init__(self, status, body="", headers=None, error=None):
        self.status = status
        self.body = body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.error = error

    def describe(self):
        if self.status is None:
            return f"no answer ({self.error})"
        return f"status {self.status}, body {excerpt(self.body)!r}"


class WaitResult:
    """Outcome of polling a URL until it answered well N times in a row."""

    def __init__(self, ok, attempts, consecutive, last):
        self.ok = ok
        self.attempts = attempts
        self.consecutive = consecutive
        self.last = last

    def as_dict(self):
        last = self.last
        return {
            "ok": self.ok,
            "attempts": self.attempts,
            "consecutive": self.consecutive,
            "last_status": last.status if last else None,
            "last_body": excerpt(last.body) if last else "",
            "last_error": last.error if last else None,
        }


def excerpt(text, limit=BODY_EXCERPT):
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "...(truncated)"


def http_get(url, timeout, headers=None):
    """GET url without proxies; never raises for HTTP or network errors."""
    if not url.lower().startswith(("http://", "https://")):
        return Response(None, error=f"unsupported URL scheme in {url!r}")
    request = urllib.request.Request(url, headers=headers or {}, method="GET")  # noqa: S310 (scheme checked)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read(MAX_BODY).decode("utf-8", "replace")
            return Response(answer.status, body, dict(answer.headers.items()))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_BODY).decode("utf-8", "replace")
        except OSError:
            body = ""
        return Response(exc.code, body, dict(exc.headers.items()) if exc.headers else {})
    except urllib.error.URLError as exc:
        return Response(None, error=str(exc.reason))
    except Exception as exc:  # socket timeouts, resets, bad status lines: all count as "no answer"
        return Response(None, error=f"{type(exc).__name__}: {exc}")


def wait_until_ok(fetch, url, accept, *, threshold, timeout, interval, clock=time.monotonic, sleep=time.sleep):
    """Poll url until ``accept(response)`` holds ``threshold`` times in a row, or the timeout passes."""
    deadline = clock() + timeout
    attempts = consecutive = 0
    last = None
    while True:
        remaining = deadline - clock()
        last = fetch(url, max(MIN_REQUEST_TIMEOUT, min(MAX_REQUEST_TIMEOUT, remaining)))
        attempts += 1
        consecutive = consecutive + 1 if accept(last) else 0
        if consecutive >= threshold:
            return WaitResult(True, attempts, consecutive, last)
        if clock() + interval > deadline:
            return WaitResult(False, attempts, consecutive, last)
        sleep(interval)


def status_is(expected):
    return lambda response: response.status == expected


def color_answer(expected, header, color):
    """Accept a verify answer: expected status and, if a header is named, that header equals the colour."""

    def accept(response):
        if response.status != expected:
            return False
        return header is None or response.headers.get(header.lower(), "").strip() == color

    return accept
