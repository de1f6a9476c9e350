"""Helpers for the pg integration tests: the throwaway cluster handle and playbook builders."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("STACKOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))
TEST_USER = "stackops"
TEST_PASSWORD = "s3cret-Pa55-for-tests"  # throwaway cluster, never reused


def qi(name: str) -> str:
    """Quote an identifier for the test's own SQL."""
    return '"' + name.replace('"', '""') + '"'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


@dataclass
class Cluster:
    root: Path
    port: int
    host: str = "127.0.0.1"
    user: str = TEST_USER
    password: str = TEST_PASSWORD

    @property
    def socket_dir(self) -> str:
        return str(self.root / "sock")

    def conn(self) -> dict[str, object]:
        """Module connection options (password auth over TCP)."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "bin_dir": str(PG_BIN)}

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password}

    def psql(self, sql: str, db: str = "postgres", superuser: bool = False) -> str:
        """Run SQL and return unaligned, tuples-only output."""
        base = [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-p", str(self.port)]
        if superuser:
            argv = ["runuser", "-u", "postgres", "--", *base, "-h", self.socket_dir, "-U", "postgres", "-d", db]
            env = dict(os.environ)
        else:
            argv = [*base, "-h", self.host, "-U", self.user, "-d", db]
            env = self.env()
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, env=env, check=True)
        return proc.stdout.strip()

    def databases(self) -> set[str]:
        return set(self.psql("SELECT datname FROM pg_database WHERE NOT datistemplate;").splitlines())

    def pgbench_init(self, db: str, scale: int = 1) -> None:
        self.psql(f"CREATE DATABASE {qi(db)};")
        subprocess.run(
            [str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(scale), "-h", self.host, "-p", str(self.port),
             "-U", self.user, db],
            env=self.env(), check=True, capture_output=True, text=True,
        )

    def fingerprint(self, db: str) -> dict[str, tuple[int, str]]:
        """Row count and md5 of every user table's rows in a stable order."""
        tables = self.psql(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;",
            db=db,
        ).splitlines()
        result = {}
        for table in tables:
            out = self.psql(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {table} t;",
                db=db,
            )
            count, digest = out.split("|")
            result[table] = (int(count), digest)
        return result


def module_play(module: str, args: dict, name: str = "run", register: str | None = None) -> list[dict]:
    task = {"name": name, f"stackops.platform.{module}": args}
    if register:
        task["register"] = register
    return [{"name": f"{module} test", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]


def failure_message(run) -> str:
    return " ".join(str(e["res"].get("msg", "")) for e in run.results if e["event"] == "runner_on_failed")
