# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy audit trail: one JSON line per deploy, rollback or switch, appended to ``<deploy root>/audit.jsonl``.

Standard library only (stackops.platform.deploy_audit is a thin wrapper). Appends hold an exclusive lock
(``file_primitives.HolderLock`` on ``.<name>.lock`` beside the log), so lines of two runs never interleave, and
are fsynced before the call returns. A line torn by a crash (no final newline) is closed first, so the next
entry always starts on a line of its own and readers can skip the one broken line.
A successful event can also leave the deploy marker for node exporter (``write_marker``), in the same module call.
"""

from __future__ import annotations

import json
import math
import os
import time

from ansible_collections.stackops.platform.plugins.module_utils import textfile_metrics
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import (
    HolderLock,
    fsync_dir,
    utc_stamp,
)

EVENTS = ("deploy", "rollback", "switch")
RESULTS = ("ok", "failed")
# A failure message longer than this is cut (the log is for reading, the task output has the rest).
MESSAGE_MAX = 2000
LOG_MODE = 0o640
# The deploy marker for node exporter's textfile collector: the same HELP everywhere the metric is written.
MARKER_METRIC = "stackops_deploy_event_timestamp_seconds"
MARKER_HELP = "Unix time of the last deploy, rollback or switch of the app on this host."
# The prometheus role's mode for the textfile directory (group-writable for the metric writers).
MARKER_DIR_MODE = 0o775


class AuditError(Exception):
    """Bad input or an unusable log path, with the message a module reports."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


def _text(value):
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(name, value):
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AuditError(f"{name} {value!r} is not a number of seconds") from None
    if number < 0 or math.isnan(number):
        raise AuditError(f"{name} {value!r} must be 0 or more seconds")
    return round(number, 3)


def _mapping(name, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AuditError(f"{name} must be a dict, got {type(value).__name__}")
    return value


def build_entry(params, now=None):
    """The dict one audit line holds, from the module's parameters; raise AuditError on bad input."""
    event = params.get("event")
    if event not in EVENTS:
        raise AuditError(f"event {event!r} is not one of {', '.join(EVENTS)}")
    result = params.get("result")
    if result not in RESULTS:
        raise AuditError(f"result {result!r} is not one of {', '.join(RESULTS)}")
    app = _text(params.get("app"))
    if not app:
        raise AuditError("app must name the app the event belongs to")
    message = _text(params.get("message"))
    if message and len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 15] + " ...[truncated]"
    entry = {
        "time": now or utc_stamp(),
        "event": event,
        "app": app,
        "host": _text(params.get("host")),
        "release": _text(params.get("release")),
        "previous": _text(params.get("previous")),
        "color": _text(params.get("color")),
        "result": result,
        "duration_s": _number("duration", params.get("duration")),
        "who": _mapping("who", params.get("who")),
        "watch": _mapping("watch", params.get("watch")),
    }
    if message:
        entry["message"] = message
    extra = _mapping("extra", params.get("extra"))
    clash = sorted(set(extra) & set(entry))
    if clash:
        raise AuditError(f"extra must not override the entry's own keys: {', '.join(clash)}")
    entry.update(extra)
    return entry


def render(entry):
    """One line of JSON (sorted keys, no newline inside), ending in a newline."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str) + "\n"


def lock_path(path):
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")


def check_path(path):
    """Absolute log path; raise AuditError when its directory is missing or it is not a regular file."""
    if not path:
        raise AuditError("path (the audit log file) is required")
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise AuditError(f"directory {directory} of the audit log does not exist; deploy a release there first")
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        raise AuditError(f"audit log {path} exists and is not a regular file; move it away")
    return path


def append(path, entry, mode=LOG_MODE, lock_timeout=10.0):
    """Append ``entry`` as one line to ``path`` under the lock, fsynced; return the line written."""
    path = check_path(path)
    line = render(entry).encode("utf-8")

    def busy(info):
        return AuditError(f"audit log {path} is locked by {info.holder_text} after waiting {info.waited:g}s")

    with HolderLock(lock_path(path), lock_timeout, mode=0o600, busy=busy):
        created = not os.path.exists(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), mode)
        try:
            if created:
                os.fchmod(fd, mode)
            size = os.fstat(fd).st_size
            prefix = b""
            if size:
                with open(path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        prefix = b"\n"  # close a line a crash tore, so this entry stays whole
            view = memoryview(prefix + line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(os.path.dirname(path))
    return line.decode("utf-8")


def read_entries(path):
    """Parsed entries of a log (oldest first); lines that are not JSON objects are skipped."""
    entries = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
    except FileNotFoundError:
        return []
    return entries


def marker_path(marker_dir, app):
    return textfile_metrics.check_path(os.path.join(marker_dir, f"stackops_deploy_{app}.prom"))


def marker_text(entry, release=None, now=None):
    """The deploy marker of an entry: the event's labels, the time as the value."""
    labels = {
        "app": entry["app"],
        "event": entry["event"],
        "release": release or entry.get("release") or "unknown",
        "color": entry.get("color") or "unknown",
    }
    value = round(now if now is not None else time.time(), 3)
    return textfile_metrics.render([{"name": MARKER_METRIC, "help": MARKER_HELP, "labels": labels, "value": value}])


def write_marker(marker_dir, entry, release=None, now=None):
    """Write ``<marker_dir>/stackops_deploy_<app>.prom`` atomically; return its path. Raises AuditError."""
    try:
        path = marker_path(marker_dir, entry["app"])
        textfile_metrics.write(path, marker_text(entry, release, now), mode=0o644, directory_mode=MARKER_DIR_MODE)
    except textfile_metrics.TextfileError as exc:
        raise AuditError(f"the deploy marker was not written: {exc}") from None
    return path
