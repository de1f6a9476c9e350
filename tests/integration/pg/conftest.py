"""A throwaway PostgreSQL 15 cluster for the pg_backup / pg_restore integration tests.

The cluster runs as the postgres OS user in a temporary directory, listens on 127.0.0.1 on a
free port with its socket in the same temporary directory, and is stopped at the end of the
session even when tests fail. The test role ``stackops`` logs in with a SCRAM password over
TCP, so every module call exercises the PGPASSWORD path.
"""

from __future__ import annotations

import pytest
from pg_helpers import PG_BIN, qi, throwaway_cluster
from s3_helpers import bucket, moto_s3  # noqa: F401 # pylint: disable=unused-import # the off-site tests' S3 endpoint (moto) fixtures


@pytest.fixture(scope="session")
def pg_cluster():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def backup_root(tmp_path):
    path = tmp_path / "backups"
    path.mkdir()
    return path


@pytest.fixture
def bench_db(pg_cluster, request):
    """A fresh pgbench database per test, dropped afterwards with any copies the test made."""
    short = request.node.name.split("[")[0].removeprefix("test_")[:20]
    name = f"it_{short}_{abs(hash(request.node.name)) % 10000}"
    pg_cluster.pgbench_init(name)
    yield name
    for db in pg_cluster.databases():
        if db.startswith(name):
            pg_cluster.psql(f"DROP DATABASE IF EXISTS {qi(db)} WITH (FORCE);", superuser=True)
