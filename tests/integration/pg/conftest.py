"""A throwaway PostgreSQL 15 cluster for the pg_backup / pg_restore integration tests.

The cluster runs as the postgres OS user in a temporary directory, listens on 127.0.0.1 on a
free port with its socket in the same temporary directory, and is stopped at the end of the
session even when tests fail. The test role ``stackops`` logs in with a SCRAM password over
TCP, so every module call exercises the PGPASSWORD path.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pg_helpers import PG_BIN, TEST_PASSWORD, TEST_USER, Cluster, as_postgres, free_port
from s3_helpers import bucket, moto_s3  # noqa: F401 - the off-site tests' S3 endpoint (moto) fixtures


@pytest.fixture(scope="session")
def pg_cluster():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="stackops-pg-it-"))
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
        cluster.psql(f"CREATE ROLE {TEST_USER} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}';", superuser=True)
        yield cluster
    finally:
        if started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data),
                            "-m", "immediate", "-w", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def backup_root(tmp_path):
    path = tmp_path / "backups"
    path.mkdir()
    return path
