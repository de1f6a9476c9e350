# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup names and manifests: what a backup is called, what its manifest holds, how it is verified.

Standard library only. Layout under ``backup_dir``::

    <database>/<database>_<YYYYmmddTHHMMSSZ>.dump            custom format (a file)
    <database>/<database>_<YYYYmmddTHHMMSSZ>.dir             directory format
    <database>/<database>_<YYYYmmddTHHMMSSZ>.<ext>.manifest.json
    <database>/<database>_<YYYYmmddTHHMMSSZ>.<ext>.globals.sql   pg_dumpall --globals-only (roles, grants)
    <database>/.<name>.partial                               work in progress, never a backup
    <database>/.lock                                         one backup of a database at a time

A backup counts only when both the dump and its manifest exist and the manifest names it. The manifest
records the sha256 of the dump (and of the globals file when there is one) and the per-table row counts
taken in the dump's own snapshot.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import socket

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import fsync_dir

TOOL_NAME = "stackops.platform.pg_backup"
TOOL_VERSION = "0.1.0"
MANIFEST_VERSION = 2
MANIFEST_SUFFIX = ".manifest.json"
GLOBALS_SUFFIX = ".globals.sql"
FORMATS = {"custom": "dump", "directory": "dir"}
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
TIMESTAMP_RE = r"\d{8}T\d{6}Z"
HASH_BUFFER = 4 * 1024 * 1024


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


def globals_name(name):
    """The pg_dumpall --globals-only file stored beside backup ``name``."""
    return name + GLOBALS_SUFFIX


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


# --------------------------------------------------------------------------- checksums


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
        raise PgBackupError(f"checksum verification failed for {path}: sha256 {sha} does not match manifest {expected}")
    verify_globals(path, manifest)
    return sha, size


def verify_globals(path, manifest):
    """Check the globals file recorded in the manifest (if any); return its path or None."""
    recorded = manifest.get("globals")
    if not recorded:
        return None
    if not isinstance(recorded, dict) or not recorded.get("sha256"):
        raise PgBackupError(f"manifest for {path} has a globals entry without sha256: it cannot be verified")
    globals_path = globals_name(path)
    if not os.path.isfile(globals_path):
        raise PgBackupError(f"checksum verification failed for {globals_path}: missing (the manifest records it)")
    sha, _size = hash_file(globals_path)
    if sha != recorded["sha256"]:
        raise PgBackupError(
            f"checksum verification failed for {globals_path}: sha256 {sha} does not match manifest "
            f"{recorded['sha256']}"
        )
    return globals_path


def read_manifest(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- listing and manifest


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


def build_manifest(
    params,
    name,
    *,
    sha,
    size,
    files,
    started,
    finished,
    archive,
    pg_dump_version,
    verified,
    row_counts=None,
    globals_info=None,
):
    """The manifest of a backup. ``row_counts`` ({"schema.table": rows}) were counted in the dump's snapshot."""
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
    if row_counts is not None:
        manifest["row_counts"] = row_counts
        manifest["row_counts_method"] = "snapshot"
    if globals_info is not None:
        manifest["globals"] = globals_info
    return manifest
