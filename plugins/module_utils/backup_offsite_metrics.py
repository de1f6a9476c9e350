# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""State and textfile metrics of the off-site sync.

The sync runs as postgres inside the backup unit's sandbox and records its outcome in
``<backup_dir>/<database>/.offsite-state.json``; the unit's ExecStopPost (root, outside the sandbox)
renders ``stackops_pg_backup_offsite_<database>.prom`` for node exporter's textfile collector from it.
"""

from __future__ import annotations

import os

from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import atomic_write_json
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_metrics import (
    escape_label_value,
    write_textfile,
)

STATE_FILE = ".offsite-state.json"
METRICS_PREFIX = "stackops_pg_backup_offsite"
METRIC_HELP = {
    "last_success_timestamp_seconds": "Unix time of the last off-site sync that uploaded and verified every copy.",
    "last_run_success": "1 if the last off-site sync succeeded, else 0.",
    "last_run_timestamp_seconds": "Unix time the last off-site sync finished, successful or not.",
    "last_duration_seconds": "Seconds the last off-site sync took (encrypt, upload, verify, remote retention).",
    "last_uploaded_bytes": "Encrypted bytes the last off-site sync uploaded.",
    "remote_count": "Complete encrypted backups in the bucket after the last successful sync.",
}


def state_path(params):
    return os.path.join(params["backup_dir"], params["database"], STATE_FILE)


def read_state(params):
    return core.read_manifest(state_path(params)) or {}


def record_run(params, success, result=None, error=None, now=None):
    """Remember the outcome for the metrics (written later by ExecStopPost as root)."""
    state = read_state(params)
    moment = (now or core.utc_now()).timestamp()
    state["last_run_timestamp_seconds"] = moment
    state["last_run_success"] = 1 if success else 0
    state["error"] = None if success else str(error)
    if success:
        state["last_success_timestamp_seconds"] = moment
        state["last_duration_seconds"] = (result or {}).get("duration", 0)
        state["last_uploaded_bytes"] = (result or {}).get("uploaded_bytes", 0)
        state["remote_count"] = (result or {}).get("remote_count", 0)
    atomic_write_json(state_path(params), state)
    return state


def render_metrics(database, state):
    labels = f'{{database="{escape_label_value(database)}"}}'
    lines = []
    for key, help_text in METRIC_HELP.items():
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = f"{METRICS_PREFIX}_{key}"
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{labels} {value!r}"])
    return "\n".join(lines) + "\n"


def write_metrics(metrics_dir, params):
    """Write ``<metrics_dir>/stackops_pg_backup_offsite_<database>.prom`` atomically from the state file."""
    name = f"{METRICS_PREFIX}_{params['database']}.prom"
    text = render_metrics(params["database"], read_state(params))
    return write_textfile(metrics_dir, name, text, "off-site metrics file")
