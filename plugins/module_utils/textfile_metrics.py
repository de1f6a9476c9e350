# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metrics files for node exporter's textfile collector (standard library only).

``render`` checks metric families (names, label names, values) and turns them into the text exposition format;
``write`` puts the text in place with ``file_primitives.atomic_write``, whose temporary name never ends in
``.prom``, so node exporter never reads a half-written file. The stackops.platform.textfile_metric module and the
backup cores share them.
"""

from __future__ import annotations

import math
import os
import re

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import atomic_write

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("gauge", "counter", "untyped")


class TextfileError(Exception):
    """Bad metrics or a file that cannot be written; the message names the bad value.

    ``reason`` is the operating system's words when a write failed (None otherwise), for callers that word their
    own message.
    """

    def __init__(self, msg, reason=None):
        super().__init__(msg)
        self.reason = reason


def escape_label_value(value):
    """Label value escaping of the Prometheus text exposition format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(name, value):
    if isinstance(value, bool):
        raise TextfileError(f"metric {name}: value {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TextfileError(f"metric {name}: value {value!r} is not a number") from None
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def render(families):
    """The exposition text of ``families``: dicts of name, help, type (gauge), labels ({}), value.

    Raises TextfileError naming the first bad name, label or value, or a name given twice.
    """
    lines = []
    seen = set()
    for family in families:
        name = family.get("name")
        if not isinstance(name, str) or not METRIC_NAME.match(name):
            raise TextfileError(f"metric name {name!r} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        if name in seen:
            raise TextfileError(f"metric {name} is given twice: give each metric once, with its labels")
        seen.add(name)
        kind = family.get("type") or "gauge"
        if kind not in TYPES:
            raise TextfileError(f"metric {name}: type {kind!r} is not one of {', '.join(TYPES)}")
        help_text = str(family.get("help") or "").replace("\\", "\\\\").replace("\n", "\\n").strip()
        if not help_text:
            raise TextfileError(f"metric {name}: give a help text (node exporter needs the same HELP in every file)")
        labels = family.get("labels") or {}
        if not isinstance(labels, dict):
            raise TextfileError(f"metric {name}: labels {labels!r} must be a dict of label names to values")
        for label in labels:
            if not isinstance(label, str) or not LABEL_NAME.match(label) or label.startswith("__"):
                raise TextfileError(f"metric {name}: label name {label!r} is not usable ([a-zA-Z_][a-zA-Z0-9_]*)")
        text = ",".join(f'{key}="{escape_label_value(str(value))}"' for key, value in labels.items())
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        sample = f"{name}{{{text}}}" if text else name
        lines.append(f"{sample} {_value(name, family.get('value'))}")
    if not lines:
        raise TextfileError("no metrics given: give at least one")
    return "\n".join(lines) + "\n"


def check_path(path):
    """``path`` made absolute; raise TextfileError unless it ends in .prom (node exporter reads nothing else)."""
    if not path.endswith(".prom") or os.path.basename(path) == ".prom":
        raise TextfileError(f"path {path!r} must name a file ending in .prom (node exporter reads only those)")
    return os.path.abspath(path)


def write(path, text, mode=0o644, directory_mode=None):
    """Write ``text`` to ``path`` atomically; create its directory with ``directory_mode`` when missing.

    Returns True when the directory was created.
    """
    directory = os.path.dirname(path)
    created = False
    try:
        if os.path.lexists(directory) and not os.path.isdir(directory):
            raise TextfileError(f"{directory} exists but is not a directory")
        if not os.path.isdir(directory):
            if directory_mode is None:
                raise TextfileError(f"directory {directory} does not exist (give directory_mode to create it)")
            os.makedirs(directory, exist_ok=True)
            # makedirs applies the umask; the mode asked for is what readers and writers rely on.
            os.chmod(directory, directory_mode)
            created = True
        atomic_write(path, text, mode=mode)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TextfileError(f"cannot write {path}: {reason}", reason=reason) from None
    return created
