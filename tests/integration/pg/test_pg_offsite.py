"""Encrypted off-site copies against real PostgreSQL 15 and moto's S3 server (the test endpoint).

pg_backup uploads through the module, the local backups are deleted, pg_restore rebuilds the
database from the bucket alone, and the per-table checksums (row count + md5 of every row) are
compared with psql. The refusals (tampered object, wrong age key, unreachable endpoint) are each
shown to change nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pg_helpers import PG_BIN, failure_message, free_port, install_like_the_role, installed_env, module_play, qi
from s3_helpers import ACCESS_KEY, SECRET_KEY, age_key

from ansible_collections.stackops.platform.plugins.module_utils import backup_offsite_metrics as offsite_metrics
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core

AGE_MAGIC = b"age-encryption.org/v1"
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def offsite_db(pg_cluster, request):
    """A pgbench database plus a table with awkward values, dropped afterwards with its copies."""
    name = f"it_off_{abs(hash(request.node.name)) % 100000}"
    pg_cluster.pgbench_init(name)
    pg_cluster.psql(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz DEFAULT now());"
        "INSERT INTO notes (body) SELECT repeat(md5(g::text), 3) || E'\\n\\'' FROM generate_series(1, 500) g;",
        db=name,
    )
    yield name
    for db in pg_cluster.databases():
        if db.startswith(name):
            pg_cluster.psql(f"DROP DATABASE IF EXISTS {qi(db)} WITH (FORCE);", superuser=True)


def backup(playbook, cluster, root, database, offsite, check=False, **options):
    args = {"database": database, "backup_dir": str(root), **cluster.conn(), "offsite": offsite, **options}
    return playbook(module_play("pg_backup", args, name="backup"), check=check)


def restore(playbook, cluster, database, offsite, check=False, **options):
    args = {"database": database, **cluster.conn(), "offsite": offsite, **options}
    return playbook(module_play("pg_restore", args, name="restore"), check=check)


def test_backup_upload_delete_local_restore_from_remote(
    playbook, pg_cluster, offsite_db, backup_root, bucket, tmp_path
):
    key = age_key(tmp_path)
    offsite = bucket.options(recipients=[key.recipient], keep_daily=7, keep_monthly=12)

    check = backup(playbook, pg_cluster, backup_root, offsite_db, offsite, check=True)
    assert check.failed() == 0, failure_message(check)
    planned = check.task("backup")["offsite"]["uploaded"]
    # Check mode plans one upload (the backup it would write; its name carries the clock) and sends nothing.
    assert len(planned) == 1 and planned[0].startswith(offsite_db + "_") and bucket.objects() == {}

    run = backup(playbook, pg_cluster, backup_root, offsite_db, offsite)
    assert run.failed() == 0, failure_message(run)
    result = run.task("backup")
    assert result["offsite"]["uploaded"] == [result["name"]]
    objects = bucket.objects()
    prefix = f"ci/{offsite_db}/{result['name']}"
    # The dump, the globals file (pg_dumpall --globals-only) and the manifest, uploaded last.
    assert set(objects) == {prefix + ".age", prefix + ".globals.sql.age", prefix + ".manifest.json.age"}
    for data in objects.values():
        # The bucket holds no plaintext: every object is an age file, neither dump, globals nor manifest.
        assert data.startswith(AGE_MAGIC)
        assert b"PGDMP" not in data and result["sha256"].encode() not in data and b"pgbench_accounts" not in data
        assert b"CREATE ROLE" not in data

    before = pg_cluster.fingerprint(offsite_db)
    shutil.rmtree(backup_root / offsite_db)

    target = offsite_db + "_fromremote"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    got = restore(playbook, pg_cluster, offsite_db, offsite, target=target,
                  offsite_identity=key.identity, download_dir=str(downloads))
    assert got.failed() == 0, failure_message(got)
    restored = got.task("restore")
    assert restored["offsite_backup"] == result["name"] and restored["sha256"] == result["sha256"]
    assert pg_cluster.fingerprint(target) == before
    assert list(downloads.iterdir()) == []  # the plaintext copy and the identity file are gone
    assert key.identity.split("AGE-SECRET-KEY-")[1][:20] not in str(got.results)


def test_tampered_remote_object_is_refused_before_anything_changes(
    playbook, pg_cluster, offsite_db, backup_root, bucket, tmp_path
):
    key = age_key(tmp_path)
    offsite = bucket.options(recipients=[key.recipient])
    run = backup(playbook, pg_cluster, backup_root, offsite_db, offsite)
    assert run.failed() == 0, failure_message(run)
    name = run.task("backup")["name"]
    data_key = f"ci/{offsite_db}/{name}.age"
    client = bucket.client()
    original = bucket.objects()[data_key]
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    databases = pg_cluster.databases()

    # 1. Bytes changed, recorded sha256 left: refused on the sha256 after download.
    tampered_path = tmp_path / "tampered.age"
    tampered_path.write_bytes(bytes(tampered))
    client.put_file(data_key, str(tampered_path), metadata={"sha256": "0" * 64})
    got = restore(playbook, pg_cluster, offsite_db, offsite, target=offsite_db + "_t1", offsite_identity=key.identity)
    assert got.failed() == 1
    assert "is damaged or was tampered with: sha256" in failure_message(got)
    assert pg_cluster.databases() == databases

    # 2. Bytes changed and the recorded sha256 forged to match: age's authentication refuses it.
    sha, _size = core.hash_file(str(tampered_path))
    client.put_file(data_key, str(tampered_path), metadata={"sha256": sha})
    got = restore(playbook, pg_cluster, offsite_db, offsite, target=offsite_db + "_t2", offsite_identity=key.identity)
    assert got.failed() == 1
    assert "damaged or was tampered with, age refused it" in failure_message(got)
    assert pg_cluster.databases() == databases


def test_wrong_age_key_is_refused_with_a_clear_error(playbook, pg_cluster, offsite_db, backup_root, bucket, tmp_path):
    right, wrong = age_key(tmp_path, "right"), age_key(tmp_path, "wrong")
    offsite = bucket.options(recipients=[right.recipient])
    run = backup(playbook, pg_cluster, backup_root, offsite_db, offsite)
    assert run.failed() == 0, failure_message(run)
    databases = pg_cluster.databases()
    got = restore(playbook, pg_cluster, offsite_db, offsite, target=offsite_db + "_w",
                  offsite_identity_file=str(wrong.identity_file), check=True)
    assert got.failed() == 1
    assert "the age identity does not match the recipients of this backup" in failure_message(got)
    assert pg_cluster.databases() == databases


def test_unreachable_endpoint_fails_the_upload_and_keeps_the_local_backup(
    playbook, pg_cluster, offsite_db, backup_root, tmp_path
):
    key = age_key(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    offsite = {"endpoint": dead, "bucket": "nowhere", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
               "recipients": [key.recipient], "attempts": 2, "timeout": 5}
    run = backup(playbook, pg_cluster, backup_root, offsite_db, offsite)
    assert run.failed() == 1
    message = failure_message(run)
    assert "is complete and kept, but its off-site copy failed: cannot list off-site backups" in message
    assert f"cannot reach S3 endpoint {dead}" in message and "Connection refused" in message
    local = core.list_backups(str(backup_root / offsite_db), offsite_db)
    assert len(local) == 1
    core.verify_against_manifest(local[0]["path"], core.read_manifest(local[0]["manifest_path"]))
    state = offsite_metrics.read_state({"backup_dir": str(backup_root), "database": offsite_db})
    assert state["last_run_success"] == 0 and "cannot reach S3 endpoint" in state["error"]
    assert "last_success_timestamp_seconds" not in state


def test_backup_playbook_passes_the_roles_offsite_settings(playbook, bucket, tmp_path):
    """playbooks/backup.yml in check mode: the role's variables reach pg_backup's offsite option, the
    bucket is listed (read only) and the planned upload reported; nothing is written anywhere."""
    key = age_key(tmp_path)
    backups = tmp_path / "backups"
    backups.mkdir()
    host = "pg-offsite-playbook"
    line = f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} ansible_become_user=root"
    role_vars = {
        "postgres_databases": [{"name": "app"}],
        "postgres_backup_dir": str(backups),
        "postgres_backup_keep_daily": 7,
        "postgres_backup_offsite_enabled": True,
        "postgres_backup_offsite_endpoint": bucket.url,
        "postgres_backup_offsite_bucket": bucket.bucket,
        "postgres_backup_offsite_access_key": ACCESS_KEY,
        "postgres_backup_offsite_secret_key": SECRET_KEY,
        "postgres_backup_offsite_recipients": [key.recipient],
    }
    host_vars = "".join(f"{k}={json.dumps(v)}\n" for k, v in role_vars.items())
    inventory = f"[postgres]\n{line}\n[postgres:vars]\n{host_vars}"
    run = playbook(str(REPO_ROOT / "playbooks" / "backup.yml"), check=True, inventory=inventory)
    assert run.failed(host) == 0, failure_message(run)
    (result,) = run.task("Back up each database over the local socket")["results"]
    assert result["offsite"]["prefix"] == f"{host}/app/"
    assert result["offsite"]["uploaded"] == [os.path.basename(result["path"])]
    assert result["invocation"]["module_args"]["keep_daily"] == 7
    assert result["invocation"]["module_args"]["offsite"]["secret_key"] != SECRET_KEY  # masked (no_log)
    assert SECRET_KEY not in json.dumps(run.results)
    assert list(backups.iterdir()) == [] and bucket.objects() == {}


def test_restore_drill_of_the_remote_copy_from_the_installed_files(
    playbook, pg_cluster, offsite_db, backup_root, bucket, tmp_path
):
    """The drill unit's program with ``offsite``: the bucket's copy is fetched, checked, decrypted, restored into a
    scratch database, its row counts compared with the manifest's, and everything it downloaded is removed."""
    key = age_key(tmp_path)
    run = backup(playbook, pg_cluster, backup_root, offsite_db, bucket.options(recipients=[key.recipient]))
    assert run.failed() == 0, failure_message(run)
    made = run.task("backup")
    counts = json.loads(Path(made["manifest_path"]).read_text())["row_counts"]
    shutil.rmtree(backup_root / offsite_db)  # the drill has only the bucket to go on
    (backup_root / offsite_db).mkdir()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    lib = install_like_the_role(tmp_path / "lib")
    config = tmp_path / f"pg_drill-{offsite_db}.json"
    config.write_text(json.dumps({
        "database": offsite_db, "backup_dir": str(backup_root), "host": pg_cluster.host, "port": pg_cluster.port,
        "user": pg_cluster.user, "bin_dir": str(PG_BIN), "download_dir": str(downloads),
        "offsite": {**bucket.options(), "identity_file": str(key.identity_file)},
    }))
    before = pg_cluster.databases()
    argv = [sys.executable, "-m", "ansible_collections.stackops.platform.plugins.module_utils.pg_drill_core",
            "--config", str(config)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env=installed_env(lib, PGPASSWORD=pg_cluster.password))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["origin"] == f"offsite:{bucket.bucket}/ci/{offsite_db}/{made['name']}"
    assert result["rows_compared"] == sum(counts.values()) > 0 and result["scratch_dropped"] is True
    assert pg_cluster.databases() == before and list(downloads.iterdir()) == []

    # A wrong key: the drill fails naming the off-site refusal, creates no scratch database.
    other = age_key(tmp_path, "other")
    config.write_text(json.dumps({**json.loads(config.read_text()),
                                  "offsite": {**bucket.options(), "identity_file": str(other.identity_file)}}))
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env=installed_env(lib, PGPASSWORD=pg_cluster.password))
    assert proc.returncode == 1 and "no off-site backup available for a restore drill" in proc.stderr
    assert pg_cluster.databases() == before and list(downloads.iterdir()) == []
