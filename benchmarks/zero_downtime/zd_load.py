"""Paced HTTP load through nginx: keep-alive connections, per-status and per-release-version counts."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadStats:
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    # Requests sent on a reused keep-alive connection that the server had closed while idle (nginx does this to
    # every idle client connection on a graceful reload): retried once on a new connection, as HTTP clients do
    # for idempotent requests (RFC 9112, 9.3.1). Only a failed retry counts as a socket error.
    stale_retries: int = 0
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    # (monotonic time, what) of the first failures, to line them up with the deploy timeline.
    failures: list = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: LoadStats) -> None:
        self.requests += other.requests
        self.non_2xx += other.non_2xx
        self.socket_errors += other.socket_errors
        self.stale_retries += other.stale_retries
        self.statuses.update(other.statuses)
        self.versions.update(other.versions)
        self.failures.extend(other.failures[: max(0, 20 - len(self.failures))])


class LoadGenerator:
    """`connections` threads, each sending GET `path` at rate/connections requests per second."""

    def __init__(self, host: str, port: int, *, rate: float, connections: int, path: str = "/", timeout: float = 5.0):
        self.host, self.port, self.path, self.timeout = host, port, path, timeout
        self.interval = connections / rate
        self.connections = connections
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stats: list[LoadStats] = []
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        for _conn in range(self.connections):
            stats = LoadStats()
            self._stats.append(stats)
            thread = threading.Thread(target=self._run, args=(stats,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> LoadStats:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 2)
        total = LoadStats(seconds=time.monotonic() - self.started)
        for stats in self._stats:
            total.merge(stats)
        return total

    def _run(self, stats: LoadStats) -> None:
        conn = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += self.interval
            reused = conn is not None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                try:
                    conn.request("GET", self.path)
                    resp = conn.getresponse()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not reused:
                        raise
                    # Closed by the server while idle, before any byte of a response: retry on a new connection.
                    stats.stale_retries += 1
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                    conn.request("GET", self.path)
                    resp = conn.getresponse()
                resp.read()
                stats.requests += 1
                stats.statuses[resp.status] += 1
                stats.versions[resp.getheader("X-App-Version", "-")] += 1
                if not 200 <= resp.status < 300:
                    stats.non_2xx += 1
                    if len(stats.failures) < 20:
                        stats.failures.append((time.monotonic(), f"HTTP {resp.status}"))
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                stats.requests += 1
                stats.socket_errors += 1
                if len(stats.failures) < 20:
                    stats.failures.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
