# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup metrics for node exporter's textfile collector (standard library only).

``write_backup_metrics`` writes ``<dir>/stackops_pg_backup_<database>.prom`` from the backups on disk;
``render_gauges`` and ``write_textfile`` are the textfile format and the atomic write the restore drill
metrics use too.
"""

from __future__ import annotations

import contextlib
import datetime
import os

from ansible_collections.stackops.platform.plugins.module_utils import textfile_metrics
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import (
    PgBackupError,
    list_backups,
    parse_timestamp,
    read_manifest,
    utc_now,
    validate_database_name,
)
from ansible_collections.stackops.platform.plugins.module_utils.textfile_metrics import escape_label_value

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


def render_gauges(prefix, help_table, labels, values):
    """Text exposition format: one gauge family per value present, in ``help_table`` order."""
    text = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in labels.items())
    lines = []
    for key, help_text in help_table.items():
        if key not in values:
            continue
        name = f"{prefix}_{key}"
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{{{text}}} {values[key]!r}")
    return "\n".join(lines) + "\n"


def render_metrics(database, values):
    """Backup metrics of one database, labelled with the database."""
    return render_gauges(METRICS_PREFIX, METRIC_HELP, {"database": database}, values)


def write_textfile(metrics_dir, name, text, what):
    """Write ``<metrics_dir>/<name>`` atomically (0644); return its path. ``what`` names it in errors.

    textfile_metrics.write does it: the temporary file does not end in .prom, so node exporter never reads a
    half-written file. A missing directory is created 0755: the units run with UMask=0077, and node exporter must
    still be able to enter it.
    """
    final = os.path.join(metrics_dir, name)
    if os.path.lexists(metrics_dir) and not os.path.isdir(metrics_dir):
        raise PgBackupError(f"metrics directory {metrics_dir} exists but is not a directory")
    try:
        textfile_metrics.write(final, text, mode=0o644, directory_mode=0o755)
    except textfile_metrics.TextfileError as exc:
        raise PgBackupError(f"cannot write {what} {final} (directory {metrics_dir}): {exc.reason or exc}") from None
    return final


def write_backup_metrics(metrics_dir, backup_dir, database, run_success, now=None):
    """Write ``<metrics_dir>/stackops_pg_backup_<database>.prom`` atomically; return its path."""
    name = metrics_file_name(database)
    values = backup_metrics(os.path.join(backup_dir, database), database, run_success, now=now)
    return write_textfile(metrics_dir, name, render_metrics(database, values), "backup metrics")


def run_result_from(option, environ=None, what="backup"):
    """True for success. ``--run-result`` wins; else systemd's SERVICE_RESULT (set for ExecStopPost)."""
    if option:
        return option == "success"
    result = (environ if environ is not None else os.environ).get("SERVICE_RESULT")
    if not result:
        raise PgBackupError(
            f"--write-metrics needs the result of the {what} run: pass --run-result success|failure "
            f"or run it as the {what} unit's ExecStopPost (systemd sets SERVICE_RESULT)"
        )
    return result == "success"
