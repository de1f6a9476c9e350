"""Replication lag on the primary while pgbench writes; prints one JSON object.

Usage (as postgres on the primary): lag_under_load.py <database> <seconds> <exporter port>
Samples pg_stat_replication twice a second (bytes the standby has not replayed, replay_lag) and
scrapes prometheus-postgres-exporter once mid-run for the metric the alert rules read
(pg_stat_replication_pg_wal_lsn_diff).
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import psycopg2

BIN = "/usr/lib/postgresql/15/bin"
EXPORTER_DSN = "host=/var/run/postgresql user=postgres dbname=postgres sslmode=disable"
LAG_SQL = """
SELECT application_name, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float
FROM pg_stat_replication
"""


def main():
    database, seconds, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    subprocess.run([f"{BIN}/pgbench", "-i", "-q", "-s", "5", database], check=True, capture_output=True)
    exporter = subprocess.Popen(
        ["/usr/bin/prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"],
        env={**os.environ, "DATA_SOURCE_NAME": EXPORTER_DSN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bench = subprocess.Popen(
        [f"{BIN}/pgbench", "-c", "4", "-j", "2", "-T", str(seconds), database],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    conn = psycopg2.connect("host=/var/run/postgresql dbname=postgres")
    conn.autocommit = True
    cur = conn.cursor()
    samples, exported = [], []
    start = time.monotonic()
    while bench.poll() is None:
        cur.execute(LAG_SQL)
        samples.extend(cur.fetchall())
        if not exported and time.monotonic() - start > seconds / 2:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            exported = [line for line in body.splitlines() if line.startswith("pg_stat_replication_pg_wal_lsn_diff")]
        time.sleep(0.5)
    exporter.terminate()
    output = bench.stdout.read()
    tps = re.search(r"tps = ([0-9.]+)", output)
    byte_lags = sorted(row[2] for row in samples if row[2] is not None)
    time_lags = sorted(row[3] for row in samples)
    print(
        json.dumps(
            {
                "pgbench_seconds": seconds,
                "pgbench_tps": float(tps.group(1)) if tps else None,
                "samples": len(samples),
                "standbys": sorted({f"{row[0]} ({row[1]})" for row in samples}),
                "lag_bytes_max": byte_lags[-1] if byte_lags else None,
                "lag_bytes_p50": byte_lags[len(byte_lags) // 2] if byte_lags else None,
                "replay_lag_seconds_max": round(time_lags[-1], 4) if time_lags else None,
                "replay_lag_seconds_p50": round(time_lags[len(time_lags) // 2], 4) if time_lags else None,
                "exporter_metric": exported,
            }
        )
    )


if __name__ == "__main__":
    main()
