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

Split by concern: ``backup_offsite_params`` (options, credentials, client), ``backup_offsite_remote`` (the
bucket's layout and listing), ``backup_age`` (encryption), ``backup_s3`` (the S3 client),
``backup_offsite_metrics`` (state file and textfile metrics), ``backup_offsite_fetch`` (download, check,
decrypt for a restore). This file: upload, sync, remote retention, the unit's command line.

``sync`` uploads the local backups the remote GFS policy would keep and that the bucket lacks,
then applies that policy to the bucket. A failed upload removes that backup's objects from the
bucket, records the failure for the metrics and never touches a local backup.

The backup unit runs ``python3 -m ansible_collections.stackops.platform.plugins.module_utils.backup_offsite
--config /etc/stackops/pg_offsite-<db>.json`` after the backup (the role installs the module_utils under
/usr/local/lib/stackops), and with ``--write-metrics DIR`` from ExecStopPost.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time

from ansible_collections.stackops.platform.plugins.module_utils import backup_retention
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core
from ansible_collections.stackops.platform.plugins.module_utils.backup_age import encrypt
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_metrics import record_run, write_metrics
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_params import (
    OffsiteError,
    check_offsite_params,
    make_client,
    policy_of,
)
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_remote import (
    WORK_SUFFIX,
    data_suffix,
    list_remote,
    object_keys,
    remote_dir,
)
from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import META_SHA256, S3Error
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import HolderLock
from ansible_collections.stackops.platform.plugins.module_utils.pg_cli import unit_main

LOCK_FILE = ".offsite.lock"
WORK_PREFIX = ".offsite-work-"  # a private directory per sync; never matched by pg_backup's stale cleanup


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


def metrics_from_config(params, metrics_dir):
    """The unit's ExecStopPost: the off-site metrics file from the state the sync recorded."""
    return {"metrics_path": write_metrics(metrics_dir, check_offsite_params(params))}


def main(argv=None):
    return unit_main(
        argv,
        tool="pg_backup offsite",
        what="off-site sync",
        description="Encrypted off-site copy of stackops pg_backup backups.",
        metrics_file="stackops_pg_backup_offsite_<database>.prom",
        run=run_sync,
        check=lambda params: run_sync(params, check_mode=True),
        write_metrics=metrics_from_config,
        run_result=False,
    )


if __name__ == "__main__":
    raise SystemExit(main())
