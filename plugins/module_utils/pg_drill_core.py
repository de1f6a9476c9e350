# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore drills: prove the newest backup of a database restores, with the rows it was taken with.

Standard library only. One drill:

    resolve the backup (``resolve_drill_source``) -> verify its checksums -> refuse when the cluster's disk
    could not hold a second copy -> create a scratch database -> pg_restore into it (timed: the restore
    time) -> count every table's rows -> compare with the counts the manifest recorded in the dump's own
    snapshot -> drop the scratch database, whatever happened

The outcome goes to ``<backup_dir>/<database>/.drill-state.json`` (the last run and the last success, each with
the source drilled: ``local`` or ``offsite``, and the backup's origin); ``--write-metrics DIR`` (the drill unit's
ExecStopPost) turns it into ``DIR/stackops_pg_drill_<database>.prom`` for node exporter's textfile collector, the
way the backup unit does. Every series carries ``database`` and ``source`` labels: the run series the source this
drill is set up for, the last-success series the source of that success.

Run on the database host as ``python3 -m ansible_collections.stackops.platform.plugins.module_utils.pg_drill_core
--config /etc/stackops/pg_drill-<db>.json`` (a JSON object of the option names in ``DRILL_OPTIONS``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time

from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_fetch import fetched
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_params import check_offsite_params
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_remote import remote_dir
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import atomic_write_json
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    PgBackupError,
    quote_literal,
    read_manifest,
    utc_now,
    validate_database_name,
    verify_against_manifest,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_metrics import (
    render_gauges,
    write_textfile,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_cli import unit_main
from ansible_collections.stackops.platform.plugins.module_utils.pg_client import (
    CONNECTION_OPTIONS,
    ROW_COUNTS_SQL,
    normalize_params,
    parse_row_counts,
    run_tool,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_restore_core import (
    Restorer,
    build_pg_restore_argv,
    create_sql,
    drop_sql,
    name_with_suffix,
    resolve_source,
)

DRILL_OPTIONS = {
    "database": (str, None),
    "backup_dir": (str, None),
    "source": (str, "latest"),
    "jobs": (int, 1),
    "maintenance_db": (str, "postgres"),
    **CONNECTION_OPTIONS,
    "pg_restore_path": (str, None),
    # The scratch copy may use at most this share of the free space of the cluster's filesystem.
    "max_disk_share": (float, 0.5),
    # Drill a copy in the off-site bucket instead (backup_offsite options plus identity_file), downloaded,
    # checked and decrypted into a private directory under download_dir (default: the system's temp dir).
    "offsite": (dict, None),
    "download_dir": (str, None),
}
STATE_FILE = ".drill-state.json"
# What a drill restores: the newest local backup, or (with the offsite option) the bucket's copy.
SOURCES = ("local", "offsite")
# Reported size of a restored database relative to its dump when the live database cannot be measured.
DUMP_EXPANSION = 5

METRICS_PREFIX = "stackops_pg_drill"
METRIC_HELP = {
    "last_success_timestamp_seconds": "Unix time the last successful restore drill finished.",
    "last_duration_seconds": "Seconds the last successful restore drill took to restore the backup (measured).",
    "last_rows_compared": "Rows whose counts the last successful restore drill compared with the manifest.",
    "last_tables_compared": "Tables whose row counts the last successful restore drill compared.",
    "last_backup_age_seconds": "Age of the backup the last successful restore drill restored, at drill time.",
    "last_run_success": "1 if the last run of the restore drill succeeded, else 0.",
    "last_run_timestamp_seconds": "Unix time the restore drill last finished, successful or not.",
}


def check_drill_params(params):
    params = normalize_params(params, DRILL_OPTIONS)
    validate_database_name(params["database"])
    if not params["backup_dir"]:
        raise PgBackupError("backup_dir is required: set it to the directory pg_backup writes to")
    if not os.path.isdir(params["backup_dir"]):
        raise PgBackupError(f"backup_dir {params['backup_dir']} does not exist or is not a directory")
    if params["jobs"] < 1:
        raise PgBackupError(f"jobs must be 1 or more, got {params['jobs']}")
    if not 0 < params["max_disk_share"] <= 1:
        raise PgBackupError(f"max_disk_share must be above 0 and at most 1, got {params['max_disk_share']}")
    return params


def drill_source(params):
    """``offsite`` when the drill restores the bucket's copy, else ``local``."""
    return "offsite" if params.get("offsite") else "local"


def state_path(params):
    return os.path.join(params["backup_dir"], params["database"], STATE_FILE)


def scratch_name(database, now=None):
    return name_with_suffix(database, "_drill_" + (now or utc_now()).strftime("%Y%m%d%H%M%S"))


@contextlib.contextmanager
def resolve_drill_source(params):
    """Context manager: the backup a drill restores, ``{"path", "manifest_path", "manifest", "origin"}``.

    Local (the newest complete backup for ``source=latest``, or a path), or with ``offsite`` a copy in the
    bucket (``latest`` or a backup name) fetched, sha256-checked, decrypted and verified against its manifest
    the way pg_restore does (backup_offsite_fetch.fetched); the copy is removed on exit. Nothing after this
    cares where the backup came from.
    """
    if params.get("offsite"):
        remote = {**params["offsite"], "database": params["database"], "backup_dir": params["backup_dir"]}
        with contextlib.ExitStack() as stack:
            try:
                path, manifest = stack.enter_context(fetched(remote, params["source"], params.get("download_dir")))
                folder = remote_dir(check_offsite_params(remote))
            except PgBackupError as exc:
                raise PgBackupError(
                    f"no off-site backup available for a restore drill of {params['database']}: {exc}"
                ) from None
            origin = f"offsite:{remote['bucket']}/{folder}{os.path.basename(path)}"
            yield {"path": path, "manifest_path": None, "manifest": manifest, "origin": origin}
        return
    try:
        path, manifest_path, manifest = resolve_source(
            {"source": params["source"], "backup_dir": params["backup_dir"], "database": params["database"]}
        )
    except PgBackupError as exc:
        raise PgBackupError(f"no backup available for a restore drill of {params['database']}: {exc}") from None
    yield {"path": path, "manifest_path": manifest_path, "manifest": manifest, "origin": "local"}


def expected_counts(source):
    counts = source["manifest"].get("row_counts")
    if not isinstance(counts, dict):
        raise PgBackupError(
            f"backup {source['path']} has no row counts in its manifest (taken before they were recorded, or "
            "with row_counts=false): take a new backup, then run the drill again"
        )
    return counts


def compare_counts(expected, actual):
    """Differences as ``[(table, expected rows or None, restored rows or None)]``, sorted by table."""
    return [
        (table, expected.get(table), actual.get(table))
        for table in sorted(set(expected) | set(actual))
        if expected.get(table) != actual.get(table)
    ]


def describe_mismatch(differences, limit=5):
    parts = []
    for table, want, got in differences[:limit]:
        want_text = "absent" if want is None else f"{want} rows"
        got_text = "absent" if got is None else f"{got} rows"
        parts.append(f"{table}: manifest {want_text}, restored {got_text}")
    more = f" (and {len(differences) - limit} more)" if len(differences) > limit else ""
    return "; ".join(parts) + more


def disk_check(free_bytes, estimate_bytes, max_share):
    """None when a copy of ``estimate_bytes`` fits in ``max_share`` of ``free_bytes``, else the reason."""
    allowed = int(free_bytes * max_share)
    if estimate_bytes <= allowed:
        return None
    return (
        f"a scratch copy needs about {estimate_bytes} bytes but only {allowed} bytes ({max_share:g} of the "
        f"{free_bytes} bytes free) may be used"
    )


def _estimate_and_free(restorer, params, source):
    """(estimated bytes of the restored copy, free bytes of the cluster's filesystem) or None when unknown."""
    # Only superusers and pg_read_all_settings members may read data_directory; others skip the check.
    sql = (
        "SELECT CASE WHEN pg_catalog.pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') "
        "THEN pg_catalog.current_setting('data_directory') END, (SELECT pg_catalog.pg_database_size(oid) "
        "FROM pg_catalog.pg_database WHERE datname = " + quote_literal(params["database"]) + ");\n"
    )
    out = restorer.sql(sql, what="measuring the live database").strip()
    data_dir, _sep, size = out.partition("|")
    if not data_dir or not os.path.isdir(data_dir):
        return None  # not the server's host, or not allowed to see its settings: the server will say if it fills
    stats = os.statvfs(data_dir)
    estimate = int(size) if size else int(source["manifest"].get("size") or 0) * DUMP_EXPANSION
    return estimate, stats.f_bavail * stats.f_frsize


def run_drill(params, restorer=None, now=None, check_mode=False, seen=None):
    """Restore the newest backup into a scratch database, compare row counts, drop it. Returns the result.

    ``seen`` (a dict) gets the ``origin`` and ``backup`` (path) once the backup is chosen, so a failed drill can say
    which it was.
    """
    params = check_drill_params(params)
    with resolve_drill_source(params) as source:
        if seen is not None:
            seen.update(origin=source["origin"], backup=source["path"])
        return _drill(params, source, restorer, now, check_mode)


def _drill(params, source, restorer, now, check_mode):
    expected = expected_counts(source)
    verify_against_manifest(source["path"], source["manifest"])
    restorer = restorer or Restorer(params)
    scratch = scratch_name(params["database"], now)
    # The downloaded copy of an off-site backup is gone after the drill: name it by where it came from.
    named = source["path"] if source["origin"] == "local" else source["origin"]
    if restorer.database_info(scratch) is not None:
        raise PgBackupError(f"database {scratch} already exists: another drill is running, or wait a second")
    room = _estimate_and_free(restorer, params, source)
    if room is not None:
        reason = disk_check(room[1], room[0], params["max_disk_share"])
        if reason:
            raise PgBackupError(f"restore drill of {params['database']} refused before anything was created: {reason}")
    result = {
        "changed": not check_mode,
        "database": params["database"],
        "backup": source["path"],
        "source": drill_source(params),
        "origin": source["origin"],
        "backup_finished_at": source["manifest"].get("finished_at"),
        "scratch": scratch,
        "tables_expected": len(expected),
    }
    if check_mode:
        return result

    restorer.sql(create_sql(scratch), what=f"creating scratch database {scratch}")
    failure = None
    try:
        clock = time.monotonic()
        argv = build_pg_restore_argv(params, restorer.pg_restore, scratch, source["path"])
        run_tool(argv, params, f"pg_restore of {named} into scratch database {scratch}")
        restore_seconds = round(time.monotonic() - clock, 3)
        actual = parse_row_counts(
            restorer.sql(ROW_COUNTS_SQL + "\n", dbname=scratch, what=f"counting rows in {scratch}").strip(),
            f"counting rows in {scratch}",
        )
        differences = compare_counts(expected, actual)
        if differences:
            raise PgBackupError(
                f"restore drill of {params['database']} failed: row counts of {named} restored into "
                f"{scratch} differ from its manifest: {describe_mismatch(differences)}"
            )
    except BaseException as exc:
        failure = exc
        raise
    finally:
        try:
            restorer.sql(drop_sql(scratch), what=f"dropping scratch database {scratch}")
        except PgBackupError as exc:
            if failure is None:
                raise PgBackupError(
                    f"restore drill of {params['database']} passed but scratch database {scratch} could not be "
                    f"dropped: {exc}; drop it by hand"
                ) from None
            # The drill's own error stays the one raised; say that the scratch copy is left behind.
            failure.args = (
                f"{failure.args[0] if failure.args else failure}; scratch database {scratch} could "
                f"not be dropped ({exc}): drop it by hand",
            )
    result.update(
        restore_seconds=restore_seconds,
        tables_compared=len(expected),
        rows_compared=sum(expected.values()),
        scratch_dropped=True,
    )
    return result


# --------------------------------------------------------------------------- state and metrics


def read_state(path):
    state = read_manifest(path)  # same reader: a JSON object, or None
    return state or {}


def record_outcome(path, result=None, error=None, now=None, *, source="local", seen=None):
    """Write the drill state: the last run always, the last success only when this run succeeded.

    ``source``: what the drill was set to restore (``local`` or ``offsite``); ``origin``: the backup it restored
    (``local`` or ``offsite:<bucket>/<key>``) and ``backup`` (its path) come from the result, or for a failed run
    from ``seen`` (run_drill's) once the backup was chosen.
    """
    now = now or utc_now()
    state = read_state(path)
    chosen = result if result is not None else (seen or {})
    state["last_run"] = {"finished_at": now.isoformat(), "success": error is None, "error": error, "source": source,
                         "origin": chosen.get("origin"), "backup": chosen.get("backup")}
    if result is not None and error is None:
        state["last_success"] = {
            "finished_at": now.isoformat(),
            "source": source,
            "origin": result.get("origin"),
            "restore_seconds": result["restore_seconds"],
            "rows_compared": result["rows_compared"],
            "tables_compared": result["tables_compared"],
            "backup": result["backup"],
            "backup_finished_at": result.get("backup_finished_at"),
        }
    atomic_write_json(path, state, mode=0o640)
    return state


def _seconds(text):
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def drill_metrics(state, run_success, now=None):
    """Metric values from the drill state; the last-success series are absent until a drill succeeded."""
    values = {}
    success = state.get("last_success") or {}
    finished = _seconds(success.get("finished_at"))
    if finished is not None:
        values["last_success_timestamp_seconds"] = finished
        for key, field in (
            ("last_duration_seconds", "restore_seconds"),
            ("last_rows_compared", "rows_compared"),
            ("last_tables_compared", "tables_compared"),
        ):
            value = success.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[key] = value
        backup_finished = _seconds(success.get("backup_finished_at"))
        if backup_finished is not None:
            values["last_backup_age_seconds"] = round(finished - backup_finished, 3)
    values["last_run_success"] = 1 if run_success else 0
    values["last_run_timestamp_seconds"] = (now or utc_now()).timestamp()
    return values


def _success_source(state):
    """Source of the last success; states written before drills could restore the bucket's copy were local."""
    source = (state.get("last_success") or {}).get("source")
    return source if source in SOURCES else "local"


def render_drill_metrics(database, state, source, run_success, now=None):
    """Text of the metrics file: the run series labelled with this drill's ``source``, the last-success series
    with the source of that success (they differ for a while after the drill's source was changed)."""
    values = drill_metrics(state, run_success, now=now)
    run_keys = ("last_run_success", "last_run_timestamp_seconds")
    success = {key: value for key, value in values.items() if key not in run_keys}
    run = {key: value for key, value in values.items() if key in run_keys}
    text = ""
    if success:
        text += render_gauges(METRICS_PREFIX, METRIC_HELP, {"database": database, "source": _success_source(state)},
                              success)
    return text + render_gauges(METRICS_PREFIX, METRIC_HELP, {"database": database, "source": source}, run)


def write_drill_metrics(metrics_dir, params, run_success, now=None):
    name = f"{METRICS_PREFIX}_{validate_database_name(params['database'])}.prom"
    text = render_drill_metrics(params["database"], read_state(state_path(params)), drill_source(params),
                                run_success, now=now)
    return write_textfile(metrics_dir, name, text, "restore drill metrics")


# --------------------------------------------------------------------------- script entry point


def _drill_and_record(params):
    """Run the drill and record its outcome in the state file, failed or not."""
    path = state_path(params)
    seen = {}
    try:
        result = run_drill(params, seen=seen)
    except (OSError, PgBackupError) as exc:
        with contextlib.suppress(OSError):
            record_outcome(path, error=str(exc), source=drill_source(params), seen=seen)
        raise
    record_outcome(path, result=result, source=drill_source(params))
    return result


def drill_metrics_from_config(params, metrics_dir, run_success):
    params = check_drill_params(params)
    path = write_drill_metrics(metrics_dir, params, run_success)
    return {"changed": True, "metrics_path": path, "run_success": run_success}


def main(argv=None):
    return unit_main(
        argv,
        tool="pg_drill",
        what="restore drill",
        description="Restore drill of one PostgreSQL database (stackops.platform layout).",
        metrics_file="stackops_pg_drill_<database>.prom",
        run=lambda params: _drill_and_record(check_drill_params(params)),
        check=lambda params: run_drill(params, check_mode=True),
        write_metrics=drill_metrics_from_config,
    )


if __name__ == "__main__":
    raise SystemExit(main())
