"""Unit tests of pg_drill_core: count comparison, disk guard, the drill flow with a fake server, state, metrics."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as pbm
from ansible_collections.stackops.platform.plugins.module_utils import pg_drill_core as core
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError

UTC = datetime.UTC
NOW = datetime.datetime(2026, 2, 20, 5, 30, 0, tzinfo=UTC)
COUNTS = {"public.accounts": 3, "public.orders": 40, '"Odd"."t|x"': 0}


def make_backup(tmp_path, with_counts=True, name="app_20260220T023000Z.dump"):
    db_dir = tmp_path / "backups" / "app"
    db_dir.mkdir(parents=True, exist_ok=True)
    path = db_dir / name
    path.write_bytes(b"PGDMP archive")
    sha, size, _files = pbm.hash_backup(str(path))
    manifest = {"name": name, "sha256": sha, "size": size, "finished_at": "2026-02-20T02:31:00+00:00"}
    if with_counts:
        manifest["row_counts"] = COUNTS
    (db_dir / (name + ".manifest.json")).write_text(json.dumps(manifest))
    return path


class FakeServer:
    """Stands in for Restorer: records SQL, answers the row count query with ``restored`` counts."""

    pg_restore = "/bin/pg_restore"

    def __init__(self, restored, fail_drop=False, data_dir="", live_size=""):
        self.restored = restored
        self.fail_drop = fail_drop
        self.data_dir = data_dir
        self.live_size = live_size
        self.statements = []
        self.databases = set()

    def database_info(self, name):
        return {"encoding": "UTF8"} if name in self.databases else None

    def sql(self, sql, dbname=None, what="psql"):
        self.statements.append(sql)
        if sql.startswith("CREATE DATABASE"):
            self.databases.add(sql.split('"')[1])
        elif sql.startswith("DROP DATABASE"):
            if self.fail_drop:
                raise PgBackupError(f"{what}: psql failed: ERROR: simulated drop failure")
            self.databases.discard(sql.split('"')[1])
        elif "json_object_agg" in sql:
            return json.dumps(self.restored) + "\n"
        elif "data_directory" in sql:
            return f"{self.data_dir}|{self.live_size}\n"
        return ""


@pytest.fixture
def restores(monkeypatch):
    calls = []

    def fake_run_tool(argv, params, what, stdin_text=None):
        calls.append(argv)
        return ""

    monkeypatch.setattr(core, "run_tool", fake_run_tool)
    return calls


def params(tmp_path, **overrides):
    return {"database": "app", "backup_dir": str(tmp_path / "backups"), **overrides}


# ----------------------------------------------------------------------------- pure decisions


def test_compare_counts_lists_every_difference():
    assert core.compare_counts(COUNTS, dict(COUNTS)) == []
    restored = {"public.accounts": 3, "public.orders": 39, "public.extra": 1}
    assert core.compare_counts(COUNTS, restored) == [
        ('"Odd"."t|x"', 0, None),
        ("public.extra", None, 1),
        ("public.orders", 40, 39),
    ]
    text = core.describe_mismatch(core.compare_counts(COUNTS, restored))
    assert text == ('"Odd"."t|x": manifest 0 rows, restored absent; public.extra: manifest absent, restored 1 rows; '
                    "public.orders: manifest 40 rows, restored 39 rows")
    many = [(f"t{i}", i, i + 1) for i in range(8)]
    assert core.describe_mismatch(many).endswith("(and 3 more)")


@pytest.mark.parametrize(
    ("free", "estimate", "share", "refused"),
    [(1000, 500, 0.5, False), (1000, 501, 0.5, True), (1000, 900, 1.0, False), (0, 1, 0.5, True)],
)
def test_disk_check(free, estimate, share, refused):
    reason = core.disk_check(free, estimate, share)
    assert (reason is not None) == refused
    if refused:
        assert f"needs about {estimate} bytes" in reason


def test_scratch_name_fits_the_identifier_limit():
    assert core.scratch_name("app", NOW) == "app_drill_20260220053000"
    long = core.scratch_name("x" * 63, NOW)
    assert len(long.encode()) == 63 and long.endswith("_drill_20260220053000")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"database": None}, "database is required"),
        ({"database": "../etc"}, "cannot be used as a directory name"),
        ({"backup_dir": None}, "backup_dir is required"),
        ({"backup_dir": "/nonexistent/backups"}, "backup_dir /nonexistent/backups does not exist"),
        ({"jobs": 0}, "jobs must be 1 or more, got 0"),
        ({"max_disk_share": 0}, "max_disk_share must be above 0 and at most 1, got 0.0"),
        ({"max_disk_share": "half"}, "max_disk_share must be a number, got 'half'"),
    ],
)
def test_check_drill_params_errors(tmp_path, overrides, message):
    (tmp_path / "backups").mkdir()
    with pytest.raises(PgBackupError, match=message):
        core.check_drill_params(params(tmp_path, **overrides))


def test_unknown_settings_are_refused():
    with pytest.raises(PgBackupError, match=r"unknown option\(s\) keep_last: valid options are backup_dir, bin_dir"):
        core.check_drill_params({"database": "app", "backup_dir": "/", "keep_last": 7})
    assert core.check_drill_params({"database": "app", "backup_dir": "/"})["source"] == "latest"


# ----------------------------------------------------------------------------- the drill with a fake server


def test_drill_restores_compares_and_drops(tmp_path, restores):
    path = make_backup(tmp_path)
    server = FakeServer(dict(COUNTS))
    result = core.run_drill(params(tmp_path), restorer=server, now=NOW)
    assert result["scratch"] == "app_drill_20260220053000"
    assert (result["rows_compared"], result["tables_compared"], result["scratch_dropped"]) == (43, 3, True)
    assert result["backup"] == str(path) and result["origin"] == "local" and result["source"] == "local"
    assert restores[0][-1] == str(path) and "--dbname=dbname='app_drill_20260220053000'" in restores[0]
    assert server.databases == set()
    assert [s.split()[0] for s in server.statements if s.startswith(("CREATE", "DROP"))] == ["CREATE", "DROP"]


def test_drill_with_counts_that_differ_fails_and_still_drops(tmp_path, restores):
    make_backup(tmp_path)
    server = FakeServer({**COUNTS, "public.orders": 41})
    with pytest.raises(PgBackupError, match=r"row counts .* differ from its manifest: public.orders: manifest 40 rows, "
                                            r"restored 41 rows"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW)
    assert server.databases == set()
    assert any(s.startswith("DROP DATABASE IF EXISTS \"app_drill_") for s in server.statements)


def test_drill_whose_restore_fails_drops_and_says_when_drop_fails_too(tmp_path, monkeypatch):
    make_backup(tmp_path)

    def failing(argv, params, what, stdin_text=None):
        raise PgBackupError(f"{what}: pg_restore failed with exit code 1: out of disk")

    monkeypatch.setattr(core, "run_tool", failing)
    server = FakeServer(dict(COUNTS), fail_drop=True)
    with pytest.raises(PgBackupError, match=r"out of disk; scratch database app_drill_20260220053000 could not be "
                                            r"dropped .*drop it by hand"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW)


def test_drill_that_passes_but_cannot_drop_fails(tmp_path, restores):
    make_backup(tmp_path)
    with pytest.raises(PgBackupError, match="passed but scratch database app_drill_20260220053000 could not be"):
        core.run_drill(params(tmp_path), restorer=FakeServer(dict(COUNTS), fail_drop=True), now=NOW)


def test_drill_without_backup_names_the_directory(tmp_path, restores):
    (tmp_path / "backups").mkdir()
    server = FakeServer({})
    with pytest.raises(PgBackupError, match=r"no backup available for a restore drill of app: no complete backup"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW)
    assert server.statements == [] and restores == []


def test_drill_of_a_backup_without_counts_is_refused(tmp_path, restores):
    make_backup(tmp_path, with_counts=False)
    server = FakeServer({})
    with pytest.raises(PgBackupError, match="has no row counts in its manifest"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW)
    assert server.statements == []


def test_drill_of_a_corrupt_backup_is_refused_before_restoring(tmp_path, restores):
    path = make_backup(tmp_path)
    path.write_bytes(b"PGDMP archivX")
    server = FakeServer(dict(COUNTS))
    with pytest.raises(PgBackupError, match="checksum verification failed"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW)
    assert server.statements == [] and restores == []


def test_drill_refuses_when_the_disk_cannot_hold_a_copy(tmp_path, restores):
    make_backup(tmp_path)
    stats = os.statvfs(tmp_path)
    free = stats.f_bavail * stats.f_frsize
    server = FakeServer(dict(COUNTS), data_dir=str(tmp_path), live_size=str(free))
    with pytest.raises(PgBackupError, match="refused before anything was created: a scratch copy needs about"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW)
    assert not any(s.startswith("CREATE") for s in server.statements) and restores == []
    ok = FakeServer(dict(COUNTS), data_dir=str(tmp_path), live_size="1")
    assert core.run_drill(params(tmp_path), restorer=ok, now=NOW)["scratch_dropped"]


def test_check_mode_restores_nothing(tmp_path, restores):
    make_backup(tmp_path)
    server = FakeServer(dict(COUNTS))
    result = core.run_drill(params(tmp_path), restorer=server, now=NOW, check_mode=True)
    assert result["changed"] is False and result["tables_expected"] == 3
    assert not any(s.startswith(("CREATE", "DROP")) for s in server.statements) and restores == []


# ----------------------------------------------------------------------------- state and metrics


def test_state_keeps_the_last_success_through_a_failure(tmp_path):
    path = tmp_path / ".drill-state.json"
    result = {"restore_seconds": 12.5, "rows_compared": 43, "tables_compared": 3, "backup": "/b/app_x.dump",
              "backup_finished_at": "2026-02-20T02:31:00+00:00"}
    core.record_outcome(str(path), result=result, now=NOW)
    later = NOW + datetime.timedelta(days=1)
    state = core.record_outcome(str(path), error="row counts differ", now=later)
    assert state["last_run"] == {"finished_at": later.isoformat(), "success": False, "error": "row counts differ",
                                 "source": "local", "origin": None, "backup": None}
    assert state["last_success"]["finished_at"] == NOW.isoformat()
    assert json.loads(path.read_text()) == state
    assert os.stat(path).st_mode & 0o777 == 0o640

    values = core.drill_metrics(state, run_success=False, now=later)
    assert values == {
        "last_success_timestamp_seconds": NOW.timestamp(),
        "last_duration_seconds": 12.5,
        "last_rows_compared": 43,
        "last_tables_compared": 3,
        "last_backup_age_seconds": 2 * 3600 + 59 * 60,
        "last_run_success": 0,
        "last_run_timestamp_seconds": later.timestamp(),
    }


def test_metrics_without_a_success_leave_the_success_series_out(tmp_path):
    """absent() and `unless` in the alert rules need the series to be missing, not zero."""
    (tmp_path / "backups" / "app").mkdir(parents=True)
    metrics = tmp_path / "metrics"
    prom = core.write_drill_metrics(str(metrics), core.check_drill_params(params(tmp_path)), False, now=NOW)
    text = Path(prom).read_text()
    assert "last_success_timestamp_seconds" not in text
    assert 'stackops_pg_drill_last_run_success{database="app",source="local"} 0' in text
    assert os.path.basename(prom) == "stackops_pg_drill_app.prom"
    assert os.listdir(metrics) == ["stackops_pg_drill_app.prom"]


def test_main_records_a_failed_drill_and_exits_1(tmp_path, capsys):
    (tmp_path / "backups" / "app").mkdir(parents=True)
    config = tmp_path / "pg_drill-app.json"
    config.write_text(json.dumps({"database": "app", "backup_dir": str(tmp_path / "backups"), "max_disk_share": 0.5}))
    assert core.main(["--config", str(config)]) == 1
    assert "no backup available for a restore drill of app" in capsys.readouterr().err
    state = json.loads((tmp_path / "backups" / "app" / ".drill-state.json").read_text())
    assert state["last_run"]["success"] is False and "last_success" not in state
    assert core.main(["--config", str(config), "--write-metrics", str(tmp_path / "m"), "--run-result", "failure"]) == 0
    assert 'stackops_pg_drill_last_run_success{database="app",source="local"} 0' in (
        tmp_path / "m" / "stackops_pg_drill_app.prom").read_text()
    assert core.main(["--config", str(config), "--write-metrics", str(tmp_path / "m")]) == 1  # no SERVICE_RESULT
    assert "restore drill unit's ExecStopPost" in capsys.readouterr().err


def test_state_and_metrics_name_the_source_of_the_run_and_of_the_last_success(tmp_path):
    """The run series carry the source the drill is set up for, the success series the source of that success:
    right after switching to the off-site copy, the last success is still the local one until an off-site drill
    passes."""
    path = tmp_path / ".drill-state.json"
    local = {"restore_seconds": 2.0, "rows_compared": 43, "tables_compared": 3, "backup": "/b/app_x.dump",
             "origin": "local", "backup_finished_at": "2026-02-20T02:31:00+00:00"}
    core.record_outcome(str(path), result=local, now=NOW)
    later = NOW + datetime.timedelta(days=1)
    origin = "offsite:bucket/host/app/app_y.dump"
    state = core.record_outcome(str(path), error="age refused it", now=later, source="offsite",
                                seen={"origin": origin, "backup": "/tmp/x/app_y.dump"})
    assert state["last_run"]["source"] == "offsite" and state["last_run"]["origin"] == origin
    assert state["last_success"]["source"] == "local" and state["last_success"]["origin"] == "local"
    text = core.render_drill_metrics("app", state, "offsite", False, now=later)
    assert 'stackops_pg_drill_last_success_timestamp_seconds{database="app",source="local"} ' in text
    assert 'stackops_pg_drill_last_run_success{database="app",source="offsite"} 0\n' in text
    # Every series has the same label names (node exporter merges the files of all databases per family).
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == 7 and all('{database="app",source="' in line for line in samples)

    state = core.record_outcome(str(path), result={**local, "origin": origin}, now=later, source="offsite")
    text = core.render_drill_metrics("app", state, "offsite", True, now=later)
    assert 'source="local"' not in text
    assert 'stackops_pg_drill_last_rows_compared{database="app",source="offsite"} 43\n' in text


def test_metrics_of_a_state_written_before_sources_say_local(tmp_path):
    state = {"last_success": {"finished_at": NOW.isoformat(), "restore_seconds": 1.0, "rows_compared": 1,
                              "tables_compared": 1, "backup": "/b/x"},
             "last_run": {"finished_at": NOW.isoformat(), "success": True, "error": None}}
    text = core.render_drill_metrics("app", state, "local", True, now=NOW)
    assert 'stackops_pg_drill_last_success_timestamp_seconds{database="app",source="local"} ' in text


def test_a_failed_drill_records_the_backup_it_had_chosen(tmp_path, restores):
    path = make_backup(tmp_path)
    server = FakeServer({**COUNTS, "public.orders": 41})
    seen = {}
    with pytest.raises(PgBackupError, match="differ from its manifest"):
        core.run_drill(params(tmp_path), restorer=server, now=NOW, seen=seen)
    assert seen == {"origin": "local", "backup": str(path)}
