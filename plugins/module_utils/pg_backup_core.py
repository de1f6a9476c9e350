# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL backups: the dump runner, shared by the pg_backup module and the systemd timer.

Standard library only (no Ansible, no psycopg2). The role installs this file and the module_utils it
imports under ``/usr/local/lib/stackops/ansible_collections/...`` and the timer runs
``python3 -m ansible_collections.stackops.platform.plugins.module_utils.pg_backup_core --config
/etc/stackops/pg_backup-<db>.json`` with that directory on PYTHONPATH; ``stackops.platform.pg_backup``
imports it. The config file holds the module option names; the password comes from ``passfile`` or the
PGPASSWORD environment variable, never from argv.

One run: under the database's lock, count every table's rows in a REPEATABLE READ snapshot, dump with
``pg_dump --snapshot`` (so the counts describe exactly what was dumped), store ``pg_dumpall --globals-only``
beside it, hash, verify, publish the manifest then the dump, then apply retention. Names, manifests and
checksums live in pg_backup_manifest, retention in pg_backup_retention, metrics in pg_backup_metrics.

``--write-metrics DIR`` (the backup unit's ExecStopPost) writes ``DIR/stackops_pg_backup_<database>.prom``
for node exporter's textfile collector; see ``pg_backup_metrics.write_backup_metrics``.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import os
import time

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import (
    HolderLock,
    atomic_write_json,
    fsync_dir,
    remove_path,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    FORMATS,
    MANIFEST_SUFFIX,
    PgBackupError,
    backup_name,
    build_manifest,
    format_timestamp,
    globals_name,
    hash_backup,
    hash_file,
    list_backups,
    manifest_name,
    partial_name,
    utc_now,
    validate_database_name,
    verify_against_manifest,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_metrics import write_backup_metrics
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_retention import (
    delete_backup,
    retention_plan,
    retention_policy,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_cli import unit_main
from ansible_collections.stackops.platform.plugins.module_utils.pg_client import (
    CONNECTION_OPTIONS,
    SnapshotSession,
    build_psql_argv,
    connection_args,
    conninfo_dbname,
    find_tool,
    normalize_params,
    parse_archive_header,
    run_tool,
    tool_version,
)

# Hidden work files of interrupted runs; ``.tmp-<pid>`` is file_primitives.atomic_write's temporary name.
PARTIAL_GLOBS = (".*.partial", ".*.deleting", ".*.manifest.json.tmp", ".*.manifest.json.tmp-*")

BACKUP_OPTIONS = {
    "database": (str, None),
    "backup_dir": (str, None),
    "format": (str, "custom"),
    "jobs": (int, 1),
    "compress": (int, None),
    **CONNECTION_OPTIONS,
    "pg_dump_path": (str, None),
    "keep_last": (int, None),
    "keep_days": (int, None),
    "keep_daily": (int, None),
    "keep_weekly": (int, None),
    "keep_monthly": (int, None),
    "verify": (bool, True),
    "row_counts": (bool, True),
    "globals": (bool, True),
}


def check_backup_params(params):
    params = normalize_params(params, BACKUP_OPTIONS)
    validate_database_name(params["database"])
    if not params["backup_dir"]:
        raise PgBackupError("backup_dir is required: set it to an existing directory for the backups")
    if params["format"] not in FORMATS:
        raise PgBackupError(f"format {params['format']!r} is not supported: use custom or directory")
    if params["jobs"] < 1:
        raise PgBackupError(f"jobs must be 1 or more, got {params['jobs']}")
    if params["jobs"] > 1 and params["format"] != "directory":
        raise PgBackupError(f"jobs={params['jobs']} needs format=directory (pg_dump dumps in parallel only then)")
    if params["compress"] is not None and not 0 <= params["compress"] <= 9:
        raise PgBackupError(f"compress must be between 0 and 9, got {params['compress']}")
    retention_policy(params)
    if not os.path.isdir(params["backup_dir"]):
        raise PgBackupError(f"backup_dir {params['backup_dir']} does not exist or is not a directory: create it first")
    return params


def build_pg_dump_argv(params, pg_dump, out_path, snapshot=None):
    argv = [pg_dump, "--format=" + ("c" if params["format"] == "custom" else "d"), "--file=" + out_path]
    if params["format"] == "directory" and params.get("jobs", 1) > 1:
        argv.append(f"--jobs={params['jobs']}")
    if params.get("compress") is not None:
        argv.append(f"--compress={params['compress']}")
    if snapshot:
        argv.append("--snapshot=" + snapshot)
    argv.extend(connection_args(params))
    argv.append("--no-password")
    argv.append("--dbname=" + conninfo_dbname(params["database"]))
    return argv


def build_pg_dumpall_argv(params, pg_dumpall, out_path, role_passwords):
    """``pg_dumpall --globals-only`` (roles, memberships, role settings, tablespaces) into ``out_path``.

    Reading role passwords needs a superuser; anyone else gets the roles without their passwords.
    """
    argv = [pg_dumpall, "--globals-only", "--file=" + out_path]
    if not role_passwords:
        argv.append("--no-role-passwords")
    argv.extend(connection_args(params))
    argv.append("--no-password")
    argv.append("--dbname=" + conninfo_dbname(params["database"]))
    return argv


def clean_stale(db_dir):
    """Remove leftovers of interrupted runs; only called while holding the lock.

    Only hidden work files (``.*.partial``, ``.*.deleting``, temporary manifests) are removed.
    A manifest without its dump, or a dump without its manifest, is never counted as a backup and is
    left alone (it may be a backup someone moved away for inspection).
    """
    removed = []
    for pattern in PARTIAL_GLOBS:
        for path in glob.glob(os.path.join(glob.escape(db_dir), pattern)):
            remove_path(path)
            removed.append(path)
    return sorted(removed)


def backup_lock(db_dir):
    """One backup of a database at a time: ``<db_dir>/.lock`` names its holder; busy -> PgBackupError."""

    def busy(info):
        return PgBackupError(f"another backup is running in {db_dir} ({info.holder_text}): try again later")

    return HolderLock(os.path.join(db_dir, ".lock"), busy=busy)


def plan_backup(params, now=None):
    """What run_backup would do, without touching anything (check mode)."""
    params = check_backup_params(params)
    now = now or utc_now()
    find_backup_tools(params)
    db_dir = os.path.join(params["backup_dir"], params["database"])
    name = backup_name(params["database"], format_timestamp(now), params["format"])
    # run_backup waits for the next free second when the name is taken: plan the same name.
    while os.path.lexists(os.path.join(db_dir, name)) or os.path.lexists(os.path.join(db_dir, manifest_name(name))):
        now += datetime.timedelta(seconds=1)
        name = backup_name(params["database"], format_timestamp(now), params["format"])
    existing = list_backups(db_dir, params["database"])
    future = [{"name": name, "timestamp": format_timestamp(now)}, *(b for b in existing if b["name"] != name)]
    retention = retention_plan(future, params, now=now, protect={name})
    path = os.path.join(db_dir, name)
    return {
        "changed": True,
        "path": path,
        "manifest_path": path + MANIFEST_SUFFIX,
        "pruned": [os.path.join(db_dir, item["name"]) for item in retention["delete"]],
        "kept": retention["keep"],
        "backups_before": [item["name"] for item in existing],
    }


def find_backup_tools(params):
    """The client programs a run needs: pg_dump and pg_restore, psql and pg_dumpall when used."""
    tools = {
        "pg_dump": find_tool("pg_dump", params["bin_dir"], params["pg_dump_path"]),
        "pg_restore": find_tool("pg_restore", params["bin_dir"], sibling_of=params["pg_dump_path"]),
    }
    if params["row_counts"] or params["globals"]:
        tools["psql"] = find_tool("psql", params["bin_dir"], sibling_of=params["pg_dump_path"])
    if params["globals"]:
        tools["pg_dumpall"] = find_tool("pg_dumpall", params["bin_dir"], sibling_of=params["pg_dump_path"])
    return tools


def _dump(params, tools, work, globals_work):
    """pg_dump into ``work`` in the snapshot the row counts were taken in; globals into ``globals_work``."""
    what = f"pg_dump of database {params['database']}"
    counts = None
    superuser = None
    if params["row_counts"]:
        with SnapshotSession(params, tools["psql"], params["database"], f"row counts of {params['database']}") as ses:
            counts = ses.row_counts()
            superuser = ses.superuser
            run_tool(build_pg_dump_argv(params, tools["pg_dump"], work, ses.snapshot), params, what)
    else:
        run_tool(build_pg_dump_argv(params, tools["pg_dump"], work), params, what)
    globals_info = None
    if params["globals"]:
        if superuser is None:
            out = run_tool(
                build_psql_argv(params, tools["psql"], params["database"]),
                params,
                f"checking the privileges of the backup user on {params['database']}",
                stdin_text="SELECT pg_catalog.current_setting('is_superuser');\n",
            )
            superuser = out.strip() == "on"
        os.close(os.open(globals_work, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        argv = build_pg_dumpall_argv(params, tools["pg_dumpall"], globals_work, role_passwords=superuser)
        run_tool(argv, params, f"pg_dumpall --globals-only for database {params['database']}")
        sha, size = hash_file(globals_work, fsync=True)
        globals_info = {"sha256": sha, "size": size, "role_passwords": superuser}
    return counts, globals_info


def run_backup(params):
    """Dump, hash, verify, publish atomically, then apply retention. Returns a result dict."""
    params = check_backup_params(params)
    tools = find_backup_tools(params)
    pg_dump, pg_restore = tools["pg_dump"], tools["pg_restore"]
    db_dir = os.path.join(params["backup_dir"], params["database"])
    if not os.path.isdir(db_dir):
        os.makedirs(db_dir, mode=0o700, exist_ok=True)
        fsync_dir(params["backup_dir"])

    with backup_lock(db_dir):
        stale = clean_stale(db_dir)
        before = list_backups(db_dir, params["database"])
        started = utc_now()
        name = backup_name(params["database"], format_timestamp(started), params["format"])
        # Two runs in the same second would share a name: wait for the next second.
        while os.path.lexists(os.path.join(db_dir, name)) or os.path.lexists(os.path.join(db_dir, manifest_name(name))):
            time.sleep(1.05 - (utc_now().microsecond / 1e6))
            started = utc_now()
            name = backup_name(params["database"], format_timestamp(started), params["format"])
        final = os.path.join(db_dir, name)
        final_manifest = final + MANIFEST_SUFFIX
        work = os.path.join(db_dir, partial_name(name))
        final_globals = globals_name(final)
        globals_work = os.path.join(db_dir, partial_name(globals_name(name)))
        clock = time.monotonic()
        published = False
        try:
            if params["format"] == "directory":
                os.mkdir(work, 0o700)
            else:
                os.close(os.open(work, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            counts, globals_info = _dump(params, tools, work, globals_work)
            sha, size, files = hash_backup(work, fsync=True)
            if size == 0:
                raise PgBackupError(f"pg_dump of database {params['database']} produced an empty backup")
            listing = run_tool(
                [pg_restore, "--list", work], params, f"pg_restore --list could not read the new backup {final}"
            )
            archive = parse_archive_header(listing)
            if params["verify"]:
                verify_against_manifest(work, {"sha256": sha, "files": files})
            finished = utc_now()
            manifest = build_manifest(
                params,
                name,
                sha=sha,
                size=size,
                files=files,
                started=started,
                finished=finished,
                archive=archive,
                pg_dump_version=tool_version(pg_dump),
                verified=params["verify"],
                row_counts=counts,
                globals_info=globals_info and {"file": globals_name(name), **globals_info},
            )
            manifest["duration"] = round(time.monotonic() - clock, 3)
            # Manifest first: an interruption before the dump's rename leaves a manifest without its
            # dump (never listed as a backup), not a dump file that looks complete.
            atomic_write_json(final_manifest, manifest, mode=0o600)
            published = True
            if globals_info:
                os.replace(globals_work, final_globals)
            os.replace(work, final)
            fsync_dir(db_dir)
        except BaseException:
            remove_path(work)
            remove_path(globals_work)
            if published:
                remove_path(final_manifest)
                remove_path(final_globals)
                remove_path(final)
            with contextlib.suppress(OSError):
                fsync_dir(db_dir)
            raise

        after = list_backups(db_dir, params["database"])
        if not any(item["name"] == name for item in after):
            raise PgBackupError(f"backup {final} was written but is not listed as complete; nothing was pruned")
        retention = retention_plan(after, params, protect={name})
        pruned = []
        for item in retention["delete"]:
            delete_backup(item)
            pruned.append(item["path"])

    return {
        "changed": True,
        "path": final,
        "manifest_path": final_manifest,
        "name": name,
        "database": params["database"],
        "format": params["format"],
        "size": size,
        "sha256": sha,
        "duration": round(time.monotonic() - clock, 3),
        "pruned": pruned,
        "kept": retention["keep"],
        "stale_removed": stale,
        "backups_before": [item["name"] for item in before],
        "backups_after": [item["name"] for item in after if item["path"] not in pruned],
        "manifest": manifest,
        "globals_path": final_globals if globals_info else None,
        "row_counts": counts,
    }


def metrics_from_config(params, metrics_dir, run_success):
    params = normalize_params(params, BACKUP_OPTIONS)
    validate_database_name(params["database"])
    if not params["backup_dir"]:
        raise PgBackupError("backup_dir is required: set it to the directory holding the backups")
    path = write_backup_metrics(metrics_dir, params["backup_dir"], params["database"], run_success)
    return {"changed": True, "metrics_path": path, "run_success": run_success}


# --------------------------------------------------------------------------- script entry point


def main(argv=None):
    return unit_main(
        argv,
        tool="pg_backup",
        what="backup",
        description="Back up one PostgreSQL database (stackops.platform layout).",
        metrics_file="stackops_pg_backup_<database>.prom",
        run=run_backup,
        check=plan_backup,
        write_metrics=metrics_from_config,
    )


if __name__ == "__main__":
    raise SystemExit(main())
