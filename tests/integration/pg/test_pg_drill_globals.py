"""Row counts in the dump's snapshot, restore drills and globals, on real PostgreSQL 15.

Backups are taken through the pg_backup module; drills run pg_drill_core the way the drill unit does
(``python3 -m ...pg_drill_core --config``); globals are applied through the pg_restore module to a second,
empty cluster. Every test verifies independently with psql and pg_restore.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg_helpers import (
    PG_BIN,
    failure_message,
    install_like_the_role,
    installed_env,
    module_play,
    qi,
    throwaway_cluster,
)

DRILL_MODULE = "ansible_collections.stackops.platform.plugins.module_utils.pg_drill_core"


def superuser_conn(cluster) -> dict[str, object]:
    """Connection options of the bootstrap superuser over the cluster's socket (trusted locally)."""
    return {"host": cluster.socket_dir, "port": cluster.port, "user": "postgres", "bin_dir": str(PG_BIN)}


def backup(playbook, root, database, conn, **options):
    run = playbook(module_play("pg_backup", {"database": database, "backup_dir": str(root), **conn, **options},
                               name="backup"))
    assert run.failed() == 0, failure_message(run)
    return run.task("backup")


def drill(tmp_path, cluster, root, database, *extra, **options):
    """Run the drill program as the unit does; return (exit code, parsed stdout or None, stderr)."""
    config = tmp_path / f"pg_drill-{database}.json"
    settings = {"database": database, "backup_dir": str(root), "host": cluster.host, "port": cluster.port,
                "user": cluster.user, "bin_dir": str(PG_BIN), **options}
    config.write_text(json.dumps(settings))
    installed = tmp_path / "lib"
    if not installed.exists():
        install_like_the_role(installed)
    proc = subprocess.run([sys.executable, "-m", DRILL_MODULE, "--config", str(config), *extra],
                          capture_output=True, text=True, env=installed_env(installed, PGPASSWORD=cluster.password),
                          check=False, cwd=str(installed))
    out = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


def restored_counts(cluster, dump: Path, tmp_db: str) -> dict[str, int]:
    """Row counts of every table in a dump, read by restoring it with pg_restore into a fresh database."""
    cluster.psql(f"CREATE DATABASE {qi(tmp_db)};")
    try:
        subprocess.run([str(PG_BIN / "pg_restore"), "--no-owner", "-h", cluster.host, "-p", str(cluster.port),
                        "-U", cluster.user, "-d", tmp_db, str(dump)], env=cluster.env(), check=True,
                       capture_output=True)
        return {table: count for table, (count, _md5) in cluster.fingerprint(tmp_db).items()}
    finally:
        cluster.psql(f"DROP DATABASE IF EXISTS {qi(tmp_db)} WITH (FORCE);", superuser=True)


# ----------------------------------------------------------------------------- row counts in the snapshot


def test_counts_equal_the_dump_while_rows_are_inserted(playbook, pg_cluster, backup_root, bench_db, tmp_path):
    pg_cluster.psql("CREATE TABLE busy (id bigserial PRIMARY KEY, at timestamptz DEFAULT now());", db=bench_db)
    script = tmp_path / "insert.sql"
    script.write_text("INSERT INTO busy DEFAULT VALUES;\n")
    writer = subprocess.Popen(  # bounded load on the throwaway cluster: 2 clients for at most 25 s
        [str(PG_BIN / "pgbench"), "-n", "-c", "2", "-T", "25", "-f", str(script), "-h", pg_cluster.host,
         "-p", str(pg_cluster.port), "-U", pg_cluster.user, bench_db],
        env=pg_cluster.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while int(pg_cluster.psql("SELECT count(*) FROM busy;", db=bench_db)) == 0:
            assert time.monotonic() < deadline, "pgbench inserted nothing"
            time.sleep(0.1)
        res = backup(playbook, backup_root, bench_db, pg_cluster.conn())
        during = int(pg_cluster.psql("SELECT count(*) FROM busy;", db=bench_db))
    finally:
        writer.terminate()
        writer.wait(timeout=30)
    manifest = json.loads(Path(res["manifest_path"]).read_text())
    counts = manifest["row_counts"]
    assert manifest["row_counts_method"] == "snapshot"
    assert res["row_counts"] == counts
    assert counts["public.busy"] > 0
    assert during > counts["public.busy"], "no row was inserted while the backup ran: the test proves nothing"
    assert counts == restored_counts(pg_cluster, Path(res["path"]), f"{bench_db}_check")
    assert set(counts) == {"public.busy", "public.pgbench_accounts", "public.pgbench_branches",
                           "public.pgbench_history", "public.pgbench_tellers"}


# ----------------------------------------------------------------------------- restore drills


def test_drill_passes_drops_its_scratch_and_writes_metrics(playbook, pg_cluster, backup_root, bench_db, tmp_path):
    res = backup(playbook, backup_root, bench_db, pg_cluster.conn())
    before = pg_cluster.databases()
    code, result, err = drill(tmp_path, pg_cluster, backup_root, bench_db, "--check")
    assert code == 0, err
    assert result["changed"] is False and result["backup"] == res["path"]
    assert pg_cluster.databases() == before

    code, result, err = drill(tmp_path, pg_cluster, backup_root, bench_db)
    assert code == 0, err
    counts = json.loads(Path(res["manifest_path"]).read_text())["row_counts"]
    assert result["rows_compared"] == sum(counts.values()) == 100000 + 1 + 10
    assert result["tables_compared"] == 4 and result["scratch_dropped"] is True
    assert result["scratch"].startswith(f"{bench_db}_drill_")
    assert result["restore_seconds"] > 0
    assert pg_cluster.databases() == before  # the scratch database is gone

    metrics = tmp_path / "textfile"
    code, _out, err = drill(tmp_path, pg_cluster, backup_root, bench_db, "--write-metrics", str(metrics),
                            "--run-result", "success")
    assert code == 0, err
    text = (metrics / f"stackops_pg_drill_{bench_db}.prom").read_text()
    label = f'{{database="{bench_db}",source="local"}}'
    assert f"stackops_pg_drill_last_run_success{label} 1\n" in text
    assert f"stackops_pg_drill_last_rows_compared{label} 100011\n" in text
    assert f"stackops_pg_drill_last_duration_seconds{label} {result['restore_seconds']!r}\n" in text


def test_drill_with_tampered_counts_fails_and_drops_its_scratch(
    playbook, pg_cluster, backup_root, bench_db, tmp_path
):
    res = backup(playbook, backup_root, bench_db, pg_cluster.conn())
    assert drill(tmp_path, pg_cluster, backup_root, bench_db)[0] == 0  # a success the failure must not erase
    manifest_path = Path(res["manifest_path"])
    manifest = json.loads(manifest_path.read_text())
    manifest["row_counts"]["public.pgbench_tellers"] += 1
    manifest_path.write_text(json.dumps(manifest))
    before = pg_cluster.databases()

    code, _result, err = drill(tmp_path, pg_cluster, backup_root, bench_db)
    assert code == 1
    assert f"restore drill of {bench_db} failed: row counts of {res['path']}" in err
    assert "public.pgbench_tellers: manifest 11 rows, restored 10 rows" in err
    assert pg_cluster.databases() == before  # scratch dropped although the drill failed

    state = json.loads((backup_root / bench_db / ".drill-state.json").read_text())
    assert state["last_run"]["success"] is False and "pgbench_tellers" in state["last_run"]["error"]
    assert (state["last_run"]["origin"], state["last_run"]["backup"]) == ("local", res["path"])
    assert state["last_success"]["backup"] == res["path"]
    metrics = tmp_path / "textfile"
    assert drill(tmp_path, pg_cluster, backup_root, bench_db, "--write-metrics", str(metrics),
                 "--run-result", "failure")[0] == 0
    text = (metrics / f"stackops_pg_drill_{bench_db}.prom").read_text()
    assert f'stackops_pg_drill_last_run_success{{database="{bench_db}",source="local"}} 0\n' in text
    assert "stackops_pg_drill_last_success_timestamp_seconds" in text  # the earlier success still stands


def test_drill_without_a_backup_fails_clearly_and_creates_nothing(pg_cluster, backup_root, bench_db, tmp_path):
    before = pg_cluster.databases()
    code, _result, err = drill(tmp_path, pg_cluster, backup_root, bench_db)
    assert code == 1
    assert f"no backup available for a restore drill of {bench_db}: no complete backup" in err
    assert pg_cluster.databases() == before


# ----------------------------------------------------------------------------- globals


ROLES_SQL = """
CREATE ROLE drill_owner LOGIN PASSWORD 'owner-Pa55-for-tests' CONNECTION LIMIT 7;
CREATE ROLE "drill reader" NOLOGIN;
GRANT "drill reader" TO drill_owner;
ALTER ROLE drill_owner SET work_mem = '8MB';
"""
ROLE_FACTS_SQL = (
    "SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, coalesce(r.rolpassword, ''), "
    "coalesce(array_to_string(s.setconfig, ','), ''), "
    "coalesce((SELECT string_agg(g.rolname, ',') FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
    "WHERE m.member = r.oid), '') "
    "FROM pg_authid r LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0 "
    "WHERE r.rolname IN ('drill_owner', 'drill reader') ORDER BY 1;"
)


@pytest.fixture
def owned_db(pg_cluster):
    pg_cluster.psql(ROLES_SQL, superuser=True)
    pg_cluster.psql('CREATE DATABASE it_globals OWNER drill_owner;', superuser=True)
    pg_cluster.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 25); "
                    "ALTER TABLE t OWNER TO drill_owner; GRANT SELECT ON t TO \"drill reader\", stackops;",
                    db="it_globals", superuser=True)
    yield "it_globals"
    pg_cluster.psql("DROP DATABASE IF EXISTS it_globals WITH (FORCE); DROP ROLE drill_owner; "
                    'DROP ROLE "drill reader";', superuser=True)


def restore_into(playbook, cluster, root, database, check=False, **options):
    args = {"database": database, "backup_dir": str(root), **superuser_conn(cluster), **options}
    return playbook(module_play("pg_restore", args, name="restore"), check=check)


def test_globals_rebuild_roles_on_an_empty_cluster(playbook, pg_cluster, backup_root, owned_db):
    res = backup(playbook, backup_root, owned_db, superuser_conn(pg_cluster))
    manifest = json.loads(Path(res["manifest_path"]).read_text())
    globals_path = Path(res["globals_path"])
    assert manifest["globals"]["file"] == globals_path.name and manifest["globals"]["role_passwords"] is True
    assert oct(globals_path.stat().st_mode & 0o777) == "0o600"
    source_roles = pg_cluster.psql(ROLE_FACTS_SQL, superuser=True)
    assert "SCRAM-SHA-256$" in source_roles

    with throwaway_cluster("stackops-pg-it-new-", test_user=False) as new:
        # Check mode plans the roles and changes nothing.
        run = restore_into(playbook, new, backup_root, owned_db, check=True, apply_globals=True)
        assert run.failed() == 0, failure_message(run)
        planned = run.task("restore")["roles_created"]
        assert planned.index("drill reader") < planned.index("drill_owner")  # pg_dumpall's order, kept
        assert {"drill reader", "drill_owner", "stackops"} <= set(planned) and "postgres" not in planned
        assert new.psql(ROLE_FACTS_SQL, superuser=True) == ""

        run = restore_into(playbook, new, backup_root, owned_db, apply_globals=True)
        assert run.failed() == 0, failure_message(run)
        assert new.psql(ROLE_FACTS_SQL, superuser=True) == source_roles  # attributes, password, settings, grants
        assert new.psql("SELECT count(*), pg_get_userbyid(relowner) FROM t, pg_class WHERE relname = 't' "
                        "GROUP BY 2;", db=owned_db, superuser=True) == "25|drill_owner"

        # Applying again is refused before anything changes: the cluster is no longer empty.
        new.psql(f"DROP DATABASE {qi(owned_db)} WITH (FORCE);", superuser=True)
        run = restore_into(playbook, new, backup_root, owned_db, apply_globals=True)
        assert run.failed() == 1
        message = failure_message(run)
        assert "apply_globals is for an empty cluster, but roles drill reader, drill_owner" in message, message
        assert "already exist" in message and "Nothing was changed" in message
        assert owned_db not in new.databases()


def test_tampered_globals_are_refused_before_anything_changes(playbook, pg_cluster, backup_root, owned_db):
    res = backup(playbook, backup_root, owned_db, pg_cluster.conn())
    globals_path = Path(res["globals_path"])
    manifest = json.loads(Path(res["manifest_path"]).read_text())
    assert manifest["globals"]["role_passwords"] is False  # not a superuser: roles without their passwords
    assert "PASSWORD" not in globals_path.read_text()
    globals_path.write_text(globals_path.read_text() + "CREATE ROLE intruder SUPERUSER LOGIN;\n")
    with throwaway_cluster("stackops-pg-it-new-", test_user=False) as new:
        run = restore_into(playbook, new, backup_root, owned_db, apply_globals=True)
        assert run.failed() == 1
        assert f"checksum verification failed for {globals_path}" in failure_message(run)
        assert new.psql("SELECT count(*) FROM pg_roles WHERE rolname !~ '^pg_';", superuser=True) == "1"
        assert new.psql("SELECT datname FROM pg_database ORDER BY 1;", superuser=True).split() == [
            "postgres", "template0", "template1"]
