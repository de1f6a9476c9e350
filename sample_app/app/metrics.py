"""A tiny thread-safe Prometheus registry rendering the text exposition format (version 0.0.4)."""

from __future__ import annotations

import threading

# 0.3: the latency objective of the environments (p95 < 300 ms); the SLO rules read the bucket at exactly
# that bound (roles/prometheus, prometheus_slo_latency_threshold_seconds).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def format_value(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def normalize_path(path: str) -> str:
    """Bounded label values: ids become :id, unknown paths 'other'."""
    path = path.split("?", 1)[0]
    if path in ("/", "/health", "/metrics", "/items", "/jobs"):
        return path
    if path.startswith("/jobs/"):
        return "/jobs/:id"
    return "other"


class Metrics:
    def __init__(self, buckets=DEFAULT_BUCKETS):
        self._lock = threading.Lock()
        self.buckets = tuple(sorted(buckets))
        self.requests: dict[tuple, int] = {}
        self.errors = 0
        self.bucket_counts = [0] * len(self.buckets)
        self.duration_sum = 0.0
        self.duration_count = 0

    def observe(self, method: str, path: str, status: int, duration: float) -> None:
        key = (method, normalize_path(path), str(status))
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            if status >= 500:
                self.errors += 1
            for i, bound in enumerate(self.buckets):
                if duration <= bound:
                    self.bucket_counts[i] += 1
            self.duration_sum += duration
            self.duration_count += 1

    def render(self, version: str, color: str) -> str:
        with self._lock:
            lines = [
                "# HELP http_requests_total Requests served, by method, path and status.",
                "# TYPE http_requests_total counter",
            ]
            for (method, path, status), count in sorted(self.requests.items()):
                labels = format_labels({"method": method, "path": path, "status": status})
                lines.append(f"http_requests_total{labels} {count}")
            lines += [
                "# HELP http_request_errors_total Requests answered with a 5xx status.",
                "# TYPE http_request_errors_total counter",
                f"http_request_errors_total {self.errors}",
                "# HELP http_request_duration_seconds Request duration in seconds.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for bound, count in zip(self.buckets, self.bucket_counts, strict=True):
                lines.append(f'http_request_duration_seconds_bucket{{le="{format_value(bound)}"}} {count}')
            lines += [
                f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}',
                f"http_request_duration_seconds_sum {self.duration_sum!r}",
                f"http_request_duration_seconds_count {self.duration_count}",
                "# HELP app_info Version and colour of the running release.",
                "# TYPE app_info gauge",
                f"app_info{format_labels({'version': version, 'color': color})} 1",
            ]
        return "\n".join(lines) + "\n"
