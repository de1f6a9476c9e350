"""The off-site sync against moto's S3 server, with STANDIN backups on disk (no database needed).

Covers what the timer does from the installed files alone (script mode, metrics), remote GFS
retention (check mode equals the real run), multipart uploads, verify=download and the
directory format's tar round trip.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pg_helpers import install_like_the_role, installed_env
from s3_helpers import age_key

from ansible_collections.stackops.platform.plugins.module_utils import backup_offsite as offsite
from ansible_collections.stackops.platform.plugins.module_utils import backup_offsite_fetch as fetch_mod
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core

PACKAGE = "ansible_collections.stackops.platform.plugins.module_utils"


def standin_backup(db_dir: Path, when: datetime.datetime, payload: bytes = b"PGDMP STANDIN", directory=False) -> str:
    """A complete backup (dump + manifest with a real sha256) named for ``when``."""
    name = f"app_{core.format_timestamp(when)}.{'dir' if directory else 'dump'}"
    path = db_dir / name
    if directory:
        path.mkdir()
        (path / "toc.dat").write_bytes(b"TOC " + payload)
        (path / "3001.dat.gz").write_bytes(payload * 3)
    else:
        path.write_bytes(payload)
    sha, size, files = core.hash_backup(str(path))
    manifest = {"name": name, "sha256": sha, "size": size, "format": "directory" if directory else "custom"}
    if files:
        manifest["files"] = files
    (db_dir / (name + ".manifest.json")).write_text(json.dumps(manifest))
    return name


@pytest.fixture
def setup(tmp_path, bucket):
    backups = tmp_path / "backups"
    db_dir = backups / "app"
    db_dir.mkdir(parents=True)
    key = age_key(tmp_path)
    params = {**bucket.options(recipients=[key.recipient]), "database": "app", "backup_dir": str(backups)}
    return {"db_dir": db_dir, "key": key, "params": params, "bucket": bucket, "tmp": tmp_path}


def remote_names(params):
    checked = offsite.check_offsite_params(params)
    return [r["name"] for r in offsite.list_remote(offsite.make_client(checked), checked) if r["good"]]


def test_timer_runs_the_sync_from_the_installed_files_alone(setup):
    """The timer's ExecStart and ExecStopPost: python3 -m ...backup_offsite from only the files the role
    installs (_postgres_backup_modules), no Ansible on sys.path."""
    lib = install_like_the_role(setup["tmp"] / "lib")
    now = core.utc_now()
    names = [standin_backup(setup["db_dir"], now - datetime.timedelta(days=d)) for d in (2, 1, 0)]
    (setup["db_dir"] / (names[-1] + ".globals.sql")).write_text("CREATE ROLE app;\n")
    config = setup["tmp"] / "pg_offsite-app.json"
    config.write_text(json.dumps({**setup["params"], "keep_last": 2}))
    env = installed_env(lib, HOME=str(setup["tmp"]))
    # -s: no user site; the installed package on PYTHONPATH is all it can import of ours.
    argv = [sys.executable, "-s", "-m", f"{PACKAGE}.backup_offsite", "--config", str(config)]
    check = subprocess.run([*argv, "--check"], capture_output=True, text=True, env=env, check=False)
    assert check.returncode == 0, check.stderr
    planned = json.loads(check.stdout)
    assert planned["uploaded"] == [names[2], names[1]] and remote_names(setup["params"]) == []
    run = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["uploaded"] == planned["uploaded"] and result["remote_deleted"] == planned["remote_deleted"] == []
    assert remote_names(setup["params"]) == [names[2], names[1]]
    keys = setup["bucket"].objects()
    assert f"ci/app/{names[2]}.globals.sql.age" in keys
    metrics = setup["tmp"] / "metrics"
    written = subprocess.run([*argv, "--write-metrics", str(metrics)], capture_output=True, text=True, env=env,
                             check=False)
    assert written.returncode == 0, written.stderr
    text = (metrics / "stackops_pg_backup_offsite_app.prom").read_text()
    assert 'stackops_pg_backup_offsite_last_run_success{database="app"} 1' in text
    assert 'stackops_pg_backup_offsite_remote_count{database="app"} 2' in text

    # A run against a dead endpoint exits 1 with the reason, records the failure, keeps every local backup.
    config.write_text(json.dumps({**setup["params"], "endpoint": "http://127.0.0.1:9", "attempts": 1}))
    failed = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert failed.returncode == 1 and "cannot reach S3 endpoint http://127.0.0.1:9" in failed.stderr
    subprocess.run([*argv, "--write-metrics", str(metrics)], check=True, env=env, capture_output=True)
    text = (metrics / "stackops_pg_backup_offsite_app.prom").read_text()
    assert 'stackops_pg_backup_offsite_last_run_success{database="app"} 0' in text
    assert "stackops_pg_backup_offsite_last_success_timestamp_seconds" in text
    assert [b["name"] for b in core.list_backups(str(setup["db_dir"]), "app")] == list(reversed(names))


def test_remote_gfs_retention_check_mode_equals_the_real_run(setup):
    end = core.utc_now().replace(hour=1, minute=0, second=0, microsecond=0)
    policy = {"keep_daily": 3, "keep_weekly": 2, "keep_monthly": 2}
    for day in range(70, 0, -3):
        standin_backup(setup["db_dir"], end - datetime.timedelta(days=day), payload=f"dump {day}".encode())
    params = {**setup["params"], "keep_last": 100}  # first: everything goes up
    offsite.sync(params)
    uploaded = remote_names(params)
    assert len(uploaded) == 24
    strict = {**setup["params"], **policy}
    plan = offsite.sync(strict, check_mode=True)
    assert remote_names(params) == uploaded  # check mode deleted nothing
    real = offsite.sync(strict)
    assert real["remote_deleted"] == plan["remote_deleted"] and real["remote_kept"] == plan["remote_kept"]
    left = remote_names(params)
    assert set(left) == set(real["remote_kept"]) and uploaded[0] in left
    assert len(left) < len(uploaded) and all(len(setup["bucket"].client().list(f"ci/app/{n}")) for n in left)
    # No object of a deleted backup is left behind.
    keys = setup["bucket"].objects()
    assert not [k for k in keys if any(n in k for n in real["remote_deleted"])]


def test_multipart_upload_verify_download_and_directory_round_trip(setup):
    payload = os.urandom(2 * 1024 * 1024) + b"tail"  # the tar holds it 4 times: more than one 5 MiB part
    name = standin_backup(setup["db_dir"], core.utc_now(), payload=payload, directory=True)
    params = {**setup["params"], "part_size_mb": 5, "verify": "download"}
    result = offsite.sync(params)
    assert result["uploaded"] == [name]
    head = setup["bucket"].client().head(f"ci/app/{name}.tar.age")
    parts = -(-int(head["content-length"]) // (5 * 1024 * 1024))
    assert parts > 1 and head["etag"].strip('"').endswith(f"-{parts}")  # it really went up in parts
    local = setup["db_dir"] / name
    restore_root = setup["tmp"] / "restore"
    restore_root.mkdir()
    fetch = {**params, "identity_file": None}
    with fetch_mod.fetched(fetch, "latest", work_root=str(restore_root), identity=setup["key"].identity) as (path, man):
        assert os.path.basename(path) == name and man["sha256"] == core.hash_backup(str(local))[0]
        assert sorted(os.listdir(path)) == ["3001.dat.gz", "toc.dat"]
        assert Path(path, "3001.dat.gz").read_bytes() == payload * 3
    assert list(restore_root.iterdir()) == []


def test_remote_restore_downloads_and_verifies_the_globals_the_manifest_records(setup):
    """The globals file comes back verified beside the dump; a bucket without it, or with another one, is refused."""
    name = standin_backup(setup["db_dir"], core.utc_now())
    globals_sql = b"CREATE ROLE app_reader;\n"
    (setup["db_dir"] / core.globals_name(name)).write_bytes(globals_sql)
    manifest_path = setup["db_dir"] / core.manifest_name(name)
    manifest = json.loads(manifest_path.read_text())
    manifest["globals"] = {"sha256": hashlib.sha256(globals_sql).hexdigest(), "size": len(globals_sql)}
    manifest_path.write_text(json.dumps(manifest))
    offsite.sync(setup["params"])
    fetch = {**setup["params"], "identity_file": str(setup["key"].identity_file)}
    restore_root = setup["tmp"] / "restore"
    restore_root.mkdir()
    with fetch_mod.fetched(fetch, "latest", work_root=str(restore_root)) as (path, man):
        assert Path(core.globals_name(path)).read_bytes() == globals_sql
        assert core.verify_globals(path, man) == core.globals_name(path)
    assert list(restore_root.iterdir()) == []

    checked = offsite.check_offsite_params(setup["params"])
    client = offsite.make_client(checked)
    globals_key = f"ci/app/{core.globals_name(name)}.age"
    wrong = setup["tmp"] / "other.globals.sql"
    wrong.write_bytes(b"CREATE ROLE intruder SUPERUSER;\n")
    swapped = setup["tmp"] / "other.globals.sql.age"
    subprocess.run(["age", "-r", setup["key"].recipient, "-o", str(swapped), str(wrong)], check=True)
    client.put_file(globals_key, str(swapped), {"sha256": hashlib.sha256(swapped.read_bytes()).hexdigest()})
    with (
        pytest.raises(offsite.OffsiteError, match=r"failed verification after decryption: .*globals\.sql: sha256"),
        fetch_mod.fetched(fetch, "latest", work_root=str(restore_root)),
    ):
        pass
    client.delete(globals_key)
    with (
        pytest.raises(offsite.OffsiteError, match=r"incomplete: its manifest records the globals file .* has no"),
        fetch_mod.fetched(fetch, "latest", work_root=str(restore_root)),
    ):
        pass
    assert list(restore_root.iterdir()) == []


def test_unknown_remote_backup_name_is_refused(setup):
    standin_backup(setup["db_dir"], core.utc_now())
    offsite.sync(setup["params"])
    fetch = {**setup["params"], "identity_file": str(setup["key"].identity_file)}
    with (
        pytest.raises(offsite.OffsiteError, match=r"off-site backup 'app_20200101T000000Z\.dump' is not in"),
        fetch_mod.fetched(fetch, "app_20200101T000000Z.dump", work_root=str(setup["tmp"])),
    ):
        pass


def test_one_sync_at_a_time_and_a_killed_syncs_leftovers_go(setup):
    name = standin_backup(setup["db_dir"], core.utc_now())
    leftover = setup["db_dir"] / ".offsite-work-killed"
    leftover.mkdir()
    (leftover / f".{name}.age.offsite.partial").write_bytes(b"half an upload")
    with offsite.offsite_lock(str(setup["db_dir"])):
        with pytest.raises(offsite.OffsiteError, match=r"another off-site sync of .* is running"):
            offsite.sync(setup["params"])
        assert remote_names(setup["params"]) == []
    assert offsite.sync(setup["params"])["uploaded"] == [name]
    assert not leftover.exists()
    assert sorted(p.name for p in setup["db_dir"].iterdir()) == sorted(
        [name, name + ".manifest.json", offsite.LOCK_FILE]
    )


STANDIN_DUMP = (
    "#!/bin/sh\n"
    'case "$1" in --version) echo "pg_dump (PostgreSQL) 15.1"; exit 0;; esac\n'
    'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
    'printf "PGDMP STANDIN dump" > "$f"\n'
)
STANDIN_RESTORE = "#!/bin/sh\necho ';     Dumped from database version: 15.1'\necho '1; 1 1 TABLE public t o'\n"


def test_backup_timer_script_prunes_by_gfs_from_the_installed_files_alone(tmp_path):
    """The unit's first ExecStart: python3 -m ...pg_backup_core applies GFS from the files the role installs."""
    lib = install_like_the_role(tmp_path / "lib")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("pg_dump", STANDIN_DUMP), ("pg_restore", STANDIN_RESTORE)):
        (bin_dir / tool).write_text(body)
        (bin_dir / tool).chmod(0o755)
    db_dir = tmp_path / "backups" / "app"
    db_dir.mkdir(parents=True)
    now = core.utc_now()
    old = [standin_backup(db_dir, now - datetime.timedelta(days=d)) for d in (40, 9, 8, 2)]
    config = tmp_path / "pg_backup-app.json"
    config.write_text(json.dumps({"database": "app", "backup_dir": str(tmp_path / "backups"), "bin_dir": str(bin_dir),
                                  "keep_last": 1, "keep_days": 0, "keep_daily": 2, "row_counts": False,
                                  "globals": False}))
    run = subprocess.run([sys.executable, "-s", "-m", f"{PACKAGE}.pg_backup_core", "--config", str(config)],
                         capture_output=True, text=True, check=False, env=installed_env(lib))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    # keep_daily 2: the new backup (today) and the newest of the previous day that has one (2 days ago).
    assert sorted(os.path.basename(p) for p in result["pruned"]) == sorted(old[:3])
    assert result["kept"][old[3]] == ["keep_daily"]
    assert result["kept"][result["name"]] == ["newest_good", "protected", "keep_last", "keep_daily"]
    assert [b["name"] for b in core.list_backups(str(db_dir), "app")] == [result["name"], old[3]]
