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
  - Retention is grandfather-father-son (O(keep_daily), O(keep_weekly), O(keep_monthly)) plus O(keep_last)
    and O(keep_days); a backup stays when any rule keeps it and the result names the rules (RV(kept)).
  - With O(offsite), the new backup (and any kept local backup the bucket lacks) is encrypted with C(age) and
    uploaded, verified, and the bucket's own retention applied; a failed upload fails the task but never
    deletes a local backup.
author:
  - stackops platform contributors (@stackops)
extends_documentation_fragment:
  - stackops.platform.postgres_connection
  - stackops.platform.backup_offsite
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Reports the path it would write, the backups it would prune and the rules that keep the others.
      - With O(offsite), lists the bucket (read only) and reports what would be uploaded and deleted there.
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
      - Keep the O(keep_last) newest complete backups, whatever the other rules say.
      - A backup is deleted only when no rule (O(keep_last), O(keep_days), O(keep_daily), O(keep_weekly),
        O(keep_monthly)) keeps it; the newest complete backup is never deleted.
      - All rules unset keeps every backup. A negative count, or counts that are all V(0), fail before anything is
        deleted.
    type: int
  keep_days:
    description: Keep complete backups younger than this many days (by the timestamp in their name).
    type: int
  keep_daily:
    description:
      - Keep the newest backup of each of the last O(keep_daily) days that have a backup (UTC days).
      - A day without a backup does not use up the count.
    type: int
    version_added: 0.2.0
  keep_weekly:
    description: Keep the newest backup of each of the last O(keep_weekly) ISO weeks that have a backup.
    type: int
    version_added: 0.2.0
  keep_monthly:
    description: Keep the newest backup of each of the last O(keep_monthly) calendar months that have a backup.
    type: int
    version_added: 0.2.0
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

- name: Nightly backup with GFS retention and an encrypted copy in a bucket
  stackops.platform.pg_backup:
    database: app
    backup_dir: /var/backups/postgresql
    keep_last: 3
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
    offsite:
      endpoint: https://s3.eu-central-1.amazonaws.com
      region: eu-central-1
      bucket: acme-db-backups
      prefix: prod
      access_key: "{{ vault_backup_s3_access_key }}"
      secret_key: "{{ vault_backup_s3_secret_key }}"
      recipients:
        - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      keep_daily: 14
      keep_weekly: 8
      keep_monthly: 24

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
kept:
  description: Every backup that stays, with the retention rules that keep it (in check mode, after the planned run).
  returned: always
  type: dict
  sample:
    app_20260220T051228Z.dump: [newest_good, keep_last, keep_daily, keep_weekly, keep_monthly]
    app_20260131T023000Z.dump: [keep_monthly]
offsite:
  description: What the off-site step did (or would do in check mode).
  returned: when O(offsite) is set and the backup succeeded
  type: dict
  contains:
    uploaded:
      description: Names of the backups encrypted and uploaded (newest first).
      type: list
      elements: str
    uploaded_bytes:
      description: Encrypted bytes sent.
      type: int
    remote_deleted:
      description: Backups deleted from the bucket by its retention.
      type: list
      elements: str
    remote_kept:
      description: Backups in the bucket that stay, with the rules that keep them.
      type: dict
  sample:
    uploaded: [app_20260220T051228Z.dump]
    uploaded_bytes: 1048850
    remote_deleted: []
    remote_kept: {app_20260220T051228Z.dump: [newest_good, keep_daily]}
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

from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite import run_sync
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_params import offsite_argument_spec
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
        "keep_daily": {"type": "int"},
        "keep_weekly": {"type": "int"},
        "keep_monthly": {"type": "int"},
        "verify": {"type": "bool", "default": True},
        "row_counts": {"type": "bool", "default": True},
        "globals": {"type": "bool", "default": True},
    }
    spec.update(postgres_connection_spec())
    spec["offsite"] = {"type": "dict", "options": offsite_argument_spec()}
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
    if module.params["offsite"]:
        offsite = {**module.params["offsite"], "database": params["database"], "backup_dir": params["backup_dir"]}
        try:
            result["offsite"] = run_sync(offsite, check_mode=module.check_mode)
        except PgBackupError as exc:
            what = "would be written" if module.check_mode else "is complete and kept"
            module.fail_json(msg=f"backup {result['path']} {what}, but its off-site copy failed: {exc}", **result)
        if module.check_mode:
            result["offsite"]["uploaded"].insert(0, result["path"].rsplit("/", 1)[-1])
    after = result.get("backups_after")
    if after is None:
        pruned = {path.rsplit("/", 1)[-1] for path in result["pruned"]}
        after = [result["path"].rsplit("/", 1)[-1]] + [n for n in result["backups_before"] if n not in pruned]
    result["diff"] = {"before": {"backups": result["backups_before"]}, "after": {"backups": after}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
