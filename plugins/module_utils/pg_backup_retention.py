# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup retention: which backups go, and deleting one so an interruption never leaves a half backup.

Standard library only. The newest backup and any protected name are never selected.
"""

from __future__ import annotations

import datetime
import os

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import fsync_dir, remove_path
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    globals_name,
    parse_timestamp,
    utc_now,
)


def select_prune(backups, keep_last=None, keep_days=None, now=None, protect=()):
    """Backups to delete. A backup goes only if every configured rule lets it go.

    - no rule set: nothing is pruned;
    - keep_last N keeps the N newest; keep_days D keeps those younger than D days;
    - the newest backup and any name in ``protect`` are never pruned.
    """
    if keep_last is None and keep_days is None:
        return []
    now = now or utc_now()
    ordered = sorted(backups, key=lambda item: (item["timestamp"], item["name"]), reverse=True)
    prune = []
    for index, backup in enumerate(ordered):
        if index == 0 or backup["name"] in protect:
            continue
        if keep_last is not None and index < keep_last:
            continue
        if keep_days is not None:
            age = now - parse_timestamp(backup["timestamp"])
            if age < datetime.timedelta(days=keep_days):
                continue
        prune.append(backup)
    return prune


def delete_backup(backup):
    """Delete a backup so an interruption never leaves something that looks complete."""
    db_dir = os.path.dirname(backup["path"])
    doomed = os.path.join(db_dir, f".{backup['name']}.deleting")
    os.replace(backup["path"], doomed)
    remove_path(backup["manifest_path"])
    remove_path(globals_name(backup["path"]))
    fsync_dir(db_dir)
    remove_path(doomed)
