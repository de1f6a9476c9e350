# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL restores that never lose the live database (standard library only).

The backup is checked against its manifest before anything happens. Data is restored into a
scratch database first; only a restore that passed its checks is swapped in by renaming, and
the previous database is kept as ``<db>_pre_restore_<timestamp>`` unless asked otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    MANIFEST_SUFFIX,
    PgBackupError,
    conninfo_dbname,
    globals_name,
    list_backups,
    quote_ident,
    quote_literal,
    read_manifest,
    utc_now,
    validate_database_name,
    verify_against_manifest,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_client import (
    CONNECTION_OPTIONS,
    build_psql_argv,
    connection_args,
    find_tool,
    normalize_params,
    parse_archive_header,
    run_tool,
)

MODES = ("new", "replace")
NAME_LIMIT = 63
RENAME_ATTEMPTS = 10
RENAME_PAUSE = 0.5

RESTORE_OPTIONS = {
    "source": (str, "latest"),
    "database": (str, None),
    "target": (str, None),
    "backup_dir": (str, None),
    "mode": (str, "new"),
    "drop_previous": (bool, False),
    "jobs": (int, 1),
    "no_owner": (bool, False),
    "sanity_query": (str, None),
    "maintenance_db": (str, "postgres"),
    **CONNECTION_OPTIONS,
    "pg_restore_path": (str, None),
    "apply_globals": (bool, False),
}

USER_TABLES_SQL = (
    "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%';"
)
USER_RELATIONS_SQL = USER_TABLES_SQL.replace("c.relkind IN ('r', 'p')", "c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')")


def name_with_suffix(base, suffix):
    """``base + suffix`` cut to PostgreSQL's 63-byte identifier limit (the server would truncate silently)."""
    room = NAME_LIMIT - len(suffix.encode("utf-8"))
    cut = base.encode("utf-8")[:room].decode("utf-8", "ignore")
    return cut + suffix


def restore_names(target, now=None):
    stamp = (now or utc_now()).strftime("%Y%m%d%H%M%S")
    return {
        "scratch": name_with_suffix(target, f"_restore_{stamp}"),
        "previous": name_with_suffix(target, f"_pre_restore_{stamp}"),
    }


def swap_plan(target, scratch, previous, drop_previous=False):
    """The ordered SQL steps of the swap, and how to undo the first rename if the second fails."""
    steps = [
        {
            "name": "terminate sessions",
            "sql": (
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "  # noqa: S608 quoted
                f"WHERE datname = {quote_literal(target)} AND pid <> pg_catalog.pg_backend_pid();\n"
                f"ALTER DATABASE {quote_ident(target)} RENAME TO {quote_ident(previous)};\n"
            ),
            "undo": None,
        },
        {
            "name": "rename scratch",
            "sql": f"ALTER DATABASE {quote_ident(scratch)} RENAME TO {quote_ident(target)};\n",
            "undo": f"ALTER DATABASE {quote_ident(previous)} RENAME TO {quote_ident(target)};\n",
        },
    ]
    if drop_previous:
        steps.append({"name": "drop previous", "sql": drop_sql(previous), "undo": None})
    return steps


def drop_sql(name):
    return f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n"


def create_sql(name, like=None):
    sql = f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0"
    if like:
        sql += (
            f" ENCODING {quote_literal(like['encoding'])} LC_COLLATE {quote_literal(like['collate'])}"
            f" LC_CTYPE {quote_literal(like['ctype'])} OWNER {quote_ident(like['owner'])}"
        )
    return sql + ";\n"


def build_pg_restore_argv(params, pg_restore, dbname, source, single_transaction=False):
    argv = [pg_restore, "--exit-on-error", *connection_args(params), "--no-password"]
    argv.append("--dbname=" + conninfo_dbname(dbname))
    if params.get("jobs", 1) > 1:
        argv.append(f"--jobs={params['jobs']}")
    elif single_transaction:
        argv.append("--single-transaction")
    if params.get("no_owner"):
        argv.append("--no-owner")
    argv.append(source)
    return argv


def is_truthy(value):
    return value.strip().lower() not in ("", "f", "false", "0", "no", "off")


def check_restore_params(params):
    params = normalize_params(params, RESTORE_OPTIONS)
    if not params["database"] and not params["target"]:
        raise PgBackupError("database is required: set database (the backups to read) and optionally target")
    if params["database"]:
        validate_database_name(params["database"])
    params["target"] = params["target"] or params["database"]
    target = params["target"]
    if "\x00" in target or len(target.encode("utf-8")) > NAME_LIMIT:
        raise PgBackupError(f"target {target!r} is not a valid PostgreSQL database name (at most 63 bytes)")
    if params["mode"] not in MODES:
        raise PgBackupError(f"mode {params['mode']!r} is not supported: use new or replace")
    if params["jobs"] < 1:
        raise PgBackupError(f"jobs must be 1 or more, got {params['jobs']}")
    if target == params["maintenance_db"]:
        raise PgBackupError(f"target {target!r} is the maintenance_db: restore into another database")
    if target in ("template0", "template1"):
        raise PgBackupError(f"target {target!r} is a template database: refusing to replace it")
    if params["source"] == "latest":
        if not params["backup_dir"]:
            raise PgBackupError("source=latest needs backup_dir (the directory pg_backup writes to)")
        if not params["database"]:
            raise PgBackupError("source=latest needs database (whose backups to look at)")
        if not os.path.isdir(params["backup_dir"]):
            raise PgBackupError(f"backup_dir {params['backup_dir']} does not exist or is not a directory")
    return params


def resolve_source(params):
    """(path, manifest_path, manifest) of the backup to restore."""
    if params["source"] == "latest":
        db_dir = os.path.join(params["backup_dir"], params["database"])
        backups = list_backups(db_dir, params["database"])
        if not backups:
            raise PgBackupError(
                f"no complete backup (dump plus manifest) of database {params['database']} in {db_dir}"
            )
        path = backups[0]["path"]
    else:
        path = params["source"].rstrip("/") or params["source"]
        if not os.path.exists(path):
            raise PgBackupError(f"source {path} does not exist: give a backup path or source=latest")
    manifest_path = path + MANIFEST_SUFFIX
    manifest = read_manifest(manifest_path)
    if manifest is None:
        raise PgBackupError(
            f"source {path} has no readable manifest {manifest_path}: refusing to restore an unverifiable backup"
        )
    if manifest.get("name") != os.path.basename(path):
        raise PgBackupError(f"manifest {manifest_path} describes {manifest.get('name')!r}, not {path}: refusing")
    return path, manifest_path, manifest


class Restorer:
    """Runs the client programs for one restore; every SQL statement goes through psql's stdin."""

    def __init__(self, params):
        self.params = params
        self.pg_restore = find_tool("pg_restore", params["bin_dir"], params["pg_restore_path"])
        self.psql = find_tool("psql", params["bin_dir"], sibling_of=params["pg_restore_path"])

    def sql(self, sql, dbname=None, what="psql"):
        argv = build_psql_argv(self.params, self.psql, dbname or self.params["maintenance_db"])
        return run_tool(argv, self.params, what, stdin_text=sql)

    def database_info(self, name):
        out = self.sql(
            "SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, "  # noqa: S608 quoted
            "pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database "
            f"WHERE datname = {quote_literal(name)};",
            what=f"looking up database {name}",
        ).strip()
        if not out:
            return None
        encoding, collate, ctype, owner = out.split("|", 3)
        return {"encoding": encoding, "collate": collate, "ctype": ctype, "owner": owner}

    def count(self, dbname, sql, what):
        out = self.sql(sql, dbname=dbname, what=what).strip()
        return int(out or 0)

    def list_archive(self, path):
        listing = run_tool([self.pg_restore, "--list", path], self.params, f"pg_restore --list cannot read {path}")
        return parse_archive_header(listing)

    def rename_with_retry(self, sql, what):
        for attempt in range(RENAME_ATTEMPTS):
            try:
                return self.sql(sql, what=what)
            except PgBackupError as exc:
                if "being accessed by other users" not in str(exc) or attempt == RENAME_ATTEMPTS - 1:
                    raise
                time.sleep(RENAME_PAUSE)
        return None


def plan_restore(params, restorer=None):
    """Validate, verify the checksum and inspect the target; change nothing. Returns the plan."""
    params = check_restore_params(params)
    restorer = restorer or Restorer(params)
    path, manifest_path, manifest = resolve_source(params)
    sha, _size = verify_against_manifest(path, manifest)
    archive = restorer.list_archive(path)
    target = params["target"]
    info = restorer.database_info(target)
    relations = 0
    if info is not None:
        relations = restorer.count(target, USER_RELATIONS_SQL, f"inspecting database {target}")
    if info is None:
        action = "create"
    elif relations == 0 and params["mode"] == "new":
        action = "restore_into_empty"
    elif params["mode"] == "replace":
        action = "replace"
    else:
        raise PgBackupError(
            f"database {target} already exists and is not empty ({relations} relations): "
            "use mode=replace to swap it for the restored copy (the current one is kept), or pick another target"
        )
    globals_plan = plan_globals(restorer, path, manifest) if params["apply_globals"] else None
    names = restore_names(target)
    for key in ("scratch", "previous"):
        if restorer.database_info(names[key]) is not None:
            raise PgBackupError(f"database {names[key]} already exists: wait a second and retry")
    return {
        "params": params,
        "action": action,
        "source": path,
        "manifest_path": manifest_path,
        "manifest": manifest,
        "sha256": sha,
        "format": manifest.get("format"),
        "tables_expected": archive["tables"],
        "target": target,
        "target_info": info,
        "scratch": names["scratch"] if action != "restore_into_empty" else None,
        "previous": names["previous"] if action == "replace" else None,
        "globals": globals_plan,
    }


def _result(plan, changed, **extra):
    result = {
        "changed": changed,
        "action": plan["action"],
        "mode": plan["params"]["mode"],
        "target": plan["target"],
        "source": plan["source"],
        "manifest_path": plan["manifest_path"],
        "sha256": plan["sha256"],
        "format": plan["format"],
        "scratch": plan["scratch"],
        "previous": plan["previous"],
        "tables_expected": plan["tables_expected"],
        "globals_path": plan["globals"]["path"] if plan["globals"] else None,
        "roles_created": plan["globals"]["roles"] if plan["globals"] else [],
    }
    result.update(extra)
    return result


def run_restore(params, check_mode=False, restorer=None):
    """Restore a verified backup. Check mode stops after the read-only plan."""
    clock = time.monotonic()
    params = check_restore_params(params)
    restorer = restorer or Restorer(params)
    plan = plan_restore(params, restorer)
    if check_mode:
        return _result(plan, True, duration=round(time.monotonic() - clock, 3), tables_restored=None)

    target = plan["target"]
    if plan["globals"]:
        apply_globals(restorer, plan["globals"])
    if plan["action"] == "restore_into_empty":
        argv = build_pg_restore_argv(params, restorer.pg_restore, target, plan["source"], single_transaction=True)
        run_tool(argv, params, f"pg_restore into the empty database {target} failed")
        tables = _check_restored(restorer, plan, target)
        return _result(plan, True, duration=round(time.monotonic() - clock, 3), tables_restored=tables)

    scratch = plan["scratch"]
    like = plan["target_info"] if plan["action"] == "replace" else None
    restorer.sql(create_sql(scratch, like), what=f"creating scratch database {scratch}")
    try:
        argv = build_pg_restore_argv(params, restorer.pg_restore, scratch, plan["source"])
        run_tool(argv, params, f"pg_restore into scratch database {scratch} failed; {target} was not touched")
        tables = _check_restored(restorer, plan, scratch)
    except BaseException:
        _drop_quietly(restorer, scratch)
        raise

    previous = None
    dropped = False
    warnings = []
    if plan["action"] == "create":
        try:
            restorer.rename_with_retry(
                f"ALTER DATABASE {quote_ident(scratch)} RENAME TO {quote_ident(target)};\n", f"renaming {scratch}"
            )
        except BaseException:
            _drop_quietly(restorer, scratch)
            raise
    else:
        previous, dropped, warnings = _swap(restorer, plan)
    return _result(
        plan,
        True,
        previous=None if dropped else previous,
        dropped_previous=dropped,
        duration=round(time.monotonic() - clock, 3),
        tables_restored=tables,
        warnings=warnings,
    )


# ``CREATE ROLE <name>;`` as pg_dumpall writes it (the name quoted only when it needs to be).
CREATE_ROLE_RE = re.compile(r'^CREATE ROLE ((?:"(?:[^"]|"")+")|[a-z_][a-z0-9_$]*);$')
EXISTING_ROLES_SQL = (
    "SELECT pg_catalog.json_build_object('current', current_user, 'roles', "
    "(SELECT pg_catalog.json_agg(rolname) FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_'));"
)


def globals_roles(sql_text):
    """Names of the roles a ``pg_dumpall --globals-only`` file creates, in file order."""
    roles = []
    for line in sql_text.splitlines():
        match = CREATE_ROLE_RE.match(line)
        if match:
            name = match.group(1)
            roles.append(name[1:-1].replace('""', '"') if name.startswith('"') else name)
    return roles


def globals_script(sql_text, current_user):
    """The globals SQL without the CREATE ROLE of the connecting user (who exists on every cluster)."""
    lines = []
    for line in sql_text.splitlines():
        match = CREATE_ROLE_RE.match(line)
        if match and globals_roles(line) == [current_user]:
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def plan_globals(restorer, path, manifest):
    """Check that the backup carries verified globals and that the cluster is empty of their roles."""
    recorded = manifest.get("globals")
    if not recorded:
        raise PgBackupError(
            f"backup {path} has no globals (taken with globals=false or before they were stored): "
            "apply_globals needs a backup that stored pg_dumpall --globals-only"
        )
    globals_path = globals_name(path)
    with open(globals_path, encoding="utf-8") as handle:
        text = handle.read()
    found = json.loads(restorer.sql(EXISTING_ROLES_SQL, what="listing the roles of the cluster"))
    current_user, existing = found["current"], set(found["roles"] or ())
    clashing = [role for role in globals_roles(text) if role in existing and role != current_user]
    if clashing:
        raise PgBackupError(
            f"apply_globals is for an empty cluster, but roles {', '.join(clashing)} of {globals_path} already "
            "exist: drop them or restore without apply_globals. Nothing was changed."
        )
    return {
        "path": globals_path,
        "sql": globals_script(text, current_user),
        "roles": [role for role in globals_roles(text) if role != current_user],
        "role_passwords": bool(recorded.get("role_passwords")),
        "tablespaces": "CREATE TABLESPACE" in text,
    }


def apply_globals(restorer, globals_plan):
    """Run the globals SQL; in one transaction unless it creates tablespaces (which cannot run in one)."""
    argv = build_psql_argv(restorer.params, restorer.psql, restorer.params["maintenance_db"])
    if not globals_plan["tablespaces"]:
        argv.insert(1, "--single-transaction")
    run_tool(argv, restorer.params, f"applying globals {globals_plan['path']}", stdin_text=globals_plan["sql"])


def _check_restored(restorer, plan, dbname):
    tables = restorer.count(dbname, USER_TABLES_SQL, f"counting tables in {dbname}")
    if tables < plan["tables_expected"]:
        raise PgBackupError(
            f"restore check failed: {dbname} has {tables} tables, the backup {plan['source']} has "
            f"{plan['tables_expected']}; {plan['target']} was not touched"
        )
    query = plan["params"]["sanity_query"]
    if query:
        out = restorer.sql(query.rstrip().rstrip(";") + ";\n", dbname=dbname, what="sanity_query").strip()
        first = out.splitlines()[0].split("|")[0] if out else ""
        if not is_truthy(first):
            raise PgBackupError(
                f"sanity_query returned {first!r} on the restored copy {dbname}; {plan['target']} was not touched"
            )
    return tables


def _drop_quietly(restorer, name):
    with contextlib.suppress(PgBackupError):
        restorer.sql(drop_sql(name), what=f"dropping scratch database {name}")


def _swap(restorer, plan):
    target, scratch, previous = plan["target"], plan["scratch"], plan["previous"]
    steps = swap_plan(target, scratch, previous, plan["params"]["drop_previous"])
    try:
        restorer.rename_with_retry(steps[0]["sql"], f"renaming {target} to {previous}")
    except BaseException:
        _drop_quietly(restorer, scratch)
        raise
    try:
        restorer.rename_with_retry(steps[1]["sql"], f"renaming {scratch} to {target}")
    except BaseException as exc:
        try:
            restorer.rename_with_retry(steps[1]["undo"], f"renaming {previous} back to {target}")
        except PgBackupError as undo_exc:
            raise PgBackupError(
                f"swap failed ({exc}) and renaming {previous} back to {target} failed too ({undo_exc}): "
                f"the live data is in database {previous}; rename it to {target} by hand"
            ) from None
        _drop_quietly(restorer, scratch)
        raise
    dropped = False
    warnings = []
    if len(steps) > 2:
        try:
            restorer.sql(steps[2]["sql"], what=f"dropping previous database {previous}")
            dropped = True
        except PgBackupError as exc:
            warnings.append(f"restore succeeded but {previous} could not be dropped: {exc}")
    return previous, dropped, warnings
