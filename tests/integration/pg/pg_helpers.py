"""Helpers for the pg integration tests: the throwaway cluster handle and playbook builders."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
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


@contextmanager
def throwaway_cluster(prefix: str = "stackops-pg-it-", test_user: bool = True) -> Iterator[Cluster]:
    """A PostgreSQL cluster as the postgres OS user in a temporary directory, on 127.0.0.1 and a free port.

    Its socket is in the same directory; local postgres is trusted, everyone else uses SCRAM. The test role
    ``stackops`` logs in with a password over TCP. Stopped and removed afterwards, even when the test fails.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    data = root / "data"
    (root / "sock").mkdir()
    shutil.chown(root / "sock", "postgres", "postgres")
    shutil.chown(root, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                     "--encoding=UTF8", "--locale=C.UTF-8"])
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        as_postgres([
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-t", "60",
            "-o", f"-p {port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        ])
        started = True
        cluster = Cluster(root=root, port=port)
        if test_user:
            cluster.psql(f"CREATE ROLE {TEST_USER} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}';", superuser=True)
        yield cluster
    finally:
        if started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data),
                            "-m", "immediate", "-w", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def install_like_the_role(dest: Path) -> Path:
    """Copy the backup program as roles/postgres/tasks/backup.yml installs it: only the module_utils files
    named in _postgres_backup_modules, in their package layout under ``dest``. Returns ``dest`` (the PYTHONPATH
    the units use), so a program that imports a file the role does not install fails here as on the host."""
    role_vars = yaml.safe_load((REPO_ROOT / "roles" / "postgres" / "vars" / "main.yml").read_text())
    package = dest / role_vars["_postgres_backup_package"].replace(".", "/")
    package.mkdir(parents=True)
    for name in role_vars["_postgres_backup_modules"]:
        shutil.copy2(REPO_ROOT / "plugins" / "module_utils" / f"{name}.py", package / f"{name}.py")
    return dest


def installed_env(dest: Path, **extra: str) -> dict[str, str]:
    """The environment of the backup and drill units: the installed package first, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SERVICE_RESULT", "PGPASSWORD")}
    return {**env, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1", **extra}
