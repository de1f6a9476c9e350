"""Write numbered rows through a failover and record which ones were acknowledged.

Usage: failover_writer.py <libpq dsn> <max seconds> <result json>
The password comes from PGPASSWORD. The dsn lists both servers with
target_session_attrs=read-write, as an app would. Each attempt uses a new id; an id is
acknowledged when its autocommit INSERT returned without error. Stops 3 s after writes
resume on another server (or at max seconds) and writes a JSON summary.
"""

import contextlib
import json
import sys
import time

import psycopg2


def main():
    dsn, limit, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    start = time.monotonic()
    acked, conn, cur, server = [], None, None, None
    result = {
        "first_server": None,
        "first_failure_s": None,
        "first_error": None,
        "resumed_s": None,
        "resumed_server": None,
        "errors": 0,
    }
    next_id = 0
    while True:
        now = time.monotonic() - start
        if now > limit or (result["resumed_s"] is not None and now - result["resumed_s"] > 3):
            break
        next_id += 1
        try:
            if conn is None:
                conn = psycopg2.connect(dsn, connect_timeout=2)
                conn.autocommit = True
                cur = conn.cursor()
                cur.execute("SELECT host(inet_server_addr())")
                server = cur.fetchone()[0]
            cur.execute("INSERT INTO failover_probe (id) VALUES (%s)", (next_id,))
            acked.append(next_id)
            if result["first_server"] is None:
                result["first_server"] = server
            failed_before = result["first_failure_s"] is not None
            if failed_before and result["resumed_s"] is None and server != result["first_server"]:
                result["resumed_s"] = round(time.monotonic() - start, 3)
                result["resumed_server"] = server
            time.sleep(0.02)
        except psycopg2.Error as exc:
            result["errors"] += 1
            if result["first_failure_s"] is None and result["first_server"] is not None:
                result["first_failure_s"] = round(time.monotonic() - start, 3)
                result["first_error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if conn is not None:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
            conn = None
            time.sleep(0.1)
    result["attempts"] = next_id
    result["acked"] = acked
    result["duration_s"] = round(time.monotonic() - start, 3)
    if result["resumed_s"] is not None and result["first_failure_s"] is not None:
        result["unavailable_s"] = round(result["resumed_s"] - result["first_failure_s"], 3)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
