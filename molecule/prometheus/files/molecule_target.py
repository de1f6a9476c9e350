"""Fake scrape target: the sample app's metric families, including a histogram, on 127.0.0.1:PORT."""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def render(scrapes: int) -> str:
    # Every scrape "serves" ten fast requests and no error: healthy, below every threshold.
    count = 10 * scrapes
    lines = [
        "# HELP http_requests_total Requests served.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{method="GET",path="/",status="200"}} {count}',
        'http_requests_total{method="GET",path="/",status="500"} 0',
        "# HELP http_request_errors_total Requests that raised.",
        "# TYPE http_request_errors_total counter",
        "http_request_errors_total 0",
        "# HELP http_request_duration_seconds Request duration.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    lines += [f'http_request_duration_seconds_bucket{{le="{b}"}} {count}' for b in BUCKETS]
    lines += [
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {count}',
        f"http_request_duration_seconds_sum {0.02 * count:.3f}",
        f"http_request_duration_seconds_count {count}",
    ]
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    lock = threading.Lock()
    scrapes = 0

    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        with Handler.lock:
            Handler.scrapes += 1
            body = render(Handler.scrapes).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
