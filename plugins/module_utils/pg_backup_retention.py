# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup retention: which backups go, and deleting one so an interruption never leaves a half backup.

Standard library only. The rules themselves (keep_last, keep_days, keep_daily/weekly/monthly GFS) are
backup_retention's; this file applies them to the listed local backups. The newest backup and any
protected name are never selected.
"""

from __future__ import annotations

import os

from ansible_collections.stackops.platform.plugins.module_utils import backup_retention
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import fsync_dir, remove_path
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    PgBackupError,
    globals_name,
    parse_timestamp,
    utc_now,
)


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
    remove_path(globals_name(backup["path"]))
    fsync_dir(db_dir)
    remove_path(doomed)
