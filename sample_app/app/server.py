"""The API: `python3 -m app.server [--host H] [--port P]` (or APP_HOST/APP_PORT).

Threaded HTTP/1.1 server with keep-alive (nginx keeps upstream connections open). SIGTERM stops
accepting, closes idle keep-alive connections, lets in-flight requests finish, then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app import backends, config, faults, health, metrics, requestid

LOG = logging.getLogger("app.server")
MAX_BODY = 64 * 1024


class AppServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests
    block_on_close = True

    def __init__(self, address, settings: config.Settings, checks=None):
        self.settings = settings
        self.metrics = metrics.Metrics()
        self.errors = faults.ErrorInjector(settings.error_ratio)
        self.redis = backends.Redis(settings.redis_url)
        self.stopping = threading.Event()
        self._conn_lock = threading.Lock()
        self._idle: dict[int, socket.socket] = {}
        # (db_check, redis_check); tests pass fakes.
        self.checks = checks or (self._db_check, self._redis_check)
        super().__init__(address, AppHandler)

    def _db_check(self):
        backends.db_ping(self.settings.database_url)

    def _redis_check(self):
        if not self.redis.client.ping():
            raise RuntimeError("PING did not answer PONG")

    def mark_idle(self, handler, idle: bool) -> None:
        with self._conn_lock:
            if idle:
                self._idle[id(handler)] = handler.connection
            else:
                self._idle.pop(id(handler), None)

    def close_idle_connections(self) -> int:
        with self._conn_lock:
            idle = list(self._idle.values())
            self._idle.clear()
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return len(idle)

    def graceful_stop(self) -> None:
        """Stop accepting, wake idle keep-alive connections; server_close() then joins busy ones."""
        self.stopping.set()
        self.shutdown()


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sample-app"
    # Idle keep-alive connections live longer than nginx's upstream keepalive_timeout (60 s).
    timeout = 75

    # -- connection bookkeeping for graceful shutdown
    def handle_one_request(self):
        if self.server.stopping.is_set():
            self.close_connection = True
            return
        self.server.mark_idle(self, True)
        try:
            super().handle_one_request()
        finally:
            self.server.mark_idle(self, False)

    def parse_request(self):
        self.server.mark_idle(self, False)
        return super().parse_request()

    def log_message(self, format, *args):
        # Access lines are written by _finish(); keep stdlib protocol errors, with the request id if known.
        LOG.info("request_id=%s %s", getattr(self, "request_id", "-"), format % args)

    # -- dispatch
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def _dispatch(self, method: str):
        self.request_id = requestid.request_id(self.headers.get(requestid.HEADER))
        self._started = time.monotonic()
        self._status = 500
        path = self.path.split("?", 1)[0]
        try:
            routes = {
                ("GET", "/"): self.index,
                ("HEAD", "/"): self.index,
                ("GET", "/health"): self.health,
                ("HEAD", "/health"): self.health,
                ("GET", "/metrics"): self.render_metrics,
                ("GET", "/items"): self.items_list,
                ("POST", "/items"): self.items_create,
                ("POST", "/jobs"): self.jobs_create,
            }
            handler = routes.get((method, path))
            if self.server.errors.should_fail(path):
                self.send_json(500, {"error": f"injected by {faults.ENV}", "request_id": self.request_id})
            elif handler is not None:
                handler()
            elif method == "GET" and path.startswith("/jobs/") and len(path) > len("/jobs/"):
                self.jobs_show(path[len("/jobs/") :])
            elif any(p == path for (_method, p) in routes):
                self.send_json(405, {"error": f"method {method} not allowed on {path}"})
            else:
                self.send_json(404, {"error": f"no route for {path}"})
        except Exception as exc:
            LOG.exception("request_id=%s unhandled error", self.request_id)
            if not getattr(self, "_sent", False):
                self.send_json(500, {"error": type(exc).__name__, "request_id": self.request_id})
        finally:
            self._finish(method, path)

    def _finish(self, method: str, path: str):
        duration = time.monotonic() - self._started
        self.server.metrics.observe(method, path, self._status, duration)
        LOG.info(
            "request_id=%s method=%s path=%s status=%s duration_ms=%.1f color=%s",
            self.request_id,
            method,
            path,
            self._status,
            duration * 1000,
            self.server.settings.color,
        )

    # -- responses
    def send_body(self, status: int, body: bytes, content_type: str):
        self._status = status
        self._sent = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(requestid.HEADER, self.request_id)
        self.send_header("X-App-Color", self.server.settings.color)
        self.send_header("X-App-Version", self.server.settings.version)
        if self.server.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, data):
        self.send_body(status, (json.dumps(data, sort_keys=True) + "\n").encode(), "application/json")

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"body larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    # -- endpoints
    def index(self):
        s = self.server.settings
        self.send_json(200, {"version": s.version, "color": s.color, "hostname": socket.gethostname()})

    def health(self):
        s = self.server.settings
        status, body = health.evaluate(
            *self.server.checks, version=s.version, color=s.color, forced_down=s.health_forced_down()
        )
        self.send_json(status, body)

    def render_metrics(self):
        s = self.server.settings
        self.send_body(200, self.server.metrics.render(s.version, s.color).encode(), metrics.CONTENT_TYPE)

    def items_list(self):
        self.send_json(200, {"items": backends.list_items(self.server.settings.database_url)})

    def items_create(self):
        try:
            data = self.read_json()
            name = str(data.get("name", "")).strip() if isinstance(data, dict) else ""
        except ValueError as exc:
            self.send_json(400, {"error": f"invalid JSON body: {exc}"})
            return
        if not name or len(name) > 200:
            self.send_json(400, {"error": 'give {"name": "..."} with 1-200 characters'})
            return
        self.send_json(201, backends.insert_item(self.server.settings.database_url, name))

    def jobs_create(self):
        try:
            payload = self.read_json()
        except ValueError as exc:
            self.send_json(400, {"error": f"invalid JSON body: {exc}"})
            return
        job = backends.new_job(payload)
        backends.enqueue(self.server.redis.client, self.server.settings.queue, job)
        self.send_json(202, {"id": job["id"], "status": "queued"})

    def jobs_show(self, job_id: str):
        status = backends.job_status(self.server.redis.client, job_id)
        if status is None:
            self.send_json(404, {"error": f"no job {job_id}"})
        else:
            self.send_json(200, {"id": job_id, **status})


def serve(server: AppServer) -> None:
    def on_sigterm(signum, _frame):
        LOG.info("signal %s: stop accepting, finish in-flight requests", signum)
        threading.Thread(target=server.graceful_stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    s = server.settings
    LOG.info("listening on %s:%s version=%s color=%s", s.host, s.port, s.version, s.color)
    if s.error_ratio > 0:
        LOG.warning("%s=%s: that share of requests answers 500 on purpose", faults.ENV, s.error_ratio)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        closed = server.close_idle_connections()
        server.server_close()
        LOG.info("stopped (closed %d idle connections)", closed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="bind address (default APP_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default APP_PORT or 8000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
    settings = config.load(host=args.host, port=args.port)
    serve(AppServer((settings.host, settings.port), settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
