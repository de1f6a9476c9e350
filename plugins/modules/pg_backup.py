#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_backup
short_description: Back up a PostgreSQL database with a manifest, verification and retention
version_added: 0.1.0
description:
  - Runs C(pg_dump) into a temporary name beside the final one, hashes and fsyncs the result, checks that
    C(pg_restore --list) reads it, then publishes it atomically as
    C(<backup_dir>/<database>/<database>_<YYYYmmddTHHMMSSZ>.dump) (or C(.dir)) with a C(.manifest.json) beside it.
  - A failed or interrupted dump leaves nothing that looks like a backup. Leftovers of killed runs
    (C(.*.partial)) are removed by the next run and never counted as backups.
  - Retention runs only after the new backup succeeded, looks only at complete backups (dump plus manifest)
    and never deletes the newest one.
  - Row counts of every table are taken in the dump's own snapshot (a C(REPEATABLE READ) transaction that
    exports its snapshot to C(pg_dump --snapshot)) and recorded in the manifest, so a restore drill can compare
    them exactly, however busy the database was.
  - C(pg_dumpall --globals-only) (roles, memberships, role settings, tablespaces) is stored beside the dump as
    C(<name>.globals.sql) with its sha256 in the manifest; O(stackops.platform.pg_restore#module:apply_globals)
    applies it to an empty cluster.
  - The same code runs from a systemd timer as
    C(python3 -m ansible_collections.stackops.platform.plugins.module_utils.pg_backup_core --config <file.json>),
    with the option names of this module as JSON keys.
author:
  - stackops platform contributors (@stackops)
extends_documentation_fragment:
  - stackops.platform.postgres_connection
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports the path it would write and the backups it would prune; touches nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Lists the complete backups before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  database:
    description: Name of the database to back up. Also the name of the subdirectory of O(backup_dir).
    type: str
    required: true
  backup_dir:
    description: Existing directory that holds one subdirectory per database.
    type: path
    required: true
  format:
    description:
      - V(custom) writes one C(pg_dump -Fc) file; V(directory) writes a C(pg_dump -Fd) directory and can dump
        in parallel with O(jobs).
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description: Parallel C(pg_dump) jobs; only with O(format=directory).
    type: int
    default: 1
  compress:
    description: Compression level 0-9 passed to C(pg_dump --compress). Unset means the C(pg_dump) default.
    type: int
  pg_dump_path:
    description: Full path of the C(pg_dump) program; overrides O(bin_dir) for C(pg_dump) only.
    type: path
  keep_last:
    description:
      - Keep the O(keep_last) newest complete backups.
      - With O(keep_days) too, a backup is deleted only when both rules allow it.
      - Unset (and O(keep_days) unset) keeps every backup.
    type: int
  keep_days:
    description: Keep complete backups younger than this many days (by the timestamp in their name).
    type: int
  verify:
    description:
      - Re-read the finished dump and compare it with the checksum recorded in the manifest before publishing it.
      - C(pg_restore --list) always reads the new backup, whatever this says.
    type: bool
    default: true
  row_counts:
    description:
      - Count the rows of every table in the dump's snapshot and record them in the manifest (C(row_counts)).
      - Costs one sequential scan of each table; the restore drill needs these counts.
    type: bool
    default: true
  globals:
    description:
      - Store C(pg_dumpall --globals-only) beside the dump and record its sha256 in the manifest.
      - Role passwords are included only when the connecting user is a superuser (else C(--no-role-passwords));
        the manifest says which (C(globals.role_passwords)). The file is mode 0600.
    type: bool
    default: true
notes:
  - The password is never put on a command line; use O(password) (sent as E(PGPASSWORD)) or O(passfile).
  - One backup of a database runs at a time (a lock file in its subdirectory); a second run fails at once.
seealso:
  - module: stackops.platform.pg_restore
  - module: community.postgresql.postgresql_db
  - name: pg_dump
    description: PostgreSQL documentation of pg_dump.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
"""

EXAMPLES = r"""
- name: Back up the app database, keep a week of nightly backups
  stackops.platform.pg_backup:
    database: app
    backup_dir: /var/backups/postgresql
    host: /var/run/postgresql
    user: backup
    password: "{{ vault_pg_backup_password }}"
    keep_last: 7
    keep_days: 7
  register: __backup

- name: Parallel directory-format backup
  stackops.platform.pg_backup:
    database: app
    backup_dir: /var/backups/postgresql
    format: directory
    jobs: 4
    compress: 6
"""

RETURN = r"""
path:
  description: Path of the backup (written, or that would be written in check mode).
  returned: always
  type: str
  sample: /var/backups/postgresql/app/app_20260220T051228Z.dump
manifest_path:
  description: Path of the manifest beside the backup.
  returned: always
  type: str
  sample: /var/backups/postgresql/app/app_20260220T051228Z.dump.manifest.json
name:
  description: File name of the backup.
  returned: success and not check mode
  type: str
  sample: app_20260220T051228Z.dump
format:
  description: Backup format.
  returned: success and not check mode
  type: str
  sample: custom
size:
  description: Size of the backup in bytes (sum of the files for the directory format).
  returned: success and not check mode
  type: int
  sample: 1048576
sha256:
  description: SHA-256 of the dump file, or for the directory format the digest of its per-file digests.
  returned: success and not check mode
  type: str
  sample: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
duration:
  description: Seconds the backup took.
  returned: success and not check mode
  type: float
  sample: 12.5
pruned:
  description: Paths of the backups deleted by retention (in check mode, those that would be deleted).
  returned: always
  type: list
  elements: str
  sample: [/var/backups/postgresql/app/app_20260210T051228Z.dump]
stale_removed:
  description: Leftovers of interrupted runs that were removed.
  returned: success and not check mode
  type: list
  elements: str
  sample: []
backups_before:
  description: Names of the complete backups before this run.
  returned: always
  type: list
  elements: str
  sample: [app_20260219T051228Z.dump]
backups_after:
  description: Names of the complete backups after this run.
  returned: success and not check mode
  type: list
  elements: str
  sample: [app_20260220T051228Z.dump, app_20260219T051228Z.dump]
globals_path:
  description: Path of the C(pg_dumpall --globals-only) file, null when O(globals=false).
  returned: success and not check mode
  type: str
  sample: /var/backups/postgresql/app/app_20260220T051228Z.dump.globals.sql
row_counts:
  description:
    - Rows of each table (C(schema.table), quoted as needed) in the dump's snapshot.
    - Null when O(row_counts=false).
  returned: success and not check mode
  type: dict
  sample: {"public.accounts": 1200, "public.orders": 53211}
manifest:
  description: The manifest written beside the backup.
  returned: success and not check mode
  type: dict
  sample:
    database: app
    format: custom
    sha256: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
    server_version: "15.10"
    pg_dump_version: "15.10"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_core import (
    BACKUP_OPTIONS,
    plan_backup,
    run_backup,
)
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError
from ansible_collections.stackops.platform.plugins.module_utils.pg_client import postgres_connection_spec


def argument_spec():
    spec = {
        "database": {"type": "str", "required": True},
        "backup_dir": {"type": "path", "required": True},
        "format": {"type": "str", "choices": ["custom", "directory"], "default": "custom"},
        "jobs": {"type": "int", "default": 1},
        "compress": {"type": "int"},
        "pg_dump_path": {"type": "path"},
        "keep_last": {"type": "int"},
        "keep_days": {"type": "int"},
        "verify": {"type": "bool", "default": True},
        "row_counts": {"type": "bool", "default": True},
        "globals": {"type": "bool", "default": True},
    }
    spec.update(postgres_connection_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = {key: module.params[key] for key in BACKUP_OPTIONS}
    try:
        result = plan_backup(params) if module.check_mode else run_backup(params)
    except PgBackupError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"backup of database {params['database']} under {params['backup_dir']} failed: {exc}")
    after = result.get("backups_after")
    if after is None:
        pruned = {path.rsplit("/", 1)[-1] for path in result["pruned"]}
        after = [result["path"].rsplit("/", 1)[-1]] + [n for n in result["backups_before"] if n not in pruned]
    result["diff"] = {"before": {"backups": result["backups_before"]}, "after": {"backups": after}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
