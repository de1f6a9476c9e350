"""Unit tests of pg_backup_core: names, quoting, argv, manifest, retention, atomic publish."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_core as core
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as pbm
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_metrics as bmetrics
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_retention as retention
from ansible_collections.stackops.platform.plugins.module_utils import pg_client as client
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError
from ansible_collections.stackops.platform.tests.unit.plugins.pg_fakes import add_standins

UTC = datetime.UTC
NOW = datetime.datetime(2026, 2, 20, 5, 12, 28, tzinfo=UTC)
SECRET = "pa55-w0rd-never-in-argv"


def ts(days_ago=0, hours_ago=0):
    return pbm.format_timestamp(NOW - datetime.timedelta(days=days_ago, hours=hours_ago))


def entry(name_ts, ext="dump"):
    return {"name": f"app_{name_ts}.{ext}", "timestamp": name_ts}


# ----------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("database", "fmt", "expected"),
    [
        ("app", "custom", "app_20260220T051228Z.dump"),
        ("app", "directory", "app_20260220T051228Z.dir"),
        ("my-db.v2", "custom", "my-db.v2_20260220T051228Z.dump"),
        ("Ünïcode db", "directory", "Ünïcode db_20260220T051228Z.dir"),
    ],
)
def test_backup_name(database, fmt, expected):
    assert pbm.backup_name(database, pbm.format_timestamp(NOW), fmt) == expected
    assert pbm.parse_backup_name(database, expected) == ("20260220T051228Z", fmt)


def test_backup_name_rejects_unknown_format():
    with pytest.raises(PgBackupError, match="format 'tar' is not supported"):
        pbm.backup_name("app", "20260220T051228Z", "tar")


@pytest.mark.parametrize(
    "name",
    [
        ".app_20260220T051228Z.dump.partial",
        "app_20260220T051228Z.dump.manifest.json",
        "app_20260220T051228Z.tar",
        "app_2026022T051228Z.dump",
        "app_20261340T051228Z.dump",  # month 13: not a timestamp
        "appx_20260220T051228Z.dump",
        "app_other_20260220T051228Z.dump",
        "xapp_20260220T051228Z.dump",
        ".app_20260220T051228Z.dump.deleting",
    ],
)
def test_parse_backup_name_rejects_non_backups(name):
    assert pbm.parse_backup_name("app", name) is None


def test_parse_backup_name_escapes_regex_characters():
    assert pbm.parse_backup_name("a.b", "axb_20260220T051228Z.dump") is None
    assert pbm.parse_backup_name("a.b", "a.b_20260220T051228Z.dump") == ("20260220T051228Z", "custom")


def test_partial_and_manifest_names():
    assert pbm.partial_name("app_20260220T051228Z.dump") == ".app_20260220T051228Z.dump.partial"
    assert pbm.manifest_name("app_20260220T051228Z.dir") == "app_20260220T051228Z.dir.manifest.json"


@pytest.mark.parametrize("database", ["", "a/b", "..", ".", ".hidden", "nul\x00", "x" * 64])
def test_validate_database_name_rejects(database):
    with pytest.raises(PgBackupError):
        pbm.validate_database_name(database)


# ----------------------------------------------------------------------------- quoting


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("app", '"app"'),
        ("App", '"App"'),
        ('we"ird', '"we""ird"'),
        ("x; DROP DATABASE y", '"x; DROP DATABASE y"'),
        ("ünï", '"ünï"'),
    ],
)
def test_quote_ident(name, quoted):
    assert pbm.quote_ident(name) == quoted


@pytest.mark.parametrize("name", ["", "a\x00b", None])
def test_quote_ident_rejects(name):
    with pytest.raises(PgBackupError):
        pbm.quote_ident(name)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("app", "'app'"),
        ("o'neil", "'o''neil'"),
        ("back\\slash", "E'back\\\\slash'"),
        ("both'\\", "E'both''\\\\'"),
    ],
)
def test_quote_literal(value, quoted):
    assert pbm.quote_literal(value) == quoted


@pytest.mark.parametrize(
    ("database", "conninfo"),
    [
        ("app", "dbname='app'"),
        ("a=b host=evil", "dbname='a=b host=evil'"),
        ("it's", "dbname='it\\'s'"),
        ("back\\", "dbname='back\\\\'"),
    ],
)
def test_conninfo_dbname(database, conninfo):
    assert pbm.conninfo_dbname(database) == conninfo


# ----------------------------------------------------------------------------- argv and environment


def dump_params(**overrides):
    params = client.normalize_params(
        {"database": "app", "backup_dir": "/b", "password": SECRET, **overrides}, core.BACKUP_OPTIONS
    )
    return params


@pytest.mark.parametrize(
    ("overrides", "present", "absent"),
    [
        ({}, ["--format=c", "--no-password", "--dbname=dbname='app'"], ["--jobs=1", "-h", "-p", "-U"]),
        ({"format": "directory", "jobs": 4}, ["--format=d", "--jobs=4"], ["--format=c"]),
        ({"compress": 0}, ["--compress=0"], []),
        ({"compress": 9, "host": "/run/pg", "port": 5433, "user": "bk"}, ["--compress=9", "-h", "/run/pg",
                                                                          "5433", "bk"], []),
        ({"passfile": "/root/.pgpass"}, [], ["/root/.pgpass"]),
    ],
)
def test_build_pg_dump_argv(overrides, present, absent):
    argv = core.build_pg_dump_argv(dump_params(**overrides), "/usr/bin/pg_dump", "/b/app/.x.partial")
    assert argv[0] == "/usr/bin/pg_dump"
    assert "--file=/b/app/.x.partial" in argv
    for item in present:
        assert item in argv
    for item in absent:
        assert item not in argv
    assert not any(SECRET in part for part in argv)
    assert not any(part.startswith("--password") or part == "-W" for part in argv)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"password": SECRET}, {"PGPASSWORD": SECRET}),
        ({"passfile": "/x/pgpass"}, {"PGPASSFILE": "/x/pgpass"}),
        ({}, {}),
    ],
)
def test_client_env(params, expected):
    env = client.client_env(params, base={"PATH": "/bin"})
    for key, value in expected.items():
        assert env[key] == value
    if "password" not in params:
        assert "PGPASSWORD" not in env
    assert env["PATH"] == "/bin"


def test_redact_hides_password():
    assert SECRET not in client.redact(f"error: {SECRET} rejected", {"password": SECRET})
    assert client.redact("  plain  ", {}) == "plain"


# ----------------------------------------------------------------------------- parameter checks


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format": "tar"}, "format 'tar' is not supported"),
        ({"jobs": 4}, "jobs=4 needs format=directory"),
        ({"jobs": 0}, "jobs must be 1 or more"),
        ({"compress": 10}, "compress must be between 0 and 9, got 10"),
        ({"keep_last": 0}, "retention keep_last=0 keeps nothing"),
        ({"keep_days": -1}, "keep_days must be 0 or more, got -1"),
        ({"keep_last": "three"}, "keep_last must be an integer, got 'three'"),
        ({"verify": "yes"}, "verify must be true or false"),
        ({"database": "a/b"}, "database 'a/b' cannot be used"),
        ({"bogus": 1}, "unknown option"),
    ],
)
def test_check_backup_params_errors(tmp_path, overrides, message):
    with pytest.raises(PgBackupError, match=message.replace("(", r"\(").replace(")", r"\)")):
        core.check_backup_params({"database": "app", "backup_dir": str(tmp_path), **overrides})


def test_check_backup_params_missing_backup_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(PgBackupError, match=f"backup_dir {missing} does not exist"):
        core.check_backup_params({"database": "app", "backup_dir": str(missing)})


# ----------------------------------------------------------------------------- retention


@pytest.mark.parametrize(
    ("ages_days", "keep_last", "keep_days", "pruned_idx"),
    [
        ([0, 1, 2, 3], None, None, []),  # no rule: keep everything
        ([0, 1, 2, 3], 2, None, [2, 3]),
        ([0, 1, 2, 3], 10, None, []),
        ([0, 1, 2, 3], 1, None, [1, 2, 3]),
        ([0, 1, 2, 5], None, 3, [3]),
        ([10, 20, 30], None, 1, [1, 2]),  # all old: the newest survives anyway
        ([10, 20, 30], 1, 1, [1, 2]),
        ([0, 1, 2, 3, 8, 9], 2, 7, [4, 5]),  # union: young ones kept by keep_days, old beyond keep_last go
        ([0, 8, 9, 10], 3, 7, [3]),  # union: old but within keep_last kept
        ([0], 1, 1, []),
        ([], 1, 1, []),
    ],
)
def test_select_prune(ages_days, keep_last, keep_days, pruned_idx):
    backups = [entry(ts(days_ago=age)) for age in ages_days]
    pruned = retention.select_prune(backups, keep_last, keep_days, now=NOW)
    assert [b["name"] for b in pruned] == [backups[i]["name"] for i in pruned_idx]


def test_select_prune_never_prunes_newest_or_protected_whatever_the_order():
    backups = [entry(ts(days_ago=d)) for d in (30, 10, 20)]  # newest (10 days) is in the middle
    pruned = retention.select_prune(backups, keep_last=1, keep_days=1, now=NOW, protect={backups[0]["name"]})
    assert [b["name"] for b in pruned] == [backups[2]["name"]]


def write_backup(db_dir, name, manifest_name=None, data=b"PGDMP data", with_manifest=True):
    path = db_dir / name
    if name.endswith(".dir"):
        path.mkdir()
        (path / "toc.dat").write_bytes(data)
    else:
        path.write_bytes(data)
    if with_manifest:
        sha, size, files = pbm.hash_backup(str(path))
        manifest = {"name": manifest_name or name, "sha256": sha, "size": size}
        if files is not None:
            manifest["files"] = files
        (db_dir / (name + ".manifest.json")).write_text(json.dumps(manifest))
    return path


def test_list_backups_counts_only_complete_backups(tmp_path):
    db_dir = tmp_path / "app"
    db_dir.mkdir()
    write_backup(db_dir, "app_20260101T000000Z.dump")
    write_backup(db_dir, "app_20260102T000000Z.dir")
    write_backup(db_dir, "app_20260103T000000Z.dump", with_manifest=False)  # no manifest
    write_backup(db_dir, "app_20260104T000000Z.dump", manifest_name="app_other.dump")  # manifest names another
    (db_dir / ".app_20260105T000000Z.dump.partial").write_bytes(b"PGDMP")
    (db_dir / "app_20260106T000000Z.dump.manifest.json").write_text('{"name": "app_20260106T000000Z.dump"}')
    (db_dir / "app_20260107T000000Z.dump.manifest.json").write_text("{not json")
    (db_dir / "app_20260107T000000Z.dump").write_bytes(b"x")
    (db_dir / "app_20260108T000000Z.dir").write_bytes(b"a file named like a directory backup")
    (db_dir / "app_20260108T000000Z.dir.manifest.json").write_text('{"name": "app_20260108T000000Z.dir"}')
    names = [b["name"] for b in pbm.list_backups(str(db_dir), "app")]
    assert names == ["app_20260102T000000Z.dir", "app_20260101T000000Z.dump"]
    assert pbm.list_backups(str(tmp_path / "missing"), "app") == []


def test_delete_backup_and_clean_stale(tmp_path):
    db_dir = tmp_path / "app"
    db_dir.mkdir()
    path = write_backup(db_dir, "app_20260102T000000Z.dir")
    (db_dir / ".app_20260105T000000Z.dump.partial").write_bytes(b"x")
    (db_dir / ".app_20260105T000000Z.dir.partial").mkdir()
    (db_dir / ".app_20260101T000000Z.dump.deleting").write_bytes(b"x")
    keep = write_backup(db_dir, "app_20260103T000000Z.dump")
    backup = pbm.list_backups(str(db_dir), "app")[1]
    retention.delete_backup(backup)
    assert not path.exists() and not (db_dir / (path.name + ".manifest.json")).exists()
    orphans = ["app_20260104T000000Z.dump.manifest.json", "app_20260106T000000Z.dump"]
    for orphan in orphans:  # never counted as backups, never deleted either
        (db_dir / orphan).write_bytes(b"{}")
    removed = core.clean_stale(str(db_dir))
    assert len(removed) == 3
    assert [b["name"] for b in pbm.list_backups(str(db_dir), "app")] == [keep.name]
    for orphan in orphans:
        (db_dir / orphan).unlink()
    assert sorted(p.name for p in db_dir.iterdir()) == [keep.name, keep.name + ".manifest.json"]


# ----------------------------------------------------------------------------- hashing and manifest


def test_hash_file_and_directory_digest(tmp_path):
    data = os.urandom(3 * pbm.HASH_BUFFER // 2)
    (tmp_path / "f").write_bytes(data)
    assert pbm.hash_backup(str(tmp_path / "f")) == (hashlib.sha256(data).hexdigest(), len(data), None)
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "toc.dat").write_bytes(b"toc")
    (folder / "sub" / "1.dat.gz").write_bytes(b"one")
    sha, size, files = pbm.hash_backup(str(folder), fsync=True)
    assert files == {"toc.dat": hashlib.sha256(b"toc").hexdigest(), "sub/1.dat.gz": hashlib.sha256(b"one").hexdigest()}
    assert size == 6
    assert sha == pbm.directory_digest(files)
    lines = f"{files['sub/1.dat.gz']}  sub/1.dat.gz\n{files['toc.dat']}  toc.dat\n"
    assert sha == hashlib.sha256(lines.encode()).hexdigest()


def test_verify_against_manifest_names_the_bad_file(tmp_path):
    folder = tmp_path / "app_20260220T051228Z.dir"
    folder.mkdir()
    (folder / "toc.dat").write_bytes(b"toc")
    (folder / "3.dat.gz").write_bytes(b"rows")
    sha, _size, files = pbm.hash_backup(str(folder))
    manifest = {"sha256": sha, "files": files}
    assert pbm.verify_against_manifest(str(folder), manifest)[0] == sha
    (folder / "3.dat.gz").write_bytes(b"rowz")
    with pytest.raises(PgBackupError, match=r"3\.dat\.gz: sha256 mismatch"):
        pbm.verify_against_manifest(str(folder), manifest)
    single = tmp_path / "x.dump"
    single.write_bytes(b"abc")
    with pytest.raises(PgBackupError, match=f"checksum verification failed for {single}"):
        pbm.verify_against_manifest(str(single), {"sha256": "0" * 64})
    with pytest.raises(PgBackupError, match="has no sha256"):
        pbm.verify_against_manifest(str(single), {})


@pytest.mark.parametrize(("fmt", "files"), [("custom", None), ("directory", {"toc.dat": "ab" * 32})])
def test_build_manifest(fmt, files):
    params = client.normalize_params({"database": "app", "backup_dir": "/b", "format": fmt, "compress": 5,
                                      "password": SECRET, "host": "db1", "port": 5432}, core.BACKUP_OPTIONS)
    started = NOW
    finished = NOW + datetime.timedelta(seconds=12.5)
    archive = {"server_version": "15.18", "pg_dump_version": "15.18", "tables": 4}
    manifest = pbm.build_manifest(params, "app_20260220T051228Z.dump", sha="cd" * 32, size=10, files=files,
                                  started=started, finished=finished, archive=archive, pg_dump_version="15.18",
                                  verified=True)
    assert manifest["database"] == "app" and manifest["format"] == fmt and manifest["compress"] == 5
    assert manifest["duration"] == 12.5
    assert manifest["started_at"] == "2026-02-20T05:12:28+00:00"
    assert manifest["tool"] == {"name": "stackops.platform.pg_backup", "version": pbm.TOOL_VERSION}
    assert manifest["server_version"] == "15.18" and manifest["pg_dump_version"] == "15.18"
    assert manifest["host"]
    assert ("files" in manifest) == (files is not None)
    assert SECRET not in json.dumps(manifest)


def test_parse_archive_header():
    listing = (
        ";\n;     dbname: app\n;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)\n"
        ";     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)\n;\n"
        "216; 1259 16392 TABLE public pgbench_accounts stackops\n"
        "217; 1259 16395 TABLE public pgbench_branches stackops\n"
        "3358; 0 16392 TABLE DATA public pgbench_accounts stackops\n"
        "3211; 2606 16407 CONSTRAINT public pgbench_accounts pgbench_accounts_pkey stackops\n"
    )
    info = client.parse_archive_header(listing)
    assert info["tables"] == 2 and info["entries"] == 4 and info["dbname"] == "app"
    assert info["server_version"].startswith("15.18")


# ----------------------------------------------------------------------------- end to end with fake tools


def fake_tools(tmp_path, dump_body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pg_dump").write_text("#!/bin/sh\n" + dump_body)
    (bin_dir / "pg_restore").write_text("#!/bin/sh\necho ';     Dumped from database version: 15.1'\n"
                                        "echo '1; 1 1 TABLE public t o'\n")
    add_standins(bin_dir)
    for tool in ("pg_dump", "pg_restore"):
        (bin_dir / tool).chmod(0o755)
    return str(bin_dir)


GOOD_DUMP = (
    'case "$1" in --version) echo "pg_dump (PostgreSQL) 15.1"; exit 0;; esac\n'
    '[ -n "$PGPASSWORD" ] || exit 3\n'
    'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
    'printf "PGDMP fake dump" > "$f"\n'
)


def test_run_backup_publishes_atomically_and_prunes(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    db_dir = backups / "app"
    db_dir.mkdir()
    old = [write_backup(db_dir, f"app_2020010{i}T000000Z.dump") for i in (1, 2)]
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path, GOOD_DUMP),
              "password": SECRET, "keep_last": 2}
    plan = core.plan_backup(params)
    assert [os.path.basename(p) for p in plan["pruned"]] == [old[0].name]
    expected = [o.name for o in old] + [o.name + ".manifest.json" for o in old]
    assert sorted(p.name for p in db_dir.iterdir()) == sorted(expected)
    result = core.run_backup(params)
    assert result["pruned"] == [str(old[0])]
    assert result["sha256"] == hashlib.sha256(b"PGDMP fake dump").hexdigest()
    with open(result["manifest_path"]) as handle:
        manifest = json.load(handle)
    assert manifest["sha256"] == result["sha256"] and manifest["server_version"] == "15.1"
    assert [b["name"] for b in pbm.list_backups(str(db_dir), "app")] == [result["name"], old[1].name]
    assert not [p for p in db_dir.iterdir() if p.name.endswith((".partial", ".tmp", ".deleting"))]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
         'printf "half" > "$f"; echo "pg_dump: error: connection lost" >&2; exit 1\n',
         "pg_dump failed with exit code 1: pg_dump: error: connection lost"),
        ('for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
         'printf "half" > "$f"; kill -9 $$\n', "pg_dump was killed by signal 9"),
        ("exit 0\n", "produced an empty backup"),
        (f'echo "password {SECRET} leaked" >&2; exit 1\n', "password \\*\\*\\*\\*\\*\\*\\*\\* leaked"),
    ],
)
def test_run_backup_failure_leaves_no_backup_and_prunes_nothing(tmp_path, body, message):
    backups = tmp_path / "backups"
    db_dir = backups / "app"
    db_dir.mkdir(parents=True)
    old = write_backup(db_dir, "app_20200101T000000Z.dump")
    before = sorted(p.name for p in db_dir.iterdir())
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path, body),
              "password": SECRET, "keep_last": 1}
    with pytest.raises(PgBackupError, match=message) as excinfo:
        core.run_backup(params)
    assert SECRET not in str(excinfo.value)
    assert sorted(p.name for p in db_dir.iterdir() if p.name != ".lock") == before
    assert old.exists()


def test_script_main(tmp_path, capsys):
    backups = tmp_path / "backups"
    backups.mkdir()
    config = tmp_path / "pg_backup-app.json"
    config.write_text(json.dumps({"database": "app", "backup_dir": str(backups),
                                  "bin_dir": fake_tools(tmp_path, GOOD_DUMP), "password": SECRET}))
    assert core.main(["--config", str(config), "--check"]) == 0
    assert not (backups / "app").exists()
    assert core.main(["--config", str(config)]) == 0
    result = json.loads(capsys.readouterr().out.split("\n}\n", 1)[1])
    assert os.path.exists(result["path"])
    config.write_text(json.dumps({"database": "app", "backup_dir": str(tmp_path / "missing")}))
    assert core.main(["--config", str(config)]) == 1
    assert "backup_dir" in capsys.readouterr().err
    config.write_text("{broken")
    assert core.main(["--config", str(config)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_second_concurrent_backup_is_refused(tmp_path):
    backups = tmp_path / "backups"
    (backups / "app").mkdir(parents=True)
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path, GOOD_DUMP),
              "password": SECRET}
    with core.backup_lock(str(backups / "app")), pytest.raises(PgBackupError, match="another backup is running"):
        core.run_backup(params)
    assert pbm.list_backups(str(backups / "app"), "app") == []
    assert core.run_backup(params)["path"]


def test_same_second_runs_get_distinct_names(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path, GOOD_DUMP),
              "password": SECRET}
    first, second = core.run_backup(params), core.run_backup(params)
    assert first["name"] != second["name"]
    assert len(pbm.list_backups(str(backups / "app"), "app")) == 2


def test_plan_in_the_same_second_as_a_backup_counts_the_new_one(tmp_path):
    # Check mode right after a backup must plan the name run_backup would take (the next
    # free second), so retention reports the same prune list a real run would apply.
    backups = tmp_path / "backups"
    db_dir = backups / "app"
    db_dir.mkdir(parents=True)
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    taken = [write_backup(db_dir, f"app_20260102T03040{s}Z.dump") for s in (3, 4, 5)]
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path, GOOD_DUMP),
              "password": SECRET, "keep_last": 2}
    plan = core.plan_backup(params, now=now)
    assert os.path.basename(plan["path"]) == "app_20260102T030406Z.dump"
    assert [os.path.basename(p) for p in plan["pruned"]] == [taken[1].name, taken[0].name]


# ----------------------------------------------------------------------------- textfile metrics


def write_finished_backup(db_dir, name, finished_at, size, duration, data=b"PGDMP data"):
    """A complete backup whose manifest carries what run_backup records (finished_at, size, duration)."""
    path = write_backup(db_dir, name, data=data)
    manifest_path = db_dir / (name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest.update(finished_at=finished_at, size=size, duration=duration)
    manifest_path.write_text(json.dumps(manifest))
    return path


def metrics_lines(path):
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_write_backup_metrics_exact_output(tmp_path):
    db_dir = tmp_path / "backups" / "app"
    db_dir.mkdir(parents=True)
    write_finished_backup(db_dir, "app_20260219T023000Z.dump", "2026-02-19T02:30:07.250000+00:00", 1000, 7.25)
    write_finished_backup(db_dir, "app_20260220T023000Z.dir", "2026-02-20T02:30:12.500000+00:00", 2048, 12.5)
    # Newer, but not complete: neither the newest backup nor counted.
    write_backup(db_dir, "app_20260220T050000Z.dump", with_manifest=False)
    (db_dir / ".app_20260220T051000Z.dump.partial").write_bytes(b"PGDMP")
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    path = bmetrics.write_backup_metrics(str(metrics), str(tmp_path / "backups"), "app", True, now=NOW)
    assert path == str(metrics / "stackops_pg_backup_app.prom")
    finished = datetime.datetime(2026, 2, 20, 2, 30, 12, 500000, tzinfo=UTC).timestamp()
    assert finished == 1771554612.5
    help_text = bmetrics.METRIC_HELP
    expected = []
    for key, value in [
        ("last_success_timestamp_seconds", "1771554612.5"),
        ("last_size_bytes", "2048"),
        ("last_duration_seconds", "12.5"),
        ("count", "2"),
        ("last_run_success", "1"),
        ("last_run_timestamp_seconds", "1771564348.0"),
    ]:
        name = f"stackops_pg_backup_{key}"
        expected += [f"# HELP {name} {help_text[key]}", f"# TYPE {name} gauge", f'{name}{{database="app"}} {value}']
    assert (metrics / "stackops_pg_backup_app.prom").read_text() == "\n".join(expected) + "\n"
    assert NOW.timestamp() == 1771564348.0


def test_metrics_without_finished_at_fall_back_to_the_backup_name(tmp_path):
    # A manifest without finished_at (older tool, hand-made) still counts, dated by its name (the start).
    db_dir = tmp_path / "app"
    db_dir.mkdir()
    write_backup(db_dir, "app_20260220T023000Z.dump")
    values = bmetrics.backup_metrics(str(db_dir), "app", True, now=NOW)
    assert values["last_success_timestamp_seconds"] == datetime.datetime(2026, 2, 20, 2, 30, tzinfo=UTC).timestamp()
    assert values["count"] == 1
    assert "last_duration_seconds" not in values  # the manifest has no duration


def test_metrics_without_backups_omit_last_success(tmp_path):
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    # The database directory does not even exist yet (first run failed before creating it).
    path = bmetrics.write_backup_metrics(str(metrics), str(tmp_path / "backups"), "app", False, now=NOW)
    text = Path(path).read_text()
    for key in ("last_success_timestamp_seconds", "last_size_bytes", "last_duration_seconds"):
        assert f"stackops_pg_backup_{key}" not in text  # absent() in the alert rule must still fire
    assert metrics_lines(metrics / "stackops_pg_backup_app.prom") == [
        'stackops_pg_backup_count{database="app"} 0',
        'stackops_pg_backup_last_run_success{database="app"} 0',
        'stackops_pg_backup_last_run_timestamp_seconds{database="app"} 1771564348.0',
    ]


def test_failed_run_keeps_the_last_success_from_disk(tmp_path):
    backups = tmp_path / "backups"
    db_dir = backups / "app"
    db_dir.mkdir(parents=True)
    write_finished_backup(db_dir, "app_20260219T023000Z.dump", "2026-02-19T02:30:05+00:00", 10, 5)
    metrics = tmp_path / "textfile"
    later = NOW + datetime.timedelta(days=1)
    bmetrics.write_backup_metrics(str(metrics), str(backups), "app", False, now=later)
    lines = metrics_lines(metrics / "stackops_pg_backup_app.prom")
    assert 'stackops_pg_backup_last_success_timestamp_seconds{database="app"} 1771468205.0' in lines
    assert 'stackops_pg_backup_last_run_success{database="app"} 0' in lines
    assert f'stackops_pg_backup_last_run_timestamp_seconds{{database="app"}} {later.timestamp()!r}' in lines
    assert 'stackops_pg_backup_count{database="app"} 1' in lines


def test_metrics_after_a_real_run_match_its_manifest(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    params = {
        "database": "app",
        "backup_dir": str(backups),
        "bin_dir": fake_tools(tmp_path, GOOD_DUMP),
        "password": SECRET,
    }
    result = core.run_backup(params)
    values = bmetrics.backup_metrics(str(backups / "app"), "app", True)
    finished = datetime.datetime.fromisoformat(result["manifest"]["finished_at"]).timestamp()
    assert values["last_success_timestamp_seconds"] == finished
    assert values["last_size_bytes"] == len(b"PGDMP fake dump")
    assert values["last_duration_seconds"] == result["manifest"]["duration"]


def test_metrics_label_value_is_escaped(tmp_path):
    database = 'we"ird\\db'
    assert bmetrics.escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    path = bmetrics.write_backup_metrics(str(tmp_path), str(tmp_path / "backups"), database, True, now=NOW)
    assert os.path.basename(path) == f"stackops_pg_backup_{database}.prom"
    assert 'stackops_pg_backup_count{database="we\\"ird\\\\db"} 0' in metrics_lines(tmp_path / os.path.basename(path))


def test_metrics_write_is_atomic_and_world_readable(tmp_path, monkeypatch):
    metrics = tmp_path / "textfile"
    old_umask = os.umask(0o077)  # what the backup unit runs with
    try:
        path = bmetrics.write_backup_metrics(str(metrics), str(tmp_path / "backups"), "app", True, now=NOW)
    finally:
        os.umask(old_umask)
    assert os.stat(metrics).st_mode & 0o777 == 0o755
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.listdir(metrics) == ["stackops_pg_backup_app.prom"]
    before = Path(path).read_text()

    seen = []

    def failing_replace(src, dst):
        seen.append(src)
        assert not src.endswith(".prom")  # node exporter only reads *.prom: never a half-written file
        assert os.path.dirname(src) == str(metrics)  # same filesystem, so the rename is atomic
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.os, "replace", failing_replace)
    with pytest.raises(PgBackupError, match=f"cannot write backup metrics {path} .*No space left on device"):
        bmetrics.write_backup_metrics(str(metrics), str(tmp_path / "backups"), "app", False, now=NOW)
    assert seen
    assert os.listdir(metrics) == ["stackops_pg_backup_app.prom"]  # temp file removed
    assert Path(path).read_text() == before  # the previous file still stands


def test_metrics_bad_directory_names_the_path(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(PgBackupError, match=f"metrics directory {afile} exists but is not a directory"):
        bmetrics.write_backup_metrics(str(afile), str(tmp_path), "app", True)
    below = afile / "sub"
    with pytest.raises(PgBackupError, match=f"directory {below}\\)"):
        bmetrics.write_backup_metrics(str(below), str(tmp_path), "app", True)
    with pytest.raises(PgBackupError, match="cannot be used as a directory name"):
        bmetrics.write_backup_metrics(str(tmp_path), str(tmp_path), "../x", True)


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        ("success", {"SERVICE_RESULT": "exit-code"}, True),
        ("failure", {"SERVICE_RESULT": "success"}, False),
        (None, {"SERVICE_RESULT": "success"}, True),
        (None, {"SERVICE_RESULT": "exit-code"}, False),
        (None, {"SERVICE_RESULT": "signal"}, False),
        (None, {"SERVICE_RESULT": "timeout"}, False),
    ],
)
def test_run_result_from(option, environ, expected):
    assert bmetrics.run_result_from(option, environ) is expected


def test_run_result_needs_a_source():
    with pytest.raises(PgBackupError, match="--run-result success\\|failure"):
        bmetrics.run_result_from(None, {})


def test_script_main_write_metrics(tmp_path, capsys, monkeypatch):
    backups = tmp_path / "backups"
    (backups / "app").mkdir(parents=True)
    write_finished_backup(backups / "app", "app_20260219T023000Z.dump", "2026-02-19T02:30:05+00:00", 10, 5)
    config = tmp_path / "pg_backup-app.json"
    config.write_text(json.dumps({"database": "app", "backup_dir": str(backups), "keep_last": 3}))
    metrics = tmp_path / "textfile"
    prom = metrics / "stackops_pg_backup_app.prom"
    before = sorted(p.name for p in (backups / "app").iterdir())

    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    assert core.main(["--config", str(config), "--write-metrics", str(metrics)]) == 0
    assert json.loads(capsys.readouterr().out)["metrics_path"] == str(prom)
    assert 'stackops_pg_backup_last_run_success{database="app"} 0' in metrics_lines(prom)
    assert 'stackops_pg_backup_last_success_timestamp_seconds{database="app"} 1771468205.0' in metrics_lines(prom)
    assert sorted(p.name for p in (backups / "app").iterdir()) == before  # no backup was taken

    assert core.main(["--config", str(config), "--write-metrics", str(metrics), "--run-result", "success"]) == 0
    assert 'stackops_pg_backup_last_run_success{database="app"} 1' in metrics_lines(prom)

    monkeypatch.delenv("SERVICE_RESULT")
    assert core.main(["--config", str(config), "--write-metrics", str(metrics)]) == 1
    assert "SERVICE_RESULT" in capsys.readouterr().err

    assert core.main(["--config", str(config), "--write-metrics", str(config), "--run-result", "success"]) == 1
    assert f"metrics directory {config} exists but is not a directory" in capsys.readouterr().err

    for argv in (["--check", "--write-metrics", str(metrics)], ["--run-result", "success"]):
        with pytest.raises(SystemExit) as excinfo:
            core.main(["--config", str(config), *argv])
        assert excinfo.value.code == 2


@pytest.mark.parametrize(
    "psql_body",
    [
        'echo "psql: error: connection to server failed: password pa55-w0rd-never-in-argv rejected" >&2; exit 2\n',
        # The session starts, then the count query fails (a table the backup user may not read).
        'while IFS= read -r line; do case "$line" in *pg_export_snapshot*) echo 00000003-1B-1;;'
        ' *is_superuser*) echo off;; *json_object_agg*) echo "ERROR:  permission denied for table'
        ' pa55-w0rd-never-in-argv" >&2; exit 3;; esac; done\n',
    ],
    ids=["no-connection", "count-refused"],
)
def test_snapshot_session_failure_reports_psql_and_leaves_nothing(tmp_path, psql_body):
    backups = tmp_path / "backups"
    backups.mkdir()
    bin_dir = fake_tools(tmp_path, GOOD_DUMP)
    (Path(bin_dir) / "psql").write_text("#!/bin/sh\n" + psql_body)
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": bin_dir, "password": SECRET}
    with pytest.raises(PgBackupError, match=r"row counts of app: psql failed: .*(connection|permission).*\*{8}") as err:
        core.run_backup(params)
    assert SECRET not in str(err.value)
    assert sorted(p.name for p in (backups / "app").iterdir()) == [".lock"]
