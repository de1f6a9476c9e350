"""PostgreSQL and Redis access (Debian's python3-psycopg2 and python3-redis), imported lazily."""

from __future__ import annotations

import json
import threading
import time
import uuid

JOB_KEY = "job:{}"
JOB_TTL = 7 * 24 * 3600


def connect_db(database_url: str):
    import psycopg2  # noqa: PLC0415 - only on hosts that talk to PostgreSQL

    if not database_url:
        raise RuntimeError("DATABASE_URL is not set")
    return psycopg2.connect(database_url, connect_timeout=3, application_name="sample-app")


class Redis:
    """One client per process: redis-py pools connections and is thread-safe."""

    def __init__(self, url: str):
        self.url = url
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        if not self.url:
            raise RuntimeError("REDIS_URL is not set")
        with self._lock:
            if self._client is None:
                import redis  # noqa: PLC0415 - only on hosts that talk to Redis

                self._client = redis.Redis.from_url(
                    self.url, socket_timeout=5, socket_connect_timeout=3, decode_responses=True
                )
            return self._client


def db_ping(database_url: str) -> None:
    conn = connect_db(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        conn.close()


def list_items(database_url: str, limit: int = 100) -> list[dict]:
    conn = connect_db(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name, created_at FROM items ORDER BY id DESC LIMIT %s", (limit,))
            return [{"id": r[0], "name": r[1], "created_at": r[2].isoformat()} for r in cur.fetchall()]
    finally:
        conn.close()


def insert_item(database_url: str, name: str) -> dict:
    conn = connect_db(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items (name) VALUES (%s) RETURNING id, created_at", (name,))
            row = cur.fetchone()
        return {"id": row[0], "name": name, "created_at": row[1].isoformat()}
    finally:
        conn.close()


def new_job(payload) -> dict:
    return {"id": uuid.uuid4().hex, "payload": payload, "enqueued_at": time.time()}


def enqueue(redis_client, queue: str, job: dict) -> None:
    key = JOB_KEY.format(job["id"])
    pipe = redis_client.pipeline()
    pipe.hset(key, mapping={"status": "queued", "enqueued_at": str(job["enqueued_at"])})
    pipe.expire(key, JOB_TTL)
    pipe.lpush(queue, json.dumps(job, sort_keys=True))
    pipe.execute()


def job_status(redis_client, job_id: str) -> dict | None:
    data = redis_client.hgetall(JOB_KEY.format(job_id))
    return dict(data) if data else None
