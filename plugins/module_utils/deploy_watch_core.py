# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch one colour of an app after a switch, from nginx's access log: requests, 5xx ratio, p95 upstream time.

The api role's nginx site logs one line per request (``roles/api/templates/nginx-site.conf.j2``)::

    1.2.3.4 - - [02/Dec/2026:03:00:00 +0000] "GET / HTTP/1.1" 200 51 "-" "curl/8" req_id=ab upstream=127.0.0.1:8002
        rt=0.004 urt=0.003 [color=green]

A line belongs to the watched colour when its ``color=`` field names it or, without that field, when the upstream
that answered (the last address of ``$upstream_addr``) is one of the colour's addresses. The log is read from the
byte offset taken just before the switch; a log rotated meanwhile (renamed, a new file created) is read to its end
first when it is still next to the log under another name, a truncated one (copytruncate) from its start.

The verdict: below ``min_requests`` there is not enough traffic to judge (pass, said so); otherwise a 5xx ratio
above ``max_error_ratio`` or a p95 above ``max_p95_ms`` is a breach. Standard library only.
"""

from __future__ import annotations

import math
import os
import re
import time

# Separators nginx puts between several upstream attempts: ", " (next server) and " : " (internal redirect).
_MULTI_SEP = re.compile(r"\s*,\s*|\s+:\s+")
# "$request" $status: the request is the first quoted field (nginx escapes quotes inside it as \x22).
_STATUS_RE = re.compile(r'"[^"]*" (\d{3}) ')
# key=value fields after the last quoted field; a value runs to the next " key=" (upstream lists hold spaces).
_FIELD_RE = re.compile(r"(?:^|\s)([a-z_]+)=")
MAX_READ = 64 * 1024 * 1024


class WatchError(Exception):
    """The watch could not run (missing log, bad setting); the message names the value."""


class Entry:
    """The fields of one access-log line the watch needs."""

    __slots__ = ("color", "status", "upstream_times", "upstreams")

    def __init__(self, status, upstreams, upstream_times, color=None):
        self.status = status
        self.upstreams = upstreams
        self.upstream_times = upstream_times
        self.color = color

    @property
    def upstream(self):
        """The upstream that produced the response (the last one tried), or None."""
        return self.upstreams[-1] if self.upstreams else None

    @property
    def latency_ms(self):
        """That upstream's response time in ms, or None when it sent no response ("-")."""
        if not self.upstream_times or len(self.upstream_times) != len(self.upstreams):
            return None
        return self.upstream_times[-1]


def _split_multi(value):
    value = value.strip()
    if not value or value == "-":
        return []
    return [part for part in _MULTI_SEP.split(value) if part]


def _seconds_to_ms(raw):
    try:
        return float(raw) * 1000.0
    except ValueError:
        return None


def parse_line(line):
    """The Entry of one log line, or None for a line of another format (never raises)."""
    match = _STATUS_RE.search(line)
    if not match:
        return None
    tail = line[line.rfind('"') + 1 :]
    marks = list(_FIELD_RE.finditer(tail))
    fields = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(tail)
        fields[mark.group(1)] = tail[mark.end() : end].strip()
    if "upstream" not in fields:
        return None
    upstreams = _split_multi(fields["upstream"])
    times = [_seconds_to_ms(t) for t in _split_multi(fields.get("urt", ""))]
    color = fields.get("color") or None
    return Entry(int(match.group(1)), upstreams, times, None if color == "-" else color)


def belongs_to(entry, color, addresses):
    """Whether the watched colour served this request."""
    if entry.color is not None:
        return entry.color == color
    return entry.upstream is not None and entry.upstream in addresses


def percentile(values, share):
    """Nearest-rank percentile (share in 0..1) of a list of numbers; None for an empty list."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


class Tally:
    """Figures of the watched colour's requests, fed line by line."""

    def __init__(self, color, addresses):
        self.color = color
        self.addresses = frozenset(addresses)
        self.requests = 0
        self.errors_5xx = 0
        self.latencies = []
        self.lines = 0
        self.other = 0
        self.unparsed = 0

    def add(self, line):
        self.lines += 1
        entry = parse_line(line)
        if entry is None:
            self.unparsed += 1
            return
        if not belongs_to(entry, self.color, self.addresses):
            self.other += 1
            return
        self.requests += 1
        if 500 <= entry.status <= 599:
            self.errors_5xx += 1
        latency = entry.latency_ms
        if latency is not None:
            self.latencies.append(latency)

    @property
    def error_ratio(self):
        return self.errors_5xx / self.requests if self.requests else 0.0

    @property
    def p95_ms(self):
        value = percentile(self.latencies, 0.95)
        return None if value is None else round(value, 1)


def verdict(tally, max_error_ratio, max_p95_ms, min_requests):
    """(breached, enough_traffic, reason) for the figures so far."""
    if tally.requests < min_requests:
        return (
            False,
            False,
            f"not enough traffic to judge: {tally.requests} requests to {tally.color} "
            f"(fewer than {min_requests}); passed",
        )
    breaches = []
    if tally.error_ratio > max_error_ratio:
        breaches.append(
            f"5xx ratio {tally.error_ratio:.2%} ({tally.errors_5xx} of {tally.requests}) above {max_error_ratio:.2%}"
        )
    p95 = tally.p95_ms
    if p95 is not None and p95 > max_p95_ms:
        breaches.append(f"p95 upstream time {p95:g} ms above {max_p95_ms:g} ms")
    if breaches:
        return True, True, "; ".join(breaches)
    shown_p95 = "n/a" if p95 is None else f"{p95:g} ms"
    return (
        False,
        True,
        f"within guardrails: 5xx {tally.error_ratio:.2%} (max {max_error_ratio:.2%}), "
        f"p95 {shown_p95} (max {max_p95_ms:g} ms)",
    )


class _Source:
    """One open log file and its partial last line."""

    def __init__(self, path, offset):
        self.path = path
        self.fh = open(path, "rb")  # noqa: SIM115 - kept open across polls to follow a rename
        self.fh.seek(offset)
        self.buffer = b""

    def inode(self):
        return os.fstat(self.fh.fileno()).st_ino

    def truncated(self):
        return os.fstat(self.fh.fileno()).st_size < self.fh.tell()

    def restart(self):
        self.fh.seek(0)
        self.buffer = b""

    def lines(self, final=False):
        """Complete lines read since the last call; with final, a partial last line too."""
        self.buffer += self.fh.read(MAX_READ)
        if final and self.buffer and not self.buffer.endswith(b"\n"):
            self.buffer += b"\n"
        complete, sep, rest = self.buffer.rpartition(b"\n")
        self.buffer = rest
        if not sep:
            return []
        return complete.decode("utf-8", "replace").split("\n")

    def close(self):
        self.fh.close()


class LogTail:
    """Read complete new lines of a log from a byte offset, across a rotation (rename) or a truncation.

    Each file stays open across polls: after a rename (logrotate's create), the old file is still read through
    its descriptor (nginx writes there until it reopens its logs), and the new file at the path from its start.
    """

    def __init__(self, path, offset=None, inode=None):
        self.path = path
        self.notes = []
        self.rotated = False
        self._old = None
        self._current = None
        self._open_start(offset, inode)

    def _open_start(self, offset, inode):
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise WatchError(f"cannot read the access log {self.path}: {exc.strerror or exc}") from None
        if offset is None:
            self._current = _Source(self.path, st.st_size)
            return
        if inode is None or st.st_ino == inode:
            if st.st_size < offset:
                self._note(f"{self.path} was truncated since offset {offset}: read from its start")
                offset = 0
            self._current = _Source(self.path, offset)
            return
        old = self._find_rotated(inode)
        if old is None:
            self._note(
                f"{self.path} was rotated since offset {offset} and the old file was not found next to it: "
                "read the new file from its start"
            )
            self._current = _Source(self.path, 0)
            return
        self._note(f"{self.path} was rotated to {old}: read the rest of it, then the new file")
        self._current = _Source(old, offset)

    def _note(self, text):
        self.rotated = True
        self.notes.append(text)

    def _find_rotated(self, inode):
        folder = os.path.dirname(self.path) or "."
        base = os.path.basename(self.path)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        for name in names:
            if name == base or not name.startswith(base):
                continue
            candidate = os.path.join(folder, name)
            try:
                if os.stat(candidate).st_ino == inode:
                    return candidate
            except OSError:
                continue
        return None

    def close(self):
        for source in (self._old, self._current):
            if source is not None:
                source.close()
        self._old = self._current = None

    def read_lines(self):
        """The complete lines written since the last call (a partial last line waits for the next call)."""
        lines = self._old.lines() if self._old is not None else []
        lines.extend(self._current.lines())
        try:
            path_inode = os.stat(self.path).st_ino
        except OSError:
            path_inode = None
        if path_inode is not None and path_inode != self._current.inode():
            # Renamed away: keep reading the old file (nginx writes there until it reopens), start the new one.
            if self._old is not None:
                lines.extend(self._old.lines(final=True))
                self._old.close()
            self._old = self._current
            self._note(f"{self.path} was rotated during the watch: continued with the new file")
            self._current = _Source(self.path, 0)
            lines.extend(self._current.lines())
        elif self._current.truncated():
            self._note(f"{self.path} was truncated during the watch (copytruncate): read from its start")
            self._current.restart()
            lines.extend(self._current.lines())
        return lines


def watch(
    tail,
    tally,
    *,
    seconds,
    interval,
    max_error_ratio,
    max_p95_ms,
    min_requests,
    stop_on_breach=True,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Feed the tally from the tail for ``seconds`` (or until a breach with enough traffic); the result dict."""
    started = clock()
    deadline = started + seconds
    stopped_early = False
    while True:
        for line in tail.read_lines():
            if line:
                tally.add(line)
        breached, enough, reason = verdict(tally, max_error_ratio, max_p95_ms, min_requests)
        if breached and stop_on_breach:
            stopped_early = clock() < deadline
            break
        now = clock()
        if now >= deadline:
            break
        sleep(min(interval, deadline - now))
    return {
        "color": tally.color,
        "seconds": seconds,
        "elapsed": round(clock() - started, 2),
        "requests": tally.requests,
        "errors_5xx": tally.errors_5xx,
        "error_ratio": round(tally.error_ratio, 4),
        "p95_ms": tally.p95_ms,
        "breached": breached,
        "enough_traffic": enough,
        "stopped_early": stopped_early,
        "reason": reason,
        "lines_read": tally.lines,
        "lines_other": tally.other,
        "lines_unparsed": tally.unparsed,
        "rotated": tail.rotated,
        "notes": list(tail.notes),
        "max_error_ratio": max_error_ratio,
        "max_p95_ms": max_p95_ms,
        "min_requests": min_requests,
    }


def validate(*, color, addresses, seconds, interval, max_error_ratio, max_p95_ms, min_requests):
    """WatchError naming the first bad setting."""
    if not color:
        raise WatchError("color: name the colour to watch (blue or green)")
    if not addresses:
        raise WatchError(f"upstreams: give the upstream address of {color}")
    if not 0 < seconds <= 3600:
        raise WatchError(f"seconds={seconds!r}: give a number of seconds between 0 and 3600")
    if not 0 < interval <= 60:
        raise WatchError(f"interval={interval!r}: give a number of seconds between 0 and 60")
    if not 0 <= max_error_ratio <= 1:
        raise WatchError(f"max_error_ratio={max_error_ratio!r}: give a ratio between 0 and 1 (0.01 = 1 %)")
    if max_p95_ms <= 0:
        raise WatchError(f"max_p95_ms={max_p95_ms!r}: give a positive number of milliseconds")
    if min_requests < 0:
        raise WatchError(f"min_requests={min_requests!r}: give 0 or more")
