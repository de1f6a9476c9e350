# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted off-site copies of pg_backup backups in an S3-compatible bucket (standard library + age).

Every object is encrypted on the database host with ``age`` to the inventory's public recipients
before it leaves; the bucket never holds plaintext. The private identity is needed only to restore
and travels through a 0600 file, never a command line. Layout in the bucket::

    <prefix>/<database>/<name>.age                 the dump (custom format)
    <prefix>/<database>/<name>.tar.age             the dump directory as a tar (directory format)
    <prefix>/<database>/<name>.<companion>.age     files beside the backup named <name>.* (globals)
    <prefix>/<database>/<name>.manifest.json.age   uploaded last: a remote backup is complete with it

Each object carries ``x-amz-meta-sha256`` (of the ciphertext); after each upload size, sha256 and
the server's MD5 ETag are compared with what was sent (``verify=download`` also re-reads the
object). A download is checked against that sha256, age authenticates every chunk while
decrypting, and the plaintext is compared with the manifest's sha256 before a restore may begin.

Split by concern: ``backup_age`` (encryption), ``backup_s3`` (the S3 client), ``backup_offsite_metrics``
(state file and textfile metrics), ``backup_offsite_fetch`` (download, check, decrypt for a restore).

``sync`` uploads the local backups the remote GFS policy would keep and that the bucket lacks,
then applies that policy to the bucket. A failed upload removes that backup's objects from the
bucket, records the failure for the metrics and never touches a local backup.

The backup unit runs ``python3 -m ansible_collections.stackops.platform.plugins.module_utils.backup_offsite
--config /etc/stackops/pg_offsite-<db>.json`` after the backup (the role installs the module_utils under
/usr/local/lib/stackops), and with ``--write-metrics DIR`` from ExecStopPost.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time

from ansible_collections.stackops.platform.plugins.module_utils import backup_retention
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core
from ansible_collections.stackops.platform.plugins.module_utils.backup_age import encrypt
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_metrics import record_run, write_metrics
from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import META_SHA256, S3Client, S3Error
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import HolderLock
from ansible_collections.stackops.platform.plugins.module_utils.pg_cli import terminate_on_signal

LOCK_FILE = ".offsite.lock"
WORK_PREFIX = ".offsite-work-"  # a private directory per sync; never matched by pg_backup's stale cleanup
WORK_SUFFIX = ".offsite.partial"
VERIFY_MODES = ("head", "download")

OFFSITE_OPTIONS = {
    "database": (str, None),
    "backup_dir": (str, None),
    "endpoint": (str, None),
    "region": (str, "us-east-1"),
    "bucket": (str, None),
    "prefix": (str, ""),
    "addressing_style": (str, "path"),
    "ca_file": (str, None),
    "access_key": (str, None),
    "secret_key": (str, None),
    "session_token": (str, None),
    "credentials_file": (str, None),
    "recipients": (list, None),
    "identity_file": (str, None),
    "age_path": (str, None),
    "verify": (str, "head"),
    "part_size_mb": (int, 64),
    "timeout": (int, 60),
    "attempts": (int, 3),
    **{rule: (int, None) for rule in backup_retention.COUNT_RULES},
}
SECRET_OPTIONS = ("access_key", "secret_key", "session_token")


def offsite_argument_spec():
    """Suboptions of the modules' ``offsite`` option (see the offsite doc fragment); database and
    backup_dir come from the module's own options."""
    spec = {
        "endpoint": {"type": "str", "required": True},
        "region": {"type": "str", "default": "us-east-1"},
        "bucket": {"type": "str", "required": True},
        "prefix": {"type": "str", "default": ""},
        "addressing_style": {"type": "str", "choices": ["path", "virtual"], "default": "path"},
        "ca_file": {"type": "path"},
        "access_key": {"type": "str", "no_log": True},
        "secret_key": {"type": "str", "no_log": True},
        "session_token": {"type": "str", "no_log": True},
        "credentials_file": {"type": "path"},
        "recipients": {"type": "list", "elements": "str"},
        "age_path": {"type": "path"},
        "verify": {"type": "str", "choices": list(VERIFY_MODES), "default": "head"},
        "part_size_mb": {"type": "int", "default": 64},
        "timeout": {"type": "int", "default": 60},
        "attempts": {"type": "int", "default": 3},
    }
    spec.update({rule: {"type": "int"} for rule in backup_retention.COUNT_RULES})
    return spec


class OffsiteError(core.PgBackupError):
    """An off-site step failed; the message says which object and why."""


# --------------------------------------------------------------------------- parameters


def check_offsite_params(params, need=None):
    """Fill defaults and check values. ``need``: "upload" (recipients) or "download" (identity)."""
    unknown = sorted(set(params) - set(OFFSITE_OPTIONS))
    if unknown:
        raise OffsiteError(f"unknown off-site option(s) {', '.join(unknown)}: valid are {', '.join(OFFSITE_OPTIONS)}")
    result = {}
    for key, (kind, default) in OFFSITE_OPTIONS.items():
        value = params.get(key)
        if value is None:
            value = default
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise OffsiteError(f"off-site {key} must be an integer, got {value!r}") from None
        elif kind is list and not isinstance(value, list):
            raise OffsiteError(f"off-site {key} must be a list, got {value!r}")
        elif kind is str:
            value = str(value)
        result[key] = value
    core.validate_database_name(result["database"])
    if not result["backup_dir"] and need != "download":
        raise OffsiteError("off-site backup_dir is required: the directory pg_backup writes to")
    if not result["endpoint"] or not result["endpoint"].startswith(("http://", "https://")):
        raise OffsiteError(f"off-site endpoint {result['endpoint']!r} must be an http:// or https:// URL")
    if not result["bucket"]:
        raise OffsiteError("off-site bucket is required: the S3 bucket that receives the encrypted copies")
    if result["addressing_style"] not in ("path", "virtual"):
        raise OffsiteError(f"off-site addressing_style {result['addressing_style']!r} must be path or virtual")
    if result["verify"] not in VERIFY_MODES:
        raise OffsiteError(f"off-site verify {result['verify']!r} must be one of {', '.join(VERIFY_MODES)}")
    if result["part_size_mb"] < 5:
        raise OffsiteError(f"off-site part_size_mb must be 5 or more (S3's minimum part), got {result['part_size_mb']}")
    for key in ("timeout", "attempts"):
        if result[key] < 1:
            raise OffsiteError(f"off-site {key} must be 1 or more, got {result[key]}")
    result["prefix"] = result["prefix"].strip("/")
    try:
        backup_retention.check_policy({rule: result[rule] for rule in backup_retention.COUNT_RULES})
    except backup_retention.RetentionError as exc:
        raise OffsiteError(f"off-site {exc}") from None
    if need == "upload":
        recipients = result["recipients"] or []
        if not recipients:
            raise OffsiteError("off-site recipients is empty: list the age public keys (age1...) that may decrypt")
        for recipient in recipients:
            if not isinstance(recipient, str) or not recipient.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")):
                raise OffsiteError(f"off-site recipient {recipient!r} is not an age public key (age1...)")
    if need == "download" and not result["identity_file"]:
        raise OffsiteError("restoring an off-site backup needs identity_file: the vaulted age identity in a 0600 file")
    return result


def load_credentials(params):
    """access_key / secret_key (/ session_token) from the options or the 0600/0640 credentials file."""
    creds = {key: params.get(key) for key in SECRET_OPTIONS}
    if params.get("credentials_file"):
        path = params["credentials_file"]
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise OffsiteError(f"cannot read off-site credentials_file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise OffsiteError(f"off-site credentials_file {path} must hold a JSON object")
        for key in SECRET_OPTIONS:
            creds[key] = creds[key] or data.get(key)
    if not creds["access_key"] or not creds["secret_key"]:
        raise OffsiteError("off-site access_key and secret_key are required (options or credentials_file)")
    return creds


def make_client(params):
    try:
        return S3Client(
            params["endpoint"],
            params["region"],
            params["bucket"],
            load_credentials(params),
            addressing_style=params["addressing_style"],
            ca_file=params["ca_file"] or None,  # the role writes "" for the system store
            timeout=params["timeout"],
            attempts=params["attempts"],
            part_size=params["part_size_mb"] * 1024 * 1024,
        )
    except S3Error as exc:
        raise OffsiteError(str(exc)) from None


def policy_of(params):
    return {rule: params[rule] for rule in backup_retention.COUNT_RULES}


# --------------------------------------------------------------------------- names


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


# --------------------------------------------------------------------------- upload


def _sha256_file(path):
    sha, size = core.hash_file(path)
    return sha, size


def upload_backup(client, params, backup, work_dir):
    """Encrypt and upload one local backup (data, companions, manifest last) and verify each object.

    On any failure the objects of this backup already in the bucket are deleted and OffsiteError is
    raised; the local backup is never touched. Returns the encrypted bytes sent.
    """
    base = remote_dir(params)
    name = backup["name"]
    db_dir = os.path.dirname(backup["path"])
    is_dir = backup["format"] == "directory"
    companions = sorted(
        entry
        for entry in os.listdir(db_dir)
        if entry.startswith(name + ".")
        and entry != core.manifest_name(name)
        and os.path.isfile(os.path.join(db_dir, entry))
    )
    plan = [(backup["path"], base + name + data_suffix(backup["format"]), is_dir)]
    plan.extend((os.path.join(db_dir, entry), base + entry + ".age", False) for entry in companions)
    plan.append((backup["manifest_path"], base + core.manifest_name(name) + ".age", False))
    uploaded = []
    sent_bytes = 0
    try:
        for source, key, source_is_dir in plan:
            work = os.path.join(work_dir, f".{os.path.basename(key)}{WORK_SUFFIX}")
            try:
                encrypt(params, source, work, source_is_dir)
                sha, _size = _sha256_file(work)
                try:
                    sent = client.put_file(key, work, metadata={META_SHA256: sha})
                    uploaded.append(key)
                    if sent["sha256"] != sha:
                        raise OffsiteError(f"{key}: the file changed while it was uploaded")
                    client.verify_object(key, sent)
                    if params["verify"] == "download":
                        got, got_size = download_hash(client, key)
                        if got != sha or got_size != sent["size"]:
                            raise OffsiteError(f"verification of {key} failed: re-downloaded sha256 {got} is not {sha}")
                except S3Error as exc:
                    raise OffsiteError(f"upload of {name} to {params['bucket']}/{key} failed: {exc}") from None
                sent_bytes += sent["size"]
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(work)
    except BaseException:
        for key in reversed(uploaded):
            with contextlib.suppress(S3Error):
                client.delete(key)
        raise
    return sent_bytes


def download_hash(client, key):
    digest = hashlib.sha256()
    size = [0]

    def sink(chunk):
        digest.update(chunk)
        size[0] += len(chunk)

    client.get(key, sink)
    return digest.hexdigest(), size[0]


def sync(params, check_mode=False, now=None):
    """Upload what the bucket lacks (local backups the remote policy keeps), then remote retention."""
    clock = time.monotonic()
    params = check_offsite_params(params, need="upload")
    policy = policy_of(params)
    db_dir = os.path.join(params["backup_dir"], params["database"])
    client = make_client(params)
    local = core.list_backups(db_dir, params["database"])
    remote = list_remote(client, params)
    remote_good = {item["name"] for item in remote if item["good"]}
    combined = {item["name"]: item for item in remote}
    for item in local:
        combined[item["name"]] = {**item, "good": True}
    wanted = backup_retention.select(
        list(combined.values()), policy, now=now, moment=lambda item: core.parse_timestamp(item["timestamp"])
    )
    to_upload = [item for item in local if item["name"] in wanted["keep"] and item["name"] not in remote_good]
    result = {
        "changed": False,
        "bucket": params["bucket"],
        "prefix": remote_dir(params),
        "uploaded": [item["name"] for item in to_upload],
        "uploaded_bytes": 0,
        "remote_deleted": [],
        "remote_kept": {},
    }
    if check_mode:
        # The bucket as the real run will list it: what is there now plus the complete uploads.
        after = [item for item in remote if item["name"] not in result["uploaded"]]
        after.extend({**item, "good": True} for item in to_upload)
        plan = _remote_plan(after, policy, now, protect=set(result["uploaded"]))
        result["remote_deleted"] = [item["name"] for item in plan["delete"]]
        result["remote_kept"] = plan["keep"]
        result["changed"] = bool(result["uploaded"] or result["remote_deleted"])
        return result
    with offsite_lock(db_dir):
        work = tempfile.mkdtemp(prefix=WORK_PREFIX, dir=db_dir)
        try:
            for item in to_upload:
                result["uploaded_bytes"] += upload_backup(client, params, item, work)
                result["changed"] = True
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _apply_remote_retention(client, params, policy, now, result)
    result["duration"] = round(time.monotonic() - clock, 3)
    return result


@contextlib.contextmanager
def offsite_lock(db_dir):
    """One sync per database at a time (a lock file beside the backups' own); clears a killed sync's work dirs.

    A ``file_primitives.HolderLock`` on its own file (``.offsite.lock``), so a sync never blocks a backup
    and a busy sync names its holder.
    """
    os.makedirs(db_dir, mode=0o700, exist_ok=True)

    def busy(info):
        return OffsiteError(f"another off-site sync of {db_dir} is running ({info.holder_text}): try again later")

    with HolderLock(os.path.join(db_dir, LOCK_FILE), busy=busy):
        for entry in os.listdir(db_dir):
            if entry.startswith(WORK_PREFIX):
                shutil.rmtree(os.path.join(db_dir, entry), ignore_errors=True)
        yield


def _apply_remote_retention(client, params, policy, now, result):
    remote = list_remote(client, params)
    missing = [name for name in result["uploaded"] if name not in {r["name"] for r in remote if r["good"]}]
    if missing:
        raise OffsiteError(f"uploaded backups {', '.join(missing)} are not listed as complete in the bucket")
    plan = _remote_plan(remote, policy, now, protect=set(result["uploaded"]))
    for item in plan["delete"]:
        for key in object_keys(item):
            try:
                client.delete(key)
            except S3Error as exc:
                raise OffsiteError(f"remote retention could not delete {key}: {exc}") from None
        result["remote_deleted"].append(item["name"])
        result["changed"] = True
    result["remote_kept"] = plan["keep"]
    result["remote_count"] = sum(1 for item in remote if item["good"]) - len(result["remote_deleted"])


def _remote_plan(remote, policy, now, protect):
    return backup_retention.select(
        remote, policy, now=now, protect=protect, moment=lambda item: core.parse_timestamp(item["timestamp"])
    )


def run_sync(params, check_mode=False):
    """sync() plus the state file the metrics are written from; re-raises a failure after recording it."""
    if check_mode:
        return sync(params, check_mode=True)
    checked = check_offsite_params(params, need="upload")
    try:
        result = sync(params)
    except (core.PgBackupError, OSError) as exc:
        with contextlib.suppress(OSError):  # the sync's own error is the one to report
            record_run(checked, False, error=exc)
        raise
    record_run(checked, True, result)
    return result


# --------------------------------------------------------------------------- script entry point


def main(argv=None):
    parser = argparse.ArgumentParser(description="Encrypted off-site copy of stackops pg_backup backups.")
    parser.add_argument("--config", required=True, help="JSON file with the off-site option names")
    parser.add_argument("--check", action="store_true", help="only report what would be uploaded and deleted")
    parser.add_argument("--write-metrics", metavar="DIR", help="no sync: write the off-site metrics file into DIR")
    args = parser.parse_args(argv)
    # systemd stops with SIGTERM: unwind through the cleanup paths (partial uploads are deleted).
    signal.signal(signal.SIGTERM, terminate_on_signal)
    try:
        with open(args.config, encoding="utf-8") as handle:
            params = json.load(handle)
        if not isinstance(params, dict):
            raise OffsiteError(f"config {args.config} must hold a JSON object of off-site options")
        if args.write_metrics is not None:
            checked = check_offsite_params(params)
            result = {"metrics_path": write_metrics(args.write_metrics, checked)}
        else:
            result = run_sync(params, check_mode=args.check)
    except (OSError, ValueError, core.PgBackupError) as exc:
        sys.stderr.write(f"pg_backup offsite: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
