# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL client programs for the backup, restore and drill cores (standard library only).

Finding pg_dump/pg_restore/psql, the connection flags and environment (passwords travel in the
environment, never in argv), running a program with its errors reported, and a psql session that holds
the snapshot a dump is taken in, so that row counts and the dump see the same data.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    PgBackupError,
    conninfo_dbname,
)

# Option name -> (type, default). The modules' argument_specs mirror these tables.
CONNECTION_OPTIONS = {
    "host": (str, None),
    "port": (int, None),
    "user": (str, None),
    "password": (str, None),
    "passfile": (str, None),
    "bin_dir": (str, None),
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


# --------------------------------------------------------------------------- parameters and tools


def normalize_params(params, options, error=PgBackupError, what=""):
    """Fill defaults, check types and values; raise ``error`` naming the bad value.

    ``what`` prefixes option names in messages (``"off-site "``).
    """
    unknown = sorted(set(params) - set(options))
    if unknown:
        raise error(f"unknown {what}option(s) {', '.join(unknown)}: valid options are {', '.join(sorted(options))}")
    result = {}
    for key, (kind, default) in options.items():
        value = params.get(key)
        if value is None:
            value = default
        elif kind is int and not isinstance(value, bool):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise error(f"{what}{key} must be an integer, got {value!r}") from None
        elif kind is float and not isinstance(value, bool):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise error(f"{what}{key} must be a number, got {value!r}") from None
        elif kind is bool and not isinstance(value, bool):
            raise error(f"{what}{key} must be true or false, got {value!r}")
        elif kind is list and not isinstance(value, list):
            raise error(f"{what}{key} must be a list, got {value!r}")
        elif kind is dict and not isinstance(value, dict):
            raise error(f"{what}{key} must be a mapping, got {value!r}")
        elif kind is str:
            value = str(value)
        result[key] = value
    return result


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


def build_psql_argv(params, psql, dbname):
    """psql reading SQL from stdin, unaligned tuples only, stopping at the first error."""
    return [
        psql,
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        *connection_args(params),
        "--no-password",
        "--dbname=" + conninfo_dbname(dbname),
        "-f",
        "-",
    ]


# --------------------------------------------------------------------------- row counts in a snapshot

# Rows of every table whose data pg_dump dumps (plain tables and partitions; not extension members), as one
# JSON object {"schema.table": rows} with quoted identifiers. COPY, which pg_dump uses, reads ONLY the table.
ROW_COUNTS_SQL = (
    "SELECT coalesce(pg_catalog.json_object_agg(t.name, t.rows ORDER BY t.name)::text, '{}') FROM ("
    "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS name, "
    "(pg_catalog.xpath('/row/c/text()', pg_catalog.query_to_xml(pg_catalog.format("
    "'SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS rows "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')) t;"
)


def parse_row_counts(text, what):
    """The JSON object ROW_COUNTS_SQL prints; raise naming ``what`` when it is not one."""
    try:
        counts = json.loads(text)
    except ValueError:
        counts = None
    if not isinstance(counts, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        raise PgBackupError(f"{what}: unexpected row count output {text[:200]!r}")
    return counts


class SnapshotSession:
    """A psql session holding a REPEATABLE READ, READ ONLY transaction and its exported snapshot.

    ``snapshot`` is the id ``pg_dump --snapshot`` takes: the dump then reads exactly the data the queries
    of this session see, however busy the database is. The transaction stays open until ``__exit__``.
    """

    def __init__(self, params, psql, dbname, what):
        self.params = params
        self.argv = build_psql_argv(params, psql, dbname)
        self.what = what
        self.proc = None
        self.snapshot = None
        self.superuser = False

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=client_env(self.params),
            )
        except OSError as exc:
            raise PgBackupError(f"{self.what}: cannot run {self.argv[0]}: {exc}") from None
        try:
            # pg_dump turns row security off and fails where a policy would hide rows: so do the counts.
            self.query("SET row_security = off;", expect_output=False)
            self.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;", expect_output=False)
            self.snapshot = self.query("SELECT pg_catalog.pg_export_snapshot();")
            self.superuser = self.query("SELECT pg_catalog.current_setting('is_superuser');") == "on"
        except BaseException:
            self._stop()
            raise
        return self

    def query(self, sql, expect_output=True):
        """Send one statement; return its single output line (stripped)."""
        try:
            self.proc.stdin.write(sql + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # psql has gone (broken pipe) or the session was already ended
            self._fail()
        if not expect_output:
            return None
        line = self.proc.stdout.readline()
        if not line:
            self._fail()
        return line.strip()

    def row_counts(self):
        return parse_row_counts(self.query(ROW_COUNTS_SQL), self.what)

    def _fail(self):
        err = self._stop()
        self.proc = None
        raise PgBackupError(f"{self.what}: psql failed: {redact(err, self.params) or 'the session ended'}")

    def _stop(self):
        """End psql (closing stdin ends the session, rolling back what was not committed); return its stderr."""
        err = ""
        if self.proc is None:
            return err
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError, ValueError):
            err = self.proc.stderr.read()
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        return err

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(PgBackupError):
                self.query("COMMIT;", expect_output=False)
        self._stop()
        return False
