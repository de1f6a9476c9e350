"""Benchmark pg_backup / pg_restore (the module_utils code the modules run) against raw pg_dump / pg_restore.

Creates a pgbench database (default scale 70, about 1 GB) on a throwaway PostgreSQL cluster it
starts itself (as the postgres OS user, socket only, in a temp dir), or on an existing server
given with --host/--port/--user (password from PGPASSWORD or --passfile). Prints:

  raw pg_dump -Fc            vs run_backup(format=custom)   ratio (target <= 1.10)
  run_backup(directory, 2 jobs) vs run_backup(custom)
  raw pg_restore             vs run_restore(mode=new)       ratio

and removes everything it created.

    . scripts/env.sh && python benchmarks/pg_backup_bench.py [--scale 70] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def import_cores(workdir: Path):
    """Import the module_utils as the modules do (ansible_collections.stackops.platform...)."""
    ns = workdir / "collections" / "ansible_collections" / "stackops"
    ns.mkdir(parents=True)
    (ns / "platform").symlink_to(REPO_ROOT)
    sys.path.insert(0, str(workdir / "collections"))
    from ansible_collections.stackops.platform.plugins.module_utils import (  # noqa: PLC0415
        pg_backup_core,
        pg_restore_core,
    )

    return pg_backup_core, pg_restore_core


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, args, workdir: Path):
        self.args = args
        self.bin = Path(args.bin_dir)
        self.own = args.host is None
        self.workdir = workdir
        if self.own:
            self.root = workdir / "cluster"
            self.root.mkdir()
            shutil.chown(self.root, "postgres", "postgres")
            self.host, self.port, self.user = str(self.root), free_port(), "postgres"
        else:
            self.host, self.port, self.user = args.host, args.port, args.user
        self.started = False

    def conn(self) -> dict:
        conn = {"host": self.host, "port": self.port, "user": self.user, "bin_dir": str(self.bin)}
        if self.args.passfile:
            conn["passfile"] = self.args.passfile
        return conn

    def flags(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def start(self) -> None:
        if not self.own:
            return
        data = self.root / "data"
        runuser = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*runuser, str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                "-c autovacuum=off -c max_wal_size=4GB -c maintenance_work_mem=256MB -c shared_buffers=512MB")
        subprocess.run([*runuser, str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-w",
                        "-o", opts, "start"], check=True, capture_output=True)
        self.started = True

    def stop(self) -> None:
        if self.started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D",
                            str(self.root / "data"), "-m", "fast", "-w", "stop"], check=False, capture_output=True)

    def psql(self, sql: str, db: str = "postgres") -> str:
        argv = [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *self.flags(), "-d", db]
        return subprocess.run(argv, input=sql, capture_output=True, text=True, check=True).stdout.strip()

    def run(self, argv: list[str]) -> float:
        start = time.monotonic()
        subprocess.run(argv, check=True, capture_output=True)
        return time.monotonic() - start


def timed(func) -> float:
    start = time.monotonic()
    func()
    return time.monotonic() - start


def fmt_size(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MiB"


def parse_size(text: str) -> int:
    """Bytes of a size such as 100M, 1.5G or 1073741824 (K, M, G: powers of 1024)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 100M or 1G)") from None


RANDOM_TABLE = "bench_random"
RANDOM_ROW_BYTES = 1024  # pgcrypto's gen_random_bytes returns at most 1024 bytes a call


def fill_incompressible(server: Server, db: str, target_bytes: int) -> int:
    """Add random bytea rows (pgcrypto) until the database holds target_bytes; returns the rows added.

    Random bytes stay the same size through pg_dump's and age's compression, so the dump and the
    upload are about as large as the data (pgbench's tables shrink about 50 times in a custom dump).
    """
    server.psql(
        f"CREATE EXTENSION IF NOT EXISTS pgcrypto; "
        # 1 KiB values stay inline (under the TOAST threshold): a row is a little over 1 KiB on disk.
        f"CREATE TABLE IF NOT EXISTS {RANDOM_TABLE} (id bigint PRIMARY KEY, payload bytea NOT NULL);",
        db=db,
    )
    # About 1/16 of the target a statement (4 to 64 MiB): a small --size is not overshot by much.
    batch = min(65536, max(4096, target_bytes // (RANDOM_ROW_BYTES * 16)))
    rows = 0
    while int(server.psql(f"SELECT pg_database_size('{db}');")) < target_bytes:
        server.psql(
            f"INSERT INTO {RANDOM_TABLE} SELECT g, gen_random_bytes({RANDOM_ROW_BYTES}) "
            f"FROM generate_series({rows + 1}, {rows + batch}) AS g;",
            db=db,
        )
        rows += batch
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 is about 1 GB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median taken)")
    parser.add_argument("--restore-jobs", type=int, default=2, help="pg_restore jobs for both restore runs")
    parser.add_argument("--bin-dir", default="/usr/lib/postgresql/15/bin")
    parser.add_argument("--host", help="use an existing server instead of starting one")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--passfile", help="libpq password file for --host (or set PGPASSWORD)")
    parser.add_argument("--database", default="stackops_bench", help="name of the pgbench database created")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="stackops-pg-bench-"))
    workdir.chmod(0o755)
    core, restore_core = import_cores(workdir)
    server = Server(args, workdir)
    db = args.database
    created: list[str] = []
    backups = workdir / "backups"
    backups.mkdir()
    try:
        server.start()
        server.psql(f'CREATE DATABASE "{db}";')
        created.append(db)
        print(f"pgbench -i -s {args.scale} ...", flush=True)
        init = server.run([str(server.bin / "pgbench"), "-i", "-q", "-s", str(args.scale), *server.flags(), db])
        server.psql("CHECKPOINT; VACUUM ANALYZE;", db=db)
        db_size = int(server.psql(f"SELECT pg_database_size('{db}');"))
        print(f"database {db}: {fmt_size(db_size)} (pgbench init {init:.1f}s)\n", flush=True)

        pg_dump = str(server.bin / "pg_dump")
        raw_file = workdir / "raw.dump"
        raw_times, core_times, dir_times = [], [], []
        params = {"database": db, "backup_dir": str(backups), **server.conn()}
        result = None

        def raw_dump():
            raw_file.unlink(missing_ok=True)
            raw_times.append(server.run([pg_dump, "-Fc", "-f", str(raw_file), *server.flags(), db]))

        def core_dump():
            box = {}
            core_times.append(timed(lambda: box.update(core.run_backup({**params, "keep_last": 1}))))
            return box

        # Alternate the order so neither side always runs on a warmer cache; checkpoint before each run.
        for i in range(args.repeat):
            for step in ((raw_dump, core_dump) if i % 2 == 0 else (core_dump, raw_dump)):
                server.psql("CHECKPOINT;")
                out = step()
                result = out or result
        raw_size = raw_file.stat().st_size
        for _round in range(args.repeat):
            server.psql("CHECKPOINT;")
            dir_result = {}
            dir_times.append(
                timed(lambda box=dir_result: box.update(core.run_backup({**params, "format": "directory", "jobs": 2})))
            )
            shutil.rmtree(dir_result["path"])
            os.unlink(dir_result["manifest_path"])

        raw_t, core_t, dir_t = (statistics.median(t) for t in (raw_times, core_times, dir_times))
        print(f"backup (median of {args.repeat}; run_backup = pg_dump + sha256 + fsync + pg_restore --list"
              " + verify re-read + manifest)")
        print(f"  raw pg_dump -Fc                 {raw_t:8.2f}s  {fmt_size(raw_size)}   runs {runs_fmt(raw_times)}")
        print(f"  run_backup format=custom        {core_t:8.2f}s  {fmt_size(result['size'])}   "
              f"runs {runs_fmt(core_times)}")
        ratio = core_t / raw_t
        print(f"  ratio run_backup / raw          {ratio:8.3f}   target <= 1.10: {'OK' if ratio <= 1.10 else 'MISSED'}")
        print(f"  run_backup directory, 2 jobs    {dir_t:8.2f}s  ({dir_t / core_t:.2f}x custom)   "
              f"runs {runs_fmt(dir_times)}")

        source = result["path"]
        jobs = ["--jobs", str(args.restore_jobs)] if args.restore_jobs > 1 else []
        raw_restores, core_restores = [], []
        outcome = {}

        def raw_restore_run(i):
            target = f"{db}_raw_restore_{i}"
            server.psql(f'CREATE DATABASE "{target}";')
            created.append(target)
            raw_restores.append(server.run([str(server.bin / "pg_restore"), "--exit-on-error", *jobs,
                                            *server.flags(), "-d", target, source]))

        def core_restore_run(i):
            target = f"{db}_core_restore_{i}"
            created.append(target)
            restore_params = {"database": db, "target": target, "source": source, "mode": "new",
                              "jobs": args.restore_jobs, **server.conn()}
            core_restores.append(timed(lambda: outcome.update(restore_core.run_restore(restore_params))))

        for i in range(max(1, args.repeat - 1)):
            for step in ((raw_restore_run, core_restore_run) if i % 2 == 0 else (core_restore_run, raw_restore_run)):
                server.psql("CHECKPOINT;")
                step(i)
        raw_restore, core_restore = statistics.median(raw_restores), statistics.median(core_restores)
        print(f"\nrestore (median of {len(raw_restores)}, {args.restore_jobs} jobs; "
              "run_restore = sha256 verify + scratch db + checks + rename)")
        print(f"  raw pg_restore                  {raw_restore:8.2f}s   runs {runs_fmt(raw_restores)}")
        print(f"  run_restore mode=new            {core_restore:8.2f}s   runs {runs_fmt(core_restores)}"
              f"  tables {outcome['tables_restored']}")
        print(f"  ratio run_restore / raw         {core_restore / raw_restore:8.3f}")
        return 0
    finally:
        for name in reversed(created):
            try:
                server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
            except subprocess.CalledProcessError as exc:
                print(f"cleanup: could not drop {name}: {exc.stderr}", file=sys.stderr)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def runs_fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    sys.exit(main())
