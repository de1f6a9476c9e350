"""The worker: `python3 -m app.worker`. BRPOP jobs from Redis, record each in PostgreSQL, mark it done.

SIGTERM sets a flag: the current job finishes, no new job is taken, the process exits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from app import backends, config

LOG = logging.getLogger("app.worker")
# How long an idle worker blocks in BRPOP: also how long it takes to notice SIGTERM (a deploy's worker restart
# waits for it). Redis takes fractions of a second; the job itself always finishes first.
BRPOP_TIMEOUT = 0.2


def process(job: dict, record, set_status, worker: str) -> None:
    """Run one job: optional sleep (payload.sleep, capped), record it, mark it done."""
    job_id = str(job["id"])
    set_status(job_id, {"status": "processing", "worker": worker})
    payload = job.get("payload") if isinstance(job.get("payload"), dict) else {}
    delay = payload.get("sleep", 0)
    if isinstance(delay, (int, float)) and delay > 0:
        time.sleep(min(float(delay), 30.0))
    record(job_id, json.dumps(job.get("payload"), sort_keys=True), worker)
    set_status(job_id, {"status": "done", "worker": worker, "finished_at": str(time.time())})


class Worker:
    def __init__(self, settings: config.Settings, name: str):
        self.settings = settings
        self.name = name
        self.redis = backends.Redis(settings.redis_url)
        self.stop = threading.Event()
        self._conn = None

    def record(self, job_id: str, payload: str, worker: str) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = backends.connect_db(self.settings.database_url)
        try:
            with self._conn, self._conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO processed_jobs (job_id, payload, worker) VALUES (%s, %s, %s)"
                    " ON CONFLICT (job_id) DO NOTHING",
                    (job_id, payload, worker),
                )
        except Exception:
            self._conn.close()
            raise

    def set_status(self, job_id: str, fields: dict) -> None:
        self.redis.client.hset(backends.JOB_KEY.format(job_id), mapping=fields)

    def run(self) -> int:
        LOG.info("worker %s consuming queue %s (version %s)", self.name, self.settings.queue, self.settings.version)
        while not self.stop.is_set():
            try:
                item = self.redis.client.brpop([self.settings.queue], timeout=BRPOP_TIMEOUT)
            except Exception as exc:
                LOG.warning("redis unavailable (%s); retrying", exc)
                self.stop.wait(2)
                continue
            if item is None:
                continue
            try:
                job = json.loads(item[1])
                LOG.info("job_id=%s start", job.get("id"))
                process(job, self.record, self.set_status, self.name)
                LOG.info("job_id=%s done", job.get("id"))
            except Exception:
                LOG.exception("job failed: %s", item[1][:200])
                try:
                    self.set_status(str(json.loads(item[1]).get("id")), {"status": "failed"})
                except Exception:
                    LOG.warning("could not mark the job failed")
        LOG.info("worker %s stopped", self.name)
        return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
    settings = config.load()
    worker = Worker(settings, f"{socket.gethostname()}/{os.environ.get('WORKER_ID', os.getpid())}")

    def on_signal(signum, _frame):
        LOG.info("signal %s: finishing the current job, then stopping", signum)
        worker.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
