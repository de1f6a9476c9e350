"""pg_backup and pg_restore against a real PostgreSQL 15 cluster, driven through ansible-runner.

Every test checks what the modules report AND verifies independently: files on disk, the
manifest's checksum recomputed here, and each table's row count and md5 queried with psql.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pg_helpers import PG_BIN, failure_message, install_like_the_role, installed_env, module_play, qi


def backup(playbook, cluster, root, database, check=False, **options):
    args = {"database": database, "backup_dir": str(root), **cluster.conn(), **options}
    return playbook(module_play("pg_backup", args, name="backup"), check=check, diff=True)


def restore(playbook, cluster, database, check=False, **options):
    args = {"database": database, **cluster.conn(), **options}
    return playbook(module_play("pg_restore", args, name="restore"), check=check, diff=True)


def tree(root: Path) -> dict[str, int]:
    """Every path under root (hidden ones included) with its size, to prove nothing changed."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def complete_backups(root: Path, database: str) -> list[str]:
    db_dir = root / database
    if not db_dir.exists():
        return []
    names = [p.name for p in db_dir.iterdir() if p.suffix in (".dump", ".dir") and not p.name.startswith(".")]
    return sorted(n for n in names if (db_dir / (n + ".manifest.json")).exists())


def sha256_of(path: Path) -> str:
    if path.is_dir():
        files = {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(path.rglob("*")) if p.is_file()}
        lines = "".join(f"{files[rel]}  {rel}\n" for rel in sorted(files))
        return hashlib.sha256(lines.encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_bytes(path: Path) -> Path:
    """Corrupt a backup in place (for a directory, its largest data file); return the file touched."""
    if path.is_dir():
        path = max((p for p in path.iterdir() if p.name != "toc.dat"), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_backup_check_mode_then_apply_then_verify(playbook, pg_cluster, backup_root, bench_db, fmt):
    options = {"format": fmt, "jobs": 2 if fmt == "directory" else 1, "compress": 6}
    run = backup(playbook, pg_cluster, backup_root, bench_db, check=True, **options)
    assert run.failed() == 0, failure_message(run)
    assert run.changed() == 1
    planned = run.task("backup")["path"]
    assert planned.startswith(str(backup_root / bench_db / f"{bench_db}_"))
    assert tree(backup_root) == {}
    assert not (backup_root / bench_db).exists()

    run = backup(playbook, pg_cluster, backup_root, bench_db, **options)
    assert run.failed() == 0, failure_message(run)
    assert run.changed() == 1
    res = run.task("backup")
    path = Path(res["path"])
    assert path.name.endswith(".dump" if fmt == "custom" else ".dir")
    assert path.is_dir() == (fmt == "directory")
    manifest = json.loads(Path(res["manifest_path"]).read_text())
    assert manifest["sha256"] == res["sha256"] == sha256_of(path)
    assert manifest["database"] == bench_db and manifest["format"] == fmt and manifest["compress"] == 6
    assert manifest["server_version"].startswith("15.")
    assert manifest["pg_dump_version"].startswith("15.")
    for key in ("started_at", "finished_at", "duration", "host", "tool", "size"):
        assert manifest[key] not in (None, "")
    if fmt == "directory":
        assert set(manifest["files"]) == {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}
    assert stat.S_IMODE(os.stat(res["manifest_path"]).st_mode) == 0o600
    assert [p.name for p in (backup_root / bench_db).iterdir() if p.name.endswith(".partial")] == []
    assert pg_cluster.password not in json.dumps(res)


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_restore_replace_swaps_and_keeps_previous(playbook, pg_cluster, backup_root, bench_db, fmt):
    before = pg_cluster.fingerprint(bench_db)
    run = backup(playbook, pg_cluster, backup_root, bench_db, format=fmt)
    assert run.failed() == 0, failure_message(run)
    # Damage the live database after the backup.
    pg_cluster.psql("DELETE FROM pgbench_accounts WHERE aid <= 500; UPDATE pgbench_branches SET bbalance = 42;",
                    db=bench_db)
    damaged = pg_cluster.fingerprint(bench_db)
    assert damaged != before
    dbs_before = pg_cluster.databases()

    run = restore(playbook, pg_cluster, bench_db, check=True, backup_dir=str(backup_root), mode="replace")
    assert run.failed() == 0, failure_message(run)
    assert run.changed() == 1
    assert run.task("restore")["action"] == "replace"
    assert pg_cluster.databases() == dbs_before
    assert pg_cluster.fingerprint(bench_db) == damaged

    run = restore(playbook, pg_cluster, bench_db, backup_dir=str(backup_root), mode="replace", jobs=2)
    assert run.failed() == 0, failure_message(run)
    assert run.changed() == 1
    res = run.task("restore")
    assert res["tables_restored"] == 4
    assert res["sha256"] == sha256_of(Path(res["source"]))
    previous = res["previous"]
    assert previous.startswith(f"{bench_db}_pre_restore_")
    assert pg_cluster.fingerprint(bench_db) == before
    assert pg_cluster.fingerprint(previous) == damaged
    assert pg_cluster.databases() == dbs_before | {previous}


def test_restore_replace_drop_previous(playbook, pg_cluster, backup_root, bench_db):
    before = pg_cluster.fingerprint(bench_db)
    assert backup(playbook, pg_cluster, backup_root, bench_db).failed() == 0
    pg_cluster.psql("TRUNCATE pgbench_history, pgbench_tellers;", db=bench_db)
    dbs_before = pg_cluster.databases()
    run = restore(playbook, pg_cluster, bench_db, backup_dir=str(backup_root), mode="replace", drop_previous=True)
    assert run.failed() == 0, failure_message(run)
    assert run.task("restore")["previous"] is None
    assert pg_cluster.databases() == dbs_before
    assert pg_cluster.fingerprint(bench_db) == before


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_restore_new_creates_database_and_refuses_non_empty(playbook, pg_cluster, backup_root, bench_db, fmt):
    before = pg_cluster.fingerprint(bench_db)
    run = backup(playbook, pg_cluster, backup_root, bench_db, format=fmt, jobs=2 if fmt == "directory" else 1)
    assert run.failed() == 0, failure_message(run)
    source = run.task("backup")["path"]
    copy = f"{bench_db}_copy"

    run = restore(playbook, pg_cluster, bench_db, check=True, source=source, target=copy)
    assert run.failed() == 0, failure_message(run)
    assert run.task("restore")["action"] == "create"
    assert copy not in pg_cluster.databases()

    run = restore(playbook, pg_cluster, bench_db, source=source, target=copy, mode="new", jobs=2)
    assert run.failed() == 0, failure_message(run)
    assert run.task("restore")["previous"] is None
    assert pg_cluster.fingerprint(copy) == before

    # The live database is not empty: mode=new must refuse and change nothing.
    dbs = pg_cluster.databases()
    run = restore(playbook, pg_cluster, bench_db, source=source, mode="new")
    assert run.failed() == 1
    msg = failure_message(run)
    assert f"database {bench_db} already exists and is not empty" in msg and "mode=replace" in msg
    assert pg_cluster.databases() == dbs
    assert pg_cluster.fingerprint(bench_db) == before


def test_restore_new_into_existing_empty_database(playbook, pg_cluster, backup_root, bench_db):
    before = pg_cluster.fingerprint(bench_db)
    assert backup(playbook, pg_cluster, backup_root, bench_db).failed() == 0
    empty = f"{bench_db}_empty"
    pg_cluster.psql(f"CREATE DATABASE {qi(empty)};")
    run = restore(playbook, pg_cluster, bench_db, backup_dir=str(backup_root), target=empty)
    assert run.failed() == 0, failure_message(run)
    assert run.task("restore")["action"] == "restore_into_empty"
    assert pg_cluster.fingerprint(empty) == before


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_corrupted_backup_is_refused_and_nothing_changes(playbook, pg_cluster, backup_root, bench_db, fmt):
    run = backup(playbook, pg_cluster, backup_root, bench_db, format=fmt)
    assert run.failed() == 0, failure_message(run)
    path = Path(run.task("backup")["path"])
    pg_cluster.psql("DELETE FROM pgbench_accounts WHERE aid <= 10;", db=bench_db)
    live = pg_cluster.fingerprint(bench_db)
    dbs = pg_cluster.databases()
    touched = flip_bytes(path)

    for check in (True, False):
        run = restore(playbook, pg_cluster, bench_db, check=check, backup_dir=str(backup_root), mode="replace")
        assert run.failed() == 1
        msg = failure_message(run)
        assert "checksum verification failed" in msg and str(touched) in msg
        assert pg_cluster.databases() == dbs
        assert pg_cluster.fingerprint(bench_db) == live


def test_killed_dump_leaves_no_backup_and_retention_keeps_good_ones(playbook, pg_cluster, backup_root, bench_db,
                                                                    tmp_path):
    for _round in range(2):
        run = backup(playbook, pg_cluster, backup_root, bench_db, keep_last=2)
        assert run.failed() == 0, failure_message(run)
    good = complete_backups(backup_root, bench_db)
    assert len(good) == 2
    # A stale partial from an earlier killed run must never count as a backup (check mode: listing only).
    stale = backup_root / bench_db / f".{bench_db}_20991231T000000Z.dump.partial"
    stale.write_bytes(b"PGDMP partial")
    run = backup(playbook, pg_cluster, backup_root, bench_db, check=True, keep_last=1)
    assert run.failed() == 0, failure_message(run)
    assert sorted(run.task("backup")["backups_before"]) == good
    assert sorted(Path(p).name for p in run.task("backup")["pruned"]) == good
    snapshot = tree(backup_root)

    wrapper = write_script(tmp_path / "pg_dump", (
        f'case "$1" in --version) exec {PG_BIN}/pg_dump --version;; esac\n'
        'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
        'head -c 65536 /dev/urandom > "$f"\n'
        'echo "pg_dump: simulated crash" >&2\n'
        'kill -9 $$\n'
    ))
    run = backup(playbook, pg_cluster, backup_root, bench_db, keep_last=1, pg_dump_path=wrapper)
    assert run.failed() == 1
    assert run.changed() == 0
    msg = failure_message(run)
    assert "killed by signal 9" in msg and "simulated crash" in msg
    # No new file, nothing pruned; the run (holding the lock) removed the stale partial.
    after = tree(backup_root)
    assert set(after) == set(snapshot) - {str(stale.relative_to(backup_root))}
    assert complete_backups(backup_root, bench_db) == good

    # The next good run prunes down to keep_last, the new (newest) backup kept.
    run = backup(playbook, pg_cluster, backup_root, bench_db, keep_last=1)
    assert run.failed() == 0, failure_message(run)
    res = run.task("backup")
    assert complete_backups(backup_root, bench_db) == [Path(res["path"]).name]
    assert sorted(Path(p).name for p in res["pruned"]) == good
    assert sorted(p.name for p in (backup_root / bench_db).iterdir()) == sorted(
        [".lock", Path(res["path"]).name, Path(res["manifest_path"]).name, Path(res["globals_path"]).name]
    )


def test_retention_check_mode_reports_without_deleting(playbook, pg_cluster, backup_root, bench_db):
    for _round in range(3):
        assert backup(playbook, pg_cluster, backup_root, bench_db).failed() == 0
    good = complete_backups(backup_root, bench_db)
    snapshot = tree(backup_root)
    run = backup(playbook, pg_cluster, backup_root, bench_db, check=True, keep_last=2)
    assert run.failed() == 0, failure_message(run)
    assert sorted(Path(p).name for p in run.task("backup")["pruned"]) == good[:2]
    assert tree(backup_root) == snapshot
    # keep_days keeps everything young even when keep_last alone would prune.
    run = backup(playbook, pg_cluster, backup_root, bench_db, keep_last=1, keep_days=7)
    assert run.failed() == 0, failure_message(run)
    assert run.task("backup")["pruned"] == []
    assert len(complete_backups(backup_root, bench_db)) == 4


def test_restore_failing_half_way_leaves_live_database_intact(playbook, pg_cluster, backup_root, bench_db, tmp_path):
    assert backup(playbook, pg_cluster, backup_root, bench_db).failed() == 0
    pg_cluster.psql("DELETE FROM pgbench_accounts WHERE aid <= 10;", db=bench_db)
    live = pg_cluster.fingerprint(bench_db)
    dbs = pg_cluster.databases()
    wrapper = write_script(tmp_path / "pg_restore", (
        f'case " $* " in *" --list "*) exec {PG_BIN}/pg_restore "$@";; esac\n'
        f'{PG_BIN}/pg_restore --section=pre-data "$@" || exit 2\n'
        'echo "pg_restore: error: simulated failure half-way" >&2\n'
        'exit 1\n'
    ))
    run = restore(playbook, pg_cluster, bench_db, backup_dir=str(backup_root), mode="replace",
                  pg_restore_path=wrapper)
    assert run.failed() == 1 and run.changed() == 0
    msg = failure_message(run)
    assert "simulated failure half-way" in msg and f"{bench_db} was not touched" in msg
    assert pg_cluster.databases() == dbs
    assert pg_cluster.fingerprint(bench_db) == live

    # A restore whose sanity query fails is abandoned the same way.
    run = restore(playbook, pg_cluster, bench_db, backup_dir=str(backup_root), mode="replace",
                  sanity_query="SELECT count(*) > 1000000 FROM pgbench_branches")
    assert run.failed() == 1
    assert "sanity_query returned 'f'" in failure_message(run)
    assert pg_cluster.databases() == dbs
    assert pg_cluster.fingerprint(bench_db) == live


def test_odd_database_name_is_quoted_end_to_end(playbook, pg_cluster, backup_root):
    """Quotes, spaces and capitals in the name go through pg_dump, file names, SQL and the swap intact."""
    name = 'Odd "db" it\'s'
    pg_cluster.pgbench_init(name)
    try:
        before = pg_cluster.fingerprint(name)
        run = backup(playbook, pg_cluster, backup_root, name, format="directory")
        assert run.failed() == 0, failure_message(run)
        assert Path(run.task("backup")["path"]).parent == backup_root / name
        pg_cluster.psql("DELETE FROM pgbench_accounts;", db=name)
        run = restore(playbook, pg_cluster, name, backup_dir=str(backup_root), mode="replace")
        assert run.failed() == 0, failure_message(run)
        previous = run.task("restore")["previous"]
        assert previous == name + previous[len(name):] and previous in pg_cluster.databases()
        assert pg_cluster.fingerprint(name) == before
    finally:
        for db in pg_cluster.databases():
            if db.startswith(name):
                pg_cluster.psql(f"DROP DATABASE IF EXISTS {qi(db)} WITH (FORCE);", superuser=True)


def test_bad_input_is_refused_with_the_value_named(playbook, pg_cluster, backup_root, tmp_path):
    missing = tmp_path / "no-such-dir"
    run = backup(playbook, pg_cluster, missing, "postgres")
    assert run.failed() == 1 and f"backup_dir {missing} does not exist" in failure_message(run)
    assert not missing.exists()

    run = backup(playbook, pg_cluster, backup_root, "no_such_db")
    assert run.failed() == 1 and run.changed() == 0
    assert 'database "no_such_db" does not exist' in failure_message(run)
    assert complete_backups(backup_root, "no_such_db") == []
    assert [p.name for p in (backup_root / "no_such_db").iterdir() if p.name != ".lock"] == []

    run = backup(playbook, pg_cluster, backup_root, "postgres", format="tar")
    assert run.failed() == 1 and "tar" in failure_message(run) and "format" in failure_message(run)

    run = restore(playbook, pg_cluster, "no_such_db", backup_dir=str(backup_root))
    assert run.failed() == 1
    assert f"no complete backup (dump plus manifest) of database no_such_db in {backup_root}" in failure_message(run)

    run = restore(playbook, pg_cluster, "postgres", source=str(tmp_path / "nope.dump"), target="x_target")
    assert run.failed() == 1 and f"source {tmp_path / 'nope.dump'} does not exist" in failure_message(run)
    assert "x_target" not in pg_cluster.databases()


def test_wrong_password_fails_without_echoing_it(playbook, pg_cluster, backup_root):
    wrong = "Wr0ng-Pa55word-xyz"
    args = {"database": "postgres", "backup_dir": str(backup_root), **pg_cluster.conn(), "password": wrong}
    run = playbook(module_play("pg_backup", args, name="backup"))
    assert run.failed() == 1 and run.changed() == 0
    msg = failure_message(run)
    assert "password authentication failed" in msg
    assert wrong not in json.dumps([e["res"] for e in run.results])
    assert complete_backups(backup_root, "postgres") == []


def test_core_script_entry_point_matches_module_layout(pg_cluster, backup_root, bench_db, tmp_path):
    """The systemd timer runs the module_utils the role installs (python3 -m, PYTHONPATH) with a JSON config."""
    installed = install_like_the_role(tmp_path / "lib")
    core = ["-m", "ansible_collections.stackops.platform.plugins.module_utils.pg_backup_core"]
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_cluster.port}:*:{pg_cluster.user}:{pg_cluster.password}\n")
    passfile.chmod(0o600)
    config = tmp_path / f"pg_backup-{bench_db}.json"
    conn = {k: v for k, v in pg_cluster.conn().items() if k != "password"}
    config.write_text(json.dumps({"database": bench_db, "backup_dir": str(backup_root), "passfile": str(passfile),
                                  "keep_last": 1, **conn}))
    env = installed_env(installed)
    proc = subprocess.run([sys.executable, *core, "--config", str(config)], capture_output=True, text=True,
                          env=env, check=False, cwd=str(installed))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert complete_backups(backup_root, bench_db) == [Path(result["path"]).name]
    assert result["sha256"] == sha256_of(Path(result["path"]))

    config.write_text(json.dumps({"database": "no_such_db", "backup_dir": str(backup_root),
                                  "passfile": str(passfile), **conn}))
    proc = subprocess.run([sys.executable, *core, "--config", str(config)], capture_output=True, text=True,
                          env=env, check=False, cwd=str(installed))
    assert proc.returncode != 0 and 'database "no_such_db" does not exist' in proc.stderr
    assert proc.stdout == ""
