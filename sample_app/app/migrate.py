"""Idempotent schema migrations: `python3 -m app.migrate` (or bin/migrate) with DATABASE_URL set.

Each migration runs once, in its own transaction, recorded in schema_migrations; an advisory lock
makes concurrent runs (two hosts deploying at once) wait instead of racing.
"""

from __future__ import annotations

import os
import sys

from app import backends

LOCK_ID = 7_300_001
MIGRATIONS = [
    (
        1,
        "items",
        "CREATE TABLE IF NOT EXISTS items ("
        " id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    ),
    (
        2,
        "processed_jobs",
        "CREATE TABLE IF NOT EXISTS processed_jobs ("
        " job_id TEXT PRIMARY KEY, payload TEXT NOT NULL, worker TEXT NOT NULL,"
        " processed_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    ),
]


def pending(applied: set[int]) -> list[tuple[int, str, str]]:
    return [m for m in MIGRATIONS if m[0] not in applied]


def migrate(conn) -> list[int]:
    """Apply pending migrations; return the versions applied now (empty when up to date)."""
    done = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        applied = {row[0] for row in cur.fetchall()}
        for version, name, sql in pending(applied):
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            done.append(version)
    return done


def main() -> int:
    conn = backends.connect_db(os.environ.get("DATABASE_URL", ""))
    try:
        done = migrate(conn)
    finally:
        conn.close()
    # The last line is machine-readable: the deploy playbook reports "changed" only when it is not "up to date".
    print(f"applied migrations: {done}" if done else "schema up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
