# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL backups: one implementation for the pg_backup module and the systemd timer.

Standard library only (no Ansible, no psycopg2), so the same file runs on a target as
``python3 pg_backup_core.py --config /etc/stackops/pg_backup-<db>.json`` and is imported by
``stackops.platform.pg_backup``. The config file holds the module option names; the password
comes from ``passfile`` or the PGPASSWORD environment variable, never from argv.

Layout under ``backup_dir``::

    <database>/<database>_<YYYYmmddTHHMMSSZ>.dump            custom format (a file)
    <database>/<database>_<YYYYmmddTHHMMSSZ>.dir             directory format
    <database>/<database>_<YYYYmmddTHHMMSSZ>.<ext>.manifest.json
    <database>/.<name>.partial                               work in progress, never a backup
    <database>/.lock                                         one backup of a database at a time

A backup counts only when both the dump and its manifest exist and the manifest names it.

``--write-metrics DIR`` (the backup unit's ExecStopPost) writes ``DIR/stackops_pg_backup_<database>.prom``
for node exporter's textfile collector; see ``write_backup_metrics``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    from ansible_collections.stackops.platform.plugins.module_utils import backup_retention
except ImportError:  # run as a script by the backup timer: the installed sibling file
    import backup_retention

TOOL_NAME = "stackops.platform.pg_backup"
TOOL_VERSION = "0.1.0"
MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
FORMATS = {"custom": "dump", "directory": "dir"}
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
TIMESTAMP_RE = r"\d{8}T\d{6}Z"
HASH_BUFFER = 4 * 1024 * 1024
PARTIAL_GLOBS = (".*.partial", ".*.deleting", ".*.manifest.json.tmp")

# Option name -> (type, default). The module's argument_spec mirrors this table.
# Connection options shared with pg_restore_core.
CONNECTION_OPTIONS = {
    "host": (str, None),
    "port": (int, None),
    "user": (str, None),
    "password": (str, None),
    "passfile": (str, None),
    "bin_dir": (str, None),
}
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
}


def postgres_connection_spec():
    """Ansible argument_spec entries of the connection options (see the postgres_connection doc fragment)."""
    return {
        "host": {"type": "str"},
        "port": {"type": "int"},
        "user": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "passfile": {"type": "path"},
        "bin_dir": {"type": "path"},
    }


class PgBackupError(Exception):
    """A backup or restore step failed; the message says what and what to do."""


# --------------------------------------------------------------------------- names and quoting


def utc_now():
    return datetime.datetime.now(datetime.UTC)


def format_timestamp(moment):
    return moment.astimezone(datetime.UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text):
    return datetime.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=datetime.UTC)


def validate_database_name(database):
    """A database name must be usable as one path component."""
    if not isinstance(database, str) or not database:
        raise PgBackupError("database is required: set database to the name of the database to back up")
    if "/" in database or "\x00" in database or database in (".", "..") or database.startswith("."):
        raise PgBackupError(
            f"database {database!r} cannot be used as a directory name under backup_dir: "
            "it must not contain '/' or NUL or start with '.'"
        )
    if len(database.encode("utf-8")) > 63:
        raise PgBackupError(f"database {database!r} is longer than PostgreSQL's 63-byte identifier limit")
    return database


def backup_name(database, timestamp, fmt):
    """``<database>_<timestamp>.dump`` (custom) or ``.dir`` (directory)."""
    if fmt not in FORMATS:
        raise PgBackupError(f"format {fmt!r} is not supported: use one of {', '.join(sorted(FORMATS))}")
    return f"{database}_{timestamp}.{FORMATS[fmt]}"


def partial_name(name):
    return f".{name}.partial"


def manifest_name(name):
    return name + MANIFEST_SUFFIX


def parse_backup_name(database, name):
    """Return (timestamp, format) if ``name`` is a backup of ``database``, else None."""
    match = re.fullmatch(re.escape(database) + r"_(" + TIMESTAMP_RE + r")\.(dump|dir)", name)
    if not match:
        return None
    fmt = "custom" if match.group(2) == "dump" else "directory"
    try:
        parse_timestamp(match.group(1))
    except ValueError:
        return None
    return match.group(1), fmt


def quote_ident(name):
    """Quote a PostgreSQL identifier (database, role) for SQL text."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise PgBackupError(f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    """Quote a string literal; safe whatever standard_conforming_strings says."""
    if "\x00" in value:
        raise PgBackupError("NUL byte in SQL literal")
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def conninfo_dbname(database):
    """A libpq conninfo string naming only the database (works for names with '=', spaces, quotes)."""
    return "dbname='" + database.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- parameters and tools


def normalize_params(params, options=None):
    """Fill defaults, check types and values; raise PgBackupError naming the bad value."""
    options = options or BACKUP_OPTIONS
    unknown = sorted(set(params) - set(options))
    if unknown:
        raise PgBackupError(f"unknown option(s) {', '.join(unknown)}: valid options are {', '.join(sorted(options))}")
    result = {}
    for key, (kind, default) in options.items():
        value = params.get(key)
        if value is None:
            value = default
        elif kind is int and not isinstance(value, bool):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise PgBackupError(f"{key} must be an integer, got {value!r}") from None
        elif kind is bool and not isinstance(value, bool):
            raise PgBackupError(f"{key} must be true or false, got {value!r}")
        elif kind is str:
            value = str(value)
        result[key] = value
    return result


def check_backup_params(params):
    params = normalize_params(params)
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


def find_tool(name, bin_dir=None, explicit=None, sibling_of=None):
    """Resolve a PostgreSQL client program: explicit path, bin_dir, next to sibling_of, PATH, newest install."""
    candidates = []
    if explicit:
        candidates.append(explicit)
    elif bin_dir:
        candidates.append(os.path.join(bin_dir, name))
    else:
        if sibling_of:
            candidates.append(os.path.join(os.path.dirname(sibling_of), name))
        found = shutil.which(name)
        if found:
            candidates.append(found)
        versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key, reverse=True)
        candidates.extend(versions)
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    where = explicit or (os.path.join(bin_dir, name) if bin_dir else f"PATH or /usr/lib/postgresql/*/bin ({name})")
    raise PgBackupError(f"{name} not found at {where}: install the PostgreSQL client or set bin_dir / the path option")


def _version_key(path):
    part = path.split("/")[4] if len(path.split("/")) > 4 else "0"
    return [int(p) if p.isdigit() else 0 for p in part.split(".")]


def connection_args(params):
    """-h/-p/-U flags; never a password."""
    argv = []
    if params.get("host"):
        argv.extend(["-h", params["host"]])
    if params.get("port"):
        argv.extend(["-p", str(params["port"])])
    if params.get("user"):
        argv.extend(["-U", params["user"]])
    return argv


def client_env(params, base=None):
    """Environment for libpq clients: password and passfile travel here, never in argv."""
    env = dict(os.environ if base is None else base)
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    if params.get("passfile"):
        env["PGPASSFILE"] = params["passfile"]
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    env["PGAPPNAME"] = "stackops-pg-backup"
    return env


def build_pg_dump_argv(params, pg_dump, out_path):
    argv = [pg_dump, "--format=" + ("c" if params["format"] == "custom" else "d"), "--file=" + out_path]
    if params["format"] == "directory" and params.get("jobs", 1) > 1:
        argv.append(f"--jobs={params['jobs']}")
    if params.get("compress") is not None:
        argv.append(f"--compress={params['compress']}")
    argv.extend(connection_args(params))
    argv.append("--no-password")
    argv.append("--dbname=" + conninfo_dbname(params["database"]))
    return argv


def redact(text, params):
    """Strip the password from any text we report, in case a tool echoed it."""
    text = text or ""
    secret = params.get("password")
    if secret:
        text = text.replace(secret, "********")
    return text.strip()


def run_tool(argv, params, what, stdin_text=None):
    """Run a client program; raise PgBackupError with its stderr on failure."""
    try:
        proc = subprocess.run(
            argv,
            input=stdin_text,
            capture_output=True,
            text=True,
            env=client_env(params),
            check=False,
        )
    except OSError as exc:
        raise PgBackupError(f"{what}: cannot run {argv[0]}: {exc}") from None
    if proc.returncode != 0:
        if proc.returncode < 0:
            reason = f"was killed by signal {-proc.returncode}"
        else:
            reason = f"failed with exit code {proc.returncode}"
        raise PgBackupError(f"{what}: {os.path.basename(argv[0])} {reason}: {redact(proc.stderr, params)}")
    return proc.stdout


def tool_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    match = re.search(r"(\d+(?:\.\d+)+)", out or "")
    return match.group(1) if match else (out or "").strip() or None


def parse_archive_header(listing):
    """Versions, database name and table count from ``pg_restore --list`` output."""
    info = {"server_version": None, "pg_dump_version": None, "dbname": None, "tables": 0, "entries": 0}
    for line in listing.splitlines():
        match = re.match(r";\s+Dumped from database version:\s*(.+)", line)
        if match:
            info["server_version"] = match.group(1).strip()
        match = re.match(r";\s+Dumped by pg_dump version:\s*(.+)", line)
        if match:
            info["pg_dump_version"] = match.group(1).strip()
        match = re.match(r";\s+dbname:\s*(.+)", line)
        if match:
            info["dbname"] = match.group(1).strip()
        if line and not line.startswith(";"):
            info["entries"] += 1
            if re.match(r"\d+;\s+\d+\s+\d+\s+TABLE\s+(?!DATA\s)", line):
                info["tables"] += 1
    return info


# --------------------------------------------------------------------------- files


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path, fsync=False):
    """sha256 and size of a file in one pass with a large buffer; optionally fsync it."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(HASH_BUFFER)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            count = os.readv(fd, [buf])
            if not count:
                break
            digest.update(view[:count])
            size += count
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def hash_backup(path, fsync=False):
    """Digest of a backup: file -> (sha256, size, None); directory -> (overall, size, {relpath: sha256})."""
    if not os.path.isdir(path):
        sha, size = hash_file(path, fsync=fsync)
        return sha, size, None
    files = {}
    size = 0
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            files[rel], part = hash_file(full, fsync=fsync)
            size += part
        if fsync:
            fsync_dir(root)
    return directory_digest(files), size, files


def directory_digest(files):
    """Overall digest of a directory backup: sha256 of ``<sha256>  <relpath>\\n`` lines in path order."""
    lines = "".join(f"{files[rel]}  {rel}\n" for rel in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def verify_against_manifest(path, manifest):
    """Re-read a backup and compare with its manifest; raise naming the first file that differs."""
    expected = manifest.get("sha256")
    if not expected:
        raise PgBackupError(f"manifest for {path} has no sha256: the backup cannot be verified")
    sha, size, files = hash_backup(path)
    if files is not None:
        wanted = manifest.get("files") or {}
        for rel in sorted(set(wanted) | set(files)):
            if wanted.get(rel) != files.get(rel):
                state = "missing" if rel not in files else ("unexpected" if rel not in wanted else "sha256 mismatch")
                raise PgBackupError(f"checksum verification failed for {os.path.join(path, rel)}: {state}")
    if sha != expected:
        raise PgBackupError(
            f"checksum verification failed for {path}: sha256 {sha} does not match manifest {expected}"
        )
    return sha, size


def remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def write_json_file(path, data):
    """Write JSON to a new file (0600) and fsync it; the caller renames it into place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- listing and retention


def list_backups(db_dir, database):
    """Complete backups of ``database`` in ``db_dir``, newest first.

    Complete = a dump named like a backup, its manifest beside it, the manifest naming it.
    Partials, manifests without dumps and dumps without manifests are not backups.
    """
    backups = []
    try:
        names = os.listdir(db_dir)
    except FileNotFoundError:
        return backups
    for name in names:
        parsed = parse_backup_name(database, name)
        if not parsed:
            continue
        path = os.path.join(db_dir, name)
        manifest_path = os.path.join(db_dir, manifest_name(name))
        manifest = read_manifest(manifest_path)
        if manifest is None or manifest.get("name") != name:
            continue
        if parsed[1] == "directory" and not os.path.isdir(path):
            continue
        if parsed[1] == "custom" and not os.path.isfile(path):
            continue
        backups.append(
            {
                "name": name,
                "path": path,
                "manifest_path": manifest_path,
                "timestamp": parsed[0],
                "format": parsed[1],
                "sha256": manifest.get("sha256"),
            }
        )
    backups.sort(key=lambda item: (item["timestamp"], item["name"]), reverse=True)
    return backups


def retention_policy(params):
    """The GFS policy of backup_retention from the keep_* options; PgBackupError names a bad count."""
    try:
        return backup_retention.check_policy({rule: params.get(rule) for rule in backup_retention.COUNT_RULES})
    except backup_retention.RetentionError as exc:
        raise PgBackupError(str(exc)) from None


def retention_plan(backups, params, now=None, protect=()):
    """backup_retention.select over listed backups: ``{"keep": {name: [rules]}, "delete": [...]}``."""
    return backup_retention.select(
        backups,
        retention_policy(params),
        now=now or utc_now(),
        protect=protect,
        moment=lambda item: parse_timestamp(item["timestamp"]),
    )


def select_prune(backups, keep_last=None, keep_days=None, now=None, protect=(), **periods):
    """Backups to delete under keep_last / keep_days / keep_daily / keep_weekly / keep_monthly.

    A backup goes only if no rule keeps it; no rule set prunes nothing; the newest backup and any name
    in ``protect`` stay (see backup_retention).
    """
    params = {"keep_last": keep_last, "keep_days": keep_days, **periods}
    return retention_plan(backups, params, now=now, protect=protect)["delete"]


def delete_backup(backup):
    """Delete a backup so an interruption never leaves something that looks complete."""
    db_dir = os.path.dirname(backup["path"])
    doomed = os.path.join(db_dir, f".{backup['name']}.deleting")
    os.replace(backup["path"], doomed)
    remove_path(backup["manifest_path"])
    fsync_dir(db_dir)
    remove_path(doomed)


def clean_stale(db_dir):
    """Remove leftovers of interrupted runs; only called while holding the lock.

    Only hidden work files (``.*.partial``, ``.*.deleting``, ``.*.manifest.json.tmp``) are removed.
    A manifest without its dump, or a dump without its manifest, is never counted as a backup and is
    left alone (it may be a backup someone moved away for inspection).
    """
    removed = []
    for pattern in PARTIAL_GLOBS:
        for path in glob.glob(os.path.join(glob.escape(db_dir), pattern)):
            remove_path(path)
            removed.append(path)
    return sorted(removed)


# --------------------------------------------------------------------------- manifest


def build_manifest(params, name, *, sha, size, files, started, finished, archive, pg_dump_version, verified):
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "database": params["database"],
        "format": params["format"],
        "compress": params.get("compress"),
        "jobs": params.get("jobs", 1),
        "size": size,
        "sha256": sha,
        "server_version": archive.get("server_version"),
        "pg_dump_version": pg_dump_version or archive.get("pg_dump_version"),
        "tables": archive.get("tables"),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration": round((finished - started).total_seconds(), 3),
        "host": socket.gethostname(),
        "source_host": params.get("host"),
        "source_port": params.get("port"),
        "tool": {"name": TOOL_NAME, "version": TOOL_VERSION},
        "verified": verified,
    }
    if files is not None:
        manifest["files"] = files
    return manifest


# --------------------------------------------------------------------------- backup


class BackupLock:
    def __init__(self, db_dir):
        self.path = os.path.join(db_dir, ".lock")
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                where = os.path.dirname(self.path)
                raise PgBackupError(f"another backup is running in {where}: try again later") from None
            raise
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        return False


def plan_backup(params, now=None):
    """What run_backup would do, without touching anything (check mode)."""
    params = check_backup_params(params)
    now = now or utc_now()
    find_tool("pg_dump", params["bin_dir"], params["pg_dump_path"])
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


def run_backup(params):
    """Dump, hash, verify, publish atomically, then apply retention. Returns a result dict."""
    params = check_backup_params(params)
    pg_dump = find_tool("pg_dump", params["bin_dir"], params["pg_dump_path"])
    pg_restore = find_tool("pg_restore", params["bin_dir"], sibling_of=params["pg_dump_path"])
    db_dir = os.path.join(params["backup_dir"], params["database"])
    if not os.path.isdir(db_dir):
        os.makedirs(db_dir, mode=0o700, exist_ok=True)
        fsync_dir(params["backup_dir"])

    with BackupLock(db_dir):
        stale = clean_stale(db_dir)
        before = list_backups(db_dir, params["database"])
        started = utc_now()
        name = backup_name(params["database"], format_timestamp(started), params["format"])
        # Two runs in the same second would share a name: wait for the next second.
        while os.path.lexists(os.path.join(db_dir, name)) or os.path.lexists(
            os.path.join(db_dir, manifest_name(name))
        ):
            time.sleep(1.05 - (utc_now().microsecond / 1e6))
            started = utc_now()
            name = backup_name(params["database"], format_timestamp(started), params["format"])
        final = os.path.join(db_dir, name)
        final_manifest = final + MANIFEST_SUFFIX
        work = os.path.join(db_dir, partial_name(name))
        manifest_tmp = os.path.join(db_dir, "." + manifest_name(name) + ".tmp")
        clock = time.monotonic()
        published = False
        try:
            if params["format"] == "directory":
                os.mkdir(work, 0o700)
            else:
                os.close(os.open(work, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            run_tool(build_pg_dump_argv(params, pg_dump, work), params, f"pg_dump of database {params['database']}")
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
            )
            manifest["duration"] = round(time.monotonic() - clock, 3)
            write_json_file(manifest_tmp, manifest)
            # Manifest first: an interruption between the two renames leaves a manifest without its
            # dump (never listed as a backup), not a dump file that looks complete.
            os.replace(manifest_tmp, final_manifest)
            published = True
            os.replace(work, final)
            fsync_dir(db_dir)
        except BaseException:
            remove_path(work)
            remove_path(manifest_tmp)
            if published:
                remove_path(final_manifest)
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
    }


# --------------------------------------------------------------------------- metrics

METRICS_PREFIX = "stackops_pg_backup"
# name -> HELP text. Every database's file must carry the same text: node exporter drops (older
# versions: fails on) a metric whose HELP differs between two .prom files.
METRIC_HELP = {
    "last_success_timestamp_seconds": "Unix time the newest complete backup finished (its manifest's finished_at).",
    "last_size_bytes": "Size in bytes of the newest complete backup.",
    "last_duration_seconds": "Seconds the newest complete backup took.",
    "count": "Complete backups (dump plus manifest) on disk.",
    "last_run_success": "1 if the last run of the backup service succeeded, else 0.",
    "last_run_timestamp_seconds": "Unix time the backup service last finished, successful or not.",
}


def metrics_file_name(database):
    return f"{METRICS_PREFIX}_{validate_database_name(database)}.prom"


def escape_label_value(value):
    """Label value escaping of the Prometheus text exposition format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _finished_seconds(backup, manifest):
    """Unix seconds of a backup's finished_at; its name's (start) time when the manifest lacks it."""
    text = manifest.get("finished_at")
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            moment = datetime.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            return moment.timestamp()
    # The start is never later than the finish, so an age alert computed from it errs on the early side.
    return parse_timestamp(backup["timestamp"]).timestamp()


def backup_metrics(db_dir, database, run_success, now=None):
    """Metric values of one database, read from the backups on disk rather than from this run.

    The disk is the truth: a failed run leaves the previous success standing, and backups taken by the
    module or playbooks/backup.yml count too. Series about the newest backup are left out when there is
    none, so that ``absent()`` alerts still fire.
    """
    backups = list_backups(db_dir, database)
    values = {}
    for backup in backups:
        # Newest first; a manifest can vanish between listing and reading only if a concurrent
        # run pruned it, and then the next newest is still a backup.
        manifest = read_manifest(backup["manifest_path"])
        if manifest is None or manifest.get("name") != backup["name"]:
            continue
        values["last_success_timestamp_seconds"] = _finished_seconds(backup, manifest)
        for key, field in (("last_size_bytes", "size"), ("last_duration_seconds", "duration")):
            value = manifest.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[key] = value
        break
    values["count"] = len(backups)
    values["last_run_success"] = 1 if run_success else 0
    values["last_run_timestamp_seconds"] = (now or utc_now()).timestamp()
    return values


def render_metrics(database, values):
    """Text exposition format, one gauge family per value, labelled with the database."""
    labels = f'{{database="{escape_label_value(database)}"}}'
    lines = []
    for key, help_text in METRIC_HELP.items():
        if key not in values:
            continue
        name = f"{METRICS_PREFIX}_{key}"
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{labels} {values[key]!r}")
    return "\n".join(lines) + "\n"


def write_backup_metrics(metrics_dir, backup_dir, database, run_success, now=None):
    """Write ``<metrics_dir>/stackops_pg_backup_<database>.prom`` atomically; return its path.

    The temporary file does not end in .prom, so node exporter never reads a half-written file.
    """
    name = metrics_file_name(database)
    values = backup_metrics(os.path.join(backup_dir, database), database, run_success, now=now)
    text = render_metrics(database, values)
    final = os.path.join(metrics_dir, name)
    tmp = None
    if os.path.lexists(metrics_dir) and not os.path.isdir(metrics_dir):
        raise PgBackupError(f"metrics directory {metrics_dir} exists but is not a directory")
    try:
        if not os.path.isdir(metrics_dir):
            os.makedirs(metrics_dir, mode=0o755, exist_ok=True)
            # The backup unit runs with UMask=0077; node exporter must still be able to enter it.
            os.chmod(metrics_dir, 0o755)  # noqa: S103 - world-readable metrics by design
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=metrics_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o644)
        os.replace(tmp, final)
        tmp = None
        with contextlib.suppress(OSError):
            fsync_dir(metrics_dir)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PgBackupError(f"cannot write backup metrics {final} (directory {metrics_dir}): {reason}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return final


def run_result_from(option, environ=None):
    """True for success. ``--run-result`` wins; else systemd's SERVICE_RESULT (set for ExecStopPost)."""
    if option:
        return option == "success"
    result = (environ if environ is not None else os.environ).get("SERVICE_RESULT")
    if not result:
        raise PgBackupError(
            "--write-metrics needs the result of the backup run: pass --run-result success|failure "
            "or run it as the backup unit's ExecStopPost (systemd sets SERVICE_RESULT)"
        )
    return result == "success"


def metrics_from_config(params, metrics_dir, run_success):
    params = normalize_params(params)
    validate_database_name(params["database"])
    if not params["backup_dir"]:
        raise PgBackupError("backup_dir is required: set it to the directory holding the backups")
    path = write_backup_metrics(metrics_dir, params["backup_dir"], params["database"], run_success)
    return {"changed": True, "metrics_path": path, "run_success": run_success}


# --------------------------------------------------------------------------- script entry point


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Back up one PostgreSQL database (stackops.platform layout).")
    parser.add_argument("--config", required=True, help="JSON file with pg_backup option names")
    parser.add_argument("--check", action="store_true", help="only report what would be done")
    parser.add_argument(
        "--write-metrics",
        metavar="DIR",
        help="no backup: write DIR/stackops_pg_backup_<database>.prom for node exporter from the backups on disk",
    )
    parser.add_argument(
        "--run-result",
        choices=("success", "failure"),
        help="result of the backup run for --write-metrics (default: $SERVICE_RESULT, set by systemd)",
    )
    args = parser.parse_args(argv)
    if args.write_metrics is not None and args.check:
        parser.error("--check and --write-metrics cannot be combined")
    if args.run_result and args.write_metrics is None:
        parser.error("--run-result only goes with --write-metrics")
    # systemd stops with SIGTERM: unwind through the cleanup paths instead of dying mid-write.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with open(args.config, encoding="utf-8") as handle:
            params = json.load(handle)
        if not isinstance(params, dict):
            raise PgBackupError(f"config {args.config} must hold a JSON object of pg_backup options")
        if args.write_metrics is not None:
            result = metrics_from_config(params, args.write_metrics, run_result_from(args.run_result))
        else:
            result = plan_backup(params) if args.check else run_backup(params)
    except (OSError, ValueError, PgBackupError) as exc:
        message = str(exc)
        if isinstance(exc, ValueError) and not isinstance(exc, PgBackupError):
            message = f"config {args.config} is not valid JSON: {exc}"
        sys.stderr.write(f"pg_backup: {message}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
