# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bucket's layout: object names of a remote backup and the listing of the backups in a prefix.

Standard library only. ``<prefix>/<database>/<name>.age`` (or ``.tar.age``), companions
``<name>.<something>.age`` (the globals file), ``<name>.manifest.json.age`` (uploaded last: a remote backup
is complete with it and its data).
"""

from __future__ import annotations

from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_params import OffsiteError
from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import S3Error

WORK_SUFFIX = ".offsite.partial"  # work files of a download or upload, beside their destination


def remote_dir(params):
    return "/".join(part for part in (params["prefix"], params["database"]) if part) + "/"


def data_suffix(fmt):
    return ".tar.age" if fmt == "directory" else ".age"


def list_remote(client, params):
    """Remote backups, newest first: complete (manifest and data) are good, the rest are not."""
    base = remote_dir(params)
    found = {}
    try:
        objects = client.list(base)
    except S3Error as exc:
        raise OffsiteError(f"cannot list off-site backups in {params['bucket']}/{base}: {exc}") from None
    for obj in objects:
        rest = obj["key"][len(base) :]
        if "/" in rest or not rest.endswith(".age"):
            continue
        plain = rest[: -len(".age")]
        name = plain[: -len(".tar")] if plain.endswith(".tar") else plain
        head = name
        role = "data"
        if head.endswith(core.MANIFEST_SUFFIX):
            head, role = head[: -len(core.MANIFEST_SUFFIX)], "manifest"
        parsed = core.parse_backup_name(params["database"], head)
        if not parsed:
            # <name>.<companion>: strip one extension at a time until a backup name remains.
            stem = head
            while "." in stem and not parsed:
                stem = stem.rsplit(".", 1)[0]
                parsed = core.parse_backup_name(params["database"], stem)
            if not parsed:
                continue
            head, role = stem, "companion"
        entry = found.setdefault(
            head,
            {
                "name": head,
                "timestamp": parsed[0],
                "format": parsed[1],
                "data": None,
                "manifest": None,
                "companions": [],
            },
        )
        if role == "companion":
            entry["companions"].append(obj["key"])
        elif role == "manifest":
            entry["manifest"] = obj["key"]
        elif rest == head + data_suffix(parsed[1]):
            entry["data"] = obj["key"]
    backups = list(found.values())
    for item in backups:
        item["good"] = bool(item["data"] and item["manifest"])
    backups.sort(key=lambda item: (item["timestamp"], item["name"]), reverse=True)
    return backups


def object_keys(remote):
    """Keys of one remote backup, manifest first (deleting it first makes the rest incomplete at once)."""
    keys = [remote["manifest"], remote["data"], *remote["companions"]]
    return [key for key in keys if key]
