"""Unit tests of pg_restore_core: names, swap plan, argv, and the restore flow with a fake server."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as bcore
from ansible_collections.stackops.platform.plugins.module_utils import pg_restore_core as core
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError

NOW = datetime.datetime(2026, 2, 20, 5, 12, 28, tzinfo=datetime.UTC)
SECRET = "restore-pa55-never-in-argv"


@pytest.mark.parametrize(
    ("base", "suffix", "expected"),
    [
        ("app", "_restore_20260220051228", "app_restore_20260220051228"),
        ("a" * 60, "_restore_20260220051228", "a" * 40 + "_restore_20260220051228"),
        ("é" * 40, "_pre_restore_20260220051228", "é" * 18 + "_pre_restore_20260220051228"),
    ],
)
def test_name_with_suffix_fits_identifier_limit(base, suffix, expected):
    name = core.name_with_suffix(base, suffix)
    assert name == expected
    assert len(name.encode("utf-8")) <= 63


def test_restore_names():
    assert core.restore_names("app", NOW) == {
        "scratch": "app_restore_20260220051228",
        "previous": "app_pre_restore_20260220051228",
    }


@pytest.mark.parametrize("drop_previous", [False, True])
@pytest.mark.parametrize("target", ["app", 'we"ird', "it's"])
def test_swap_plan(target, drop_previous):
    names = core.restore_names(target, NOW)
    steps = core.swap_plan(target, names["scratch"], names["previous"], drop_previous)
    qt, qs, qp = (bcore.quote_ident(n) for n in (target, names["scratch"], names["previous"]))
    assert [s["name"] for s in steps] == ["terminate sessions", "rename scratch"] + (
        ["drop previous"] if drop_previous else []
    )
    assert "pg_terminate_backend" in steps[0]["sql"]
    assert f"WHERE datname = {bcore.quote_literal(target)}" in steps[0]["sql"]
    assert f"ALTER DATABASE {qt} RENAME TO {qp};" in steps[0]["sql"]
    assert steps[1]["sql"] == f"ALTER DATABASE {qs} RENAME TO {qt};\n"
    assert steps[1]["undo"] == f"ALTER DATABASE {qp} RENAME TO {qt};\n"
    if drop_previous:
        assert steps[2]["sql"] == f"DROP DATABASE IF EXISTS {qp} WITH (FORCE);\n"


def test_create_sql():
    assert core.create_sql("x") == 'CREATE DATABASE "x" TEMPLATE template0;\n'
    like = {"encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8", "owner": "o'wner"}
    assert core.create_sql("x", like) == (
        "CREATE DATABASE \"x\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' "
        "OWNER \"o'wner\";\n"
    )


@pytest.mark.parametrize(
    ("params", "single", "present", "absent"),
    [
        ({"jobs": 1}, False, ["--exit-on-error"], ["--single-transaction", "--no-owner"]),
        ({"jobs": 1}, True, ["--single-transaction"], []),
        ({"jobs": 4}, True, ["--jobs=4"], ["--single-transaction"]),
        ({"jobs": 1, "no_owner": True, "host": "h", "port": 1, "user": "u"}, False, ["--no-owner", "-h", "u"], []),
    ],
)
def test_build_pg_restore_argv(params, single, present, absent):
    argv = core.build_pg_restore_argv({**params, "password": SECRET}, "/bin/pg_restore", "db x", "/b/f.dump",
                                      single_transaction=single)
    assert argv[0] == "/bin/pg_restore" and argv[-1] == "/b/f.dump"
    assert "--dbname=dbname='db x'" in argv and "--no-password" in argv
    for item in present:
        assert item in argv
    for item in absent:
        assert item not in argv
    assert not any(SECRET in part for part in argv)


def test_build_psql_argv_reads_sql_from_stdin_and_never_the_password():
    argv = core.build_psql_argv({"host": "h", "user": "u", "password": SECRET}, "/bin/psql", "postgres")
    assert argv[-2:] == ["-f", "-"] and "ON_ERROR_STOP=1" in argv and "-X" in argv
    assert not any(SECRET in part for part in argv)


@pytest.mark.parametrize(
    ("value", "truthy"),
    [("t", True), ("1", True), ("42", True), ("yes", True), ("f", False), ("0", False), ("", False),
     ("false", False), (" F ", False)],
)
def test_is_truthy(value, truthy):
    assert core.is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mode": "merge"}, "mode 'merge' is not supported"),
        ({"jobs": 0}, "jobs must be 1 or more"),
        ({"target": "postgres"}, "target 'postgres' is the maintenance_db"),
        ({"target": "template1"}, "template database"),
        ({"target": "x" * 64}, "not a valid PostgreSQL database name"),
        ({"backup_dir": None}, "source=latest needs backup_dir"),
        ({"database": None, "target": "t"}, "source=latest needs database"),
        ({"database": None}, "database is required"),
    ],
)
def test_check_restore_params_errors(tmp_path, overrides, message):
    params = {"database": "app", "backup_dir": str(tmp_path), **overrides}
    with pytest.raises(PgBackupError, match=message):
        core.check_restore_params(params)


# ----------------------------------------------------------------------------- flow with a fake server


def make_backup(tmp_path, name="app_20260220T051228Z.dump", data=b"PGDMP archive"):
    db_dir = tmp_path / "backups" / "app"
    db_dir.mkdir(parents=True, exist_ok=True)
    path = db_dir / name
    path.write_bytes(data)
    sha, size, _files = bcore.hash_backup(str(path))
    (db_dir / (name + ".manifest.json")).write_text(json.dumps({"name": name, "sha256": sha, "size": size}))
    return path


class FakeRestorer:
    """Records SQL; ``fail_on`` maps a SQL fragment to the number of times it fails before succeeding."""

    pg_restore = "/bin/pg_restore"

    def __init__(self, databases, tables=4, fail_on=None):
        self.databases = dict(databases)
        self.tables = tables
        self.fail_on = dict(fail_on or {})
        self.statements = []

    def sql(self, sql, dbname=None, what="psql"):
        self.statements.append(sql)
        for fragment, times in self.fail_on.items():
            if fragment in sql and times:
                self.fail_on[fragment] = times - 1
                raise PgBackupError(f"{what}: psql failed: ERROR: simulated ({fragment})")
        return "t\n"

    def database_info(self, name):
        return self.databases.get(name)

    def count(self, dbname, sql, what):
        if sql == core.USER_TABLES_SQL:
            return self.tables
        return self.databases.get(dbname, {}).get("relations", 0)

    def list_archive(self, path):
        return {"tables": 4}

    def rename_with_retry(self, sql, what):
        return self.sql(sql, what=what)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(core, "utc_now", lambda: NOW)


LIVE = {"encoding": "UTF8", "collate": "C", "ctype": "C", "owner": "app", "relations": 7}


@pytest.fixture
def tools_ok(monkeypatch):
    calls = []

    def fake_run_tool(argv, params, what, stdin_text=None):
        calls.append(argv)
        return ""

    monkeypatch.setattr(core, "run_tool", fake_run_tool)
    return calls


def params(tmp_path, **overrides):
    return {"database": "app", "backup_dir": str(tmp_path / "backups"), "password": SECRET, **overrides}


def test_replace_swaps_and_keeps_previous(tmp_path, tools_ok):
    make_backup(tmp_path)
    fake = FakeRestorer({"app": LIVE})
    result = core.run_restore(params(tmp_path, mode="replace"), restorer=fake)
    assert result["action"] == "replace" and result["tables_restored"] == 4
    assert result["previous"].startswith("app_pre_restore_") and result["dropped_previous"] is False
    creates = [s for s in fake.statements if s.startswith("CREATE DATABASE")]
    assert len(creates) == 1 and "OWNER \"app\"" in creates[0] and result["scratch"] in creates[0]
    renames = [s for s in fake.statements if "RENAME TO" in s]
    assert f'RENAME TO "{result["previous"]}"' in renames[0] and renames[1].endswith('RENAME TO "app";\n')
    assert not any(s.startswith("DROP") for s in fake.statements)
    assert not any(SECRET in part for argv in tools_ok for part in argv)


def test_check_mode_changes_nothing(tmp_path, tools_ok):
    make_backup(tmp_path)
    fake = FakeRestorer({"app": LIVE})
    result = core.run_restore(params(tmp_path, mode="replace"), check_mode=True, restorer=fake)
    assert result["changed"] is True and result["action"] == "replace" and result["tables_restored"] is None
    assert all(s.startswith("SELECT") for s in fake.statements)
    assert tools_ok == []


def test_second_rename_failure_renames_the_live_database_back(tmp_path, tools_ok):
    make_backup(tmp_path)
    names = core.restore_names("app")
    fake = FakeRestorer({"app": LIVE}, fail_on={f'ALTER DATABASE "{names["scratch"]}" RENAME': 1})
    with pytest.raises(PgBackupError, match="simulated"):
        core.run_restore(params(tmp_path, mode="replace"), restorer=fake)
    renames = [s for s in fake.statements if "RENAME TO" in s]
    assert renames[-1] == f'ALTER DATABASE "{names["previous"]}" RENAME TO "app";\n'
    assert fake.statements[-1].startswith(f'DROP DATABASE IF EXISTS "{names["scratch"]}"')


def test_failed_undo_names_where_the_data_is(tmp_path, tools_ok):
    make_backup(tmp_path)
    names = core.restore_names("app")
    fake = FakeRestorer({"app": LIVE}, fail_on={
        f'ALTER DATABASE "{names["scratch"]}" RENAME': 1,
        f'ALTER DATABASE "{names["previous"]}" RENAME': 1,
    })
    with pytest.raises(PgBackupError, match=f"the live data is in database {names['previous']}"):
        core.run_restore(params(tmp_path, mode="replace"), restorer=fake)


def test_failed_pg_restore_drops_scratch_and_never_renames(tmp_path, monkeypatch):
    make_backup(tmp_path)

    def failing(argv, params, what, stdin_text=None):
        raise PgBackupError(f"{what}: pg_restore failed with exit code 1: boom")

    monkeypatch.setattr(core, "run_tool", failing)
    fake = FakeRestorer({"app": LIVE})
    with pytest.raises(PgBackupError, match="app was not touched"):
        core.run_restore(params(tmp_path, mode="replace"), restorer=fake)
    assert not any("RENAME" in s for s in fake.statements)
    assert fake.statements[-1].startswith('DROP DATABASE IF EXISTS "app_restore_')


@pytest.mark.parametrize(("tables", "query_result", "message"), [(3, "t", "has 3 tables"), (4, "f", "sanity_query")])
def test_failed_checks_drop_scratch(tmp_path, tools_ok, tables, query_result, message):
    make_backup(tmp_path)
    fake = FakeRestorer({"app": LIVE}, tables=tables)
    original = fake.sql

    def sql(sql, dbname=None, what="psql"):
        out = original(sql, dbname, what)
        return query_result + "\n" if what == "sanity_query" else out

    fake.sql = sql
    with pytest.raises(PgBackupError, match=message):
        core.run_restore(params(tmp_path, mode="replace", sanity_query="SELECT false"), restorer=fake)
    assert not any("RENAME" in s for s in fake.statements)
    assert fake.statements[-1].startswith("DROP DATABASE")


def test_new_mode_refuses_non_empty_and_creates_missing(tmp_path, tools_ok):
    make_backup(tmp_path)
    fake = FakeRestorer({"app": LIVE})
    with pytest.raises(PgBackupError, match="database app already exists and is not empty"):
        core.run_restore(params(tmp_path), restorer=fake)
    assert all(s.startswith("SELECT") for s in fake.statements)
    fake = FakeRestorer({})
    result = core.run_restore(params(tmp_path, target="fresh"), restorer=fake)
    assert result["action"] == "create" and result["previous"] is None
    assert fake.statements[-1] == f'ALTER DATABASE "{result["scratch"]}" RENAME TO "fresh";\n'


def test_new_mode_into_empty_database_uses_single_transaction(tmp_path, tools_ok):
    make_backup(tmp_path)
    fake = FakeRestorer({"app": {**LIVE, "relations": 0}})
    result = core.run_restore(params(tmp_path), restorer=fake)
    assert result["action"] == "restore_into_empty" and result["scratch"] is None
    assert "--single-transaction" in tools_ok[-1]
    assert not any(s.startswith(("CREATE", "ALTER", "DROP")) for s in fake.statements)


def test_drop_previous(tmp_path, tools_ok):
    make_backup(tmp_path)
    fake = FakeRestorer({"app": LIVE})
    result = core.run_restore(params(tmp_path, mode="replace", drop_previous=True), restorer=fake)
    assert result["previous"] is None and result["dropped_previous"] is True
    assert fake.statements[-1].startswith("DROP DATABASE IF EXISTS \"app_pre_restore_")


def test_checksum_mismatch_refuses_before_touching_the_server(tmp_path, tools_ok):
    path = make_backup(tmp_path)
    path.write_bytes(b"PGDMP archivX")
    fake = FakeRestorer({"app": LIVE})
    with pytest.raises(PgBackupError, match=f"checksum verification failed for {path}"):
        core.run_restore(params(tmp_path, mode="replace"), restorer=fake)
    assert fake.statements == [] and tools_ok == []


def test_source_resolution(tmp_path, tools_ok):
    older = make_backup(tmp_path, "app_20260219T000000Z.dump")
    newer = make_backup(tmp_path, "app_20260220T000000Z.dump")
    (newer.parent / ".app_20260221T000000Z.dump.partial").write_bytes(b"partial")
    assert core.resolve_source(core.check_restore_params(params(tmp_path)))[0] == str(newer)
    assert core.resolve_source(core.check_restore_params(params(tmp_path, source=str(older))))[0] == str(older)
    orphan = newer.parent / "app_20260222T000000Z.dump"
    orphan.write_bytes(b"x")
    with pytest.raises(PgBackupError, match="has no readable manifest"):
        core.resolve_source(core.check_restore_params(params(tmp_path, source=str(orphan))))
    with pytest.raises(PgBackupError, match="no complete backup"):
        core.resolve_source(core.check_restore_params(params(tmp_path, database="other")))


# ----------------------------------------------------------------------------- globals

GLOBALS_SQL = """SET default_transaction_read_only = off;
CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:x';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE "we""ird role";
GRANT "we""ird role" TO app GRANTED BY postgres;
"""


def test_globals_roles_and_script_skip_the_connecting_user():
    assert core.globals_roles(GLOBALS_SQL) == ["app", "postgres", 'we"ird role']
    script = core.globals_script(GLOBALS_SQL, "postgres")
    assert "CREATE ROLE postgres;" not in script
    assert "ALTER ROLE postgres WITH SUPERUSER" in script and "CREATE ROLE app;" in script


class RolesServer(FakeRestorer):
    psql = "/bin/psql"

    def __init__(self, roles):
        super().__init__({})
        self.params = {"maintenance_db": "postgres"}
        self.roles = roles

    def sql(self, sql, dbname=None, what="psql"):
        self.statements.append(sql)
        return json.dumps({"current": "postgres", "roles": self.roles}) + "\n"


def globals_backup(tmp_path, recorded=True):
    path = make_backup(tmp_path)
    globals_path = tmp_path / "backups" / "app" / (path.name + ".globals.sql")
    globals_path.write_text(GLOBALS_SQL)
    manifest_path = tmp_path / "backups" / "app" / (path.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    if recorded:
        sha, _size, _files = bcore.hash_backup(str(globals_path))
        manifest["globals"] = {"file": globals_path.name, "sha256": sha, "role_passwords": True}
    manifest_path.write_text(json.dumps(manifest))
    return path, manifest, globals_path


def test_plan_globals_on_an_empty_cluster(tmp_path):
    path, manifest, globals_path = globals_backup(tmp_path)
    plan = core.plan_globals(RolesServer(["postgres"]), str(path), manifest)
    assert plan["roles"] == ["app", 'we"ird role'] and plan["path"] == str(globals_path)
    assert plan["tablespaces"] is False and plan["role_passwords"] is True


def test_plan_globals_refuses_a_cluster_with_those_roles(tmp_path):
    path, manifest, _globals = globals_backup(tmp_path)
    server = RolesServer(["postgres", "app", "other"])
    with pytest.raises(PgBackupError, match=r"empty cluster, but roles app of .* already exist.*Nothing was changed"):
        core.plan_globals(server, str(path), manifest)


def test_plan_globals_refuses_a_backup_without_globals(tmp_path):
    path, manifest, _globals = globals_backup(tmp_path, recorded=False)
    with pytest.raises(PgBackupError, match="has no globals"):
        core.plan_globals(RolesServer(["postgres"]), str(path), manifest)


def test_apply_globals_runs_in_one_transaction(tmp_path, tools_ok):
    path, manifest, _globals = globals_backup(tmp_path)
    server = RolesServer(["postgres"])
    core.apply_globals(server, core.plan_globals(server, str(path), manifest))
    assert tools_ok[0][:2] == ["/bin/psql", "--single-transaction"]
    core.apply_globals(server, {**core.plan_globals(server, str(path), manifest), "tablespaces": True})
    assert "--single-transaction" not in tools_ok[1]
