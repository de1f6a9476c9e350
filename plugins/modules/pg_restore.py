#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_restore
short_description: Restore a PostgreSQL backup made by pg_backup without ever losing the live database
version_added: 0.1.0
description:
  - Checks the backup against the SHA-256 recorded in its manifest first and refuses a mismatch, naming the file.
  - Restores into a scratch database C(<target>_restore_<timestamp>), checks it (C(pg_restore) exit code,
    at least as many tables as the backup holds, optional O(sanity_query)), and only then puts it in place by
    renaming. A failed restore drops the scratch database and leaves the live database untouched.
  - With O(mode=replace) the live database is renamed to C(<target>_pre_restore_<timestamp>) and kept unless
    O(drop_previous=true). If renaming the scratch database fails, the previous database is renamed back.
  - Uses the C(psql) and C(pg_restore) programs; no Python database driver is needed on the target.
author:
  - stackops platform contributors (@stackops)
extends_documentation_fragment:
  - stackops.platform.postgres_connection
  - stackops.platform.backup_offsite
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Verifies the checksum, inspects the target and reports the action; changes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Shows which backup the target database holds before and after, and the kept previous database.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  source:
    description:
      - Path of a backup written by M(stackops.platform.pg_backup) (its C(.manifest.json) must be beside it),
        or V(latest) for the newest complete backup of O(database) in O(backup_dir).
      - With O(offsite), V(latest) (the newest complete copy in the bucket) or the name of a backup there,
        for example V(app_20260220T051228Z.dump).
    type: str
    default: latest
  offsite_identity:
    description:
      - With O(offsite), the age identity (C(AGE-SECRET-KEY-1...)) that decrypts the copies. Vault it.
      - Written to a 0600 file in a private temporary directory for C(age -i), never put on a command line,
        never logged, removed afterwards.
    type: str
    version_added: 0.2.0
  offsite_identity_file:
    description: With O(offsite), a file on the host holding the age identity (instead of O(offsite_identity)).
    type: path
    version_added: 0.2.0
  download_dir:
    description:
      - With O(offsite), the directory the copy is downloaded to and decrypted in (a private temporary directory
        below it, removed afterwards). Needs room for the backup twice (encrypted and plain).
      - Default O(backup_dir), else the system temporary directory.
    type: path
    version_added: 0.2.0
  database:
    description:
      - Database whose backups O(source=latest) looks at (C(<backup_dir>/<database>/)), and the default O(target).
    type: str
    required: true
  target:
    description: Database to restore into. Defaults to O(database).
    type: str
  backup_dir:
    description: Directory given to M(stackops.platform.pg_backup); needed with O(source=latest).
    type: path
  mode:
    description:
      - V(new) restores into a database that does not exist (created) or is empty; a non-empty one is refused.
      - V(replace) restores next to the existing database and swaps the names when the restore is good.
    type: str
    choices: [new, replace]
    default: new
  drop_previous:
    description: With O(mode=replace), drop the previous database after a successful swap instead of keeping it.
    type: bool
    default: false
  jobs:
    description: Parallel C(pg_restore) jobs.
    type: int
    default: 1
  no_owner:
    description: Pass C(--no-owner) to C(pg_restore) (objects then belong to O(user)).
    type: bool
    default: false
  sanity_query:
    description:
      - SQL run in the restored copy before it is swapped in; its first value must be true, non-zero and non-empty,
        otherwise the restore is abandoned.
    type: str
  maintenance_db:
    description: Database to connect to for C(CREATE), C(ALTER) and C(DROP DATABASE).
    type: str
    default: postgres
  pg_restore_path:
    description: Full path of the C(pg_restore) program; overrides O(bin_dir) for C(pg_restore) only.
    type: path
  apply_globals:
    description:
      - Before restoring the database, apply the backup's C(pg_dumpall --globals-only) file (roles, memberships,
        role settings, tablespaces), checked against the sha256 in the manifest. This rebuilds a new host.
      - Only for an empty cluster. The run fails, changing nothing, when a role the file creates already exists
        (other than the connecting user, whose C(CREATE ROLE) is skipped) or the backup stored no globals.
      - Applied in one transaction unless the file creates tablespaces (their directories must exist).
      - Role passwords are in the file only when the backup ran as a superuser (manifest C(globals.role_passwords)).
    type: bool
    default: false
notes:
  - With O(offsite), the copy is downloaded, its sha256 compared with the one recorded at upload, decrypted
    (age authenticates every chunk) and compared with the sha256 in its manifest before anything in the
    database changes; check mode does all of that too, then stops.
  - A restore always reports C(changed) (it is not idempotent); run it deliberately.
  - Database-level settings (C(ALTER DATABASE ... SET)) and grants on the database are not copied to the
    restored database; the previous database keeps them.
  - O(user) needs C(CREATEDB) and must own the target (or be a superuser) for O(mode=replace).
seealso:
  - module: stackops.platform.pg_backup
  - name: pg_restore
    description: PostgreSQL documentation of pg_restore.
    link: https://www.postgresql.org/docs/current/app-pgrestore.html
"""

EXAMPLES = r"""
- name: Replace app with its newest backup, keeping the current one as app_pre_restore_<ts>
  stackops.platform.pg_restore:
    database: app
    backup_dir: /var/backups/postgresql
    source: latest
    mode: replace
    jobs: 4
    sanity_query: SELECT count(*) > 0 FROM users
  register: __restore

- name: Restore one backup into a new database for inspection
  stackops.platform.pg_restore:
    database: app
    target: app_inspect
    source: /var/backups/postgresql/app/app_20260220T051228Z.dump

- name: Rebuild app on a new host from the newest encrypted copy in the bucket
  stackops.platform.pg_restore:
    database: app
    source: latest
    download_dir: /var/backups/postgresql
    offsite:
      endpoint: https://s3.eu-central-1.amazonaws.com
      region: eu-central-1
      bucket: acme-db-backups
      prefix: prod
      access_key: "{{ vault_backup_s3_access_key }}"
      secret_key: "{{ vault_backup_s3_secret_key }}"
    offsite_identity: "{{ vault_backup_age_identity }}"
"""

RETURN = r"""
offsite_backup:
  description: Name of the off-site backup that was downloaded, verified and restored.
  returned: when O(offsite) is set
  type: str
  sample: app_20260220T051228Z.dump
action:
  description: V(create) (new database), V(restore_into_empty) (existing empty database) or V(replace) (swap).
  returned: always
  type: str
  sample: replace
target:
  description: Database restored into.
  returned: always
  type: str
  sample: app
source:
  description: Path of the backup restored.
  returned: always
  type: str
  sample: /var/backups/postgresql/app/app_20260220T051228Z.dump
manifest_path:
  description: Path of the manifest the checksum was compared with.
  returned: always
  type: str
  sample: /var/backups/postgresql/app/app_20260220T051228Z.dump.manifest.json
sha256:
  description: Verified SHA-256 of the backup (overall digest for the directory format).
  returned: always
  type: str
  sample: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
format:
  description: Format of the backup.
  returned: always
  type: str
  sample: custom
scratch:
  description: Name of the scratch database used (or that would be used).
  returned: always
  type: str
  sample: app_restore_20260220051228
previous:
  description: Name under which the previous database is kept; null when there was none or it was dropped.
  returned: always
  type: str
  sample: app_pre_restore_20260220051228
dropped_previous:
  description: Whether the previous database was dropped (O(drop_previous)).
  returned: success and not check mode
  type: bool
  sample: false
tables_expected:
  description: Number of tables in the backup.
  returned: always
  type: int
  sample: 4
globals_path:
  description: The globals file applied (or that would be applied in check mode); null without O(apply_globals).
  returned: always
  type: str
  sample: /var/backups/postgresql/app/app_20260220T051228Z.dump.globals.sql
roles_created:
  description: Roles the globals file creates (in check mode, would create); empty without O(apply_globals).
  returned: always
  type: list
  elements: str
  sample: [app, app_readonly]
tables_restored:
  description: Number of tables found in the restored database (null in check mode).
  returned: always
  type: int
  sample: 4
duration:
  description: Seconds the restore took.
  returned: always
  type: float
  sample: 30.2
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_fetch import fetched
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_params import offsite_argument_spec
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_remote import remote_dir
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError
from ansible_collections.stackops.platform.plugins.module_utils.pg_client import postgres_connection_spec
from ansible_collections.stackops.platform.plugins.module_utils.pg_restore_core import (
    RESTORE_OPTIONS,
    run_restore,
)


def argument_spec():
    spec = {
        "source": {"type": "str", "default": "latest"},
        "database": {"type": "str", "required": True},
        "target": {"type": "str"},
        "backup_dir": {"type": "path"},
        "mode": {"type": "str", "choices": ["new", "replace"], "default": "new"},
        "drop_previous": {"type": "bool", "default": False},
        "jobs": {"type": "int", "default": 1},
        "no_owner": {"type": "bool", "default": False},
        "sanity_query": {"type": "str"},
        "maintenance_db": {"type": "str", "default": "postgres"},
        "pg_restore_path": {"type": "path"},
        "apply_globals": {"type": "bool", "default": False},
    }
    spec.update(postgres_connection_spec())
    spec["offsite"] = {"type": "dict", "options": offsite_argument_spec()}
    spec["offsite_identity"] = {"type": "str", "no_log": True}
    spec["offsite_identity_file"] = {"type": "path"}
    spec["download_dir"] = {"type": "path"}
    return spec


def restore_offsite(module, params):
    """Download, verify and decrypt the remote copy into a private directory, then restore it from there."""
    identity = module.params["offsite_identity"]
    if not identity and not module.params["offsite_identity_file"]:
        module.fail_json(msg="offsite needs offsite_identity (vaulted age identity) or offsite_identity_file")
    remote = {
        **module.params["offsite"],
        "database": params["database"],
        "backup_dir": params["backup_dir"],
        "identity_file": module.params["offsite_identity_file"],
    }
    work_root = module.params["download_dir"] or params["backup_dir"]
    with fetched(remote, params["source"], work_root=work_root, identity=identity) as (path, _manifest):
        result = run_restore({**params, "source": path}, check_mode=module.check_mode)
    result["offsite_backup"] = path.rsplit("/", 1)[-1]
    # The plaintext copy is gone: report where the backup came from instead.
    folder = remote_dir({"prefix": (remote["prefix"] or "").strip("/"), "database": params["database"]})
    result["source"] = f"{remote['bucket']}/{folder}{result['offsite_backup']}"
    result["manifest_path"] = result["source"] + ".manifest.json"
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = {key: module.params[key] for key in RESTORE_OPTIONS}
    try:
        if module.params["offsite"]:
            result = restore_offsite(module, params)
        else:
            result = run_restore(params, check_mode=module.check_mode)
    except PgBackupError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        target = params["target"] or params["database"]
        module.fail_json(msg=f"restore of {params['source']} into {target} failed: {exc}")
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    result["diff"] = {
        "before": {"database": result["target"], "exists": result["action"] != "create"},
        "after": {"database": result["target"], "restored_from": result["source"], "previous": result["previous"]},
    }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
