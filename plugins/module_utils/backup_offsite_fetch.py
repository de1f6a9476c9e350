# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore side of the off-site copies: download, check, decrypt and verify a remote backup.

Nothing is restored from here: ``fetched`` yields a verified plaintext copy in a private temporary
directory for pg_restore and removes it afterwards. Every check runs before the caller may change
anything: the ciphertext sha256 recorded at upload, age's authentication of every chunk, and the
manifest's sha256 of the plaintext.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile

from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core
from ansible_collections.stackops.platform.plugins.module_utils.backup_age import decrypt_file, safe_extract
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_params import (
    OffsiteError,
    check_offsite_params,
    make_client,
)
from ansible_collections.stackops.platform.plugins.module_utils.backup_offsite_remote import (
    WORK_SUFFIX,
    list_remote,
    remote_dir,
)
from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import META_SHA256, S3Error


def fetch_backup(params, source, dest_dir):
    """Download, decrypt and verify a remote backup into ``dest_dir``; change nothing else.

    ``source``: ``latest`` (newest complete remote backup) or a backup name. Returns
    ``(path, manifest)`` of the verified plaintext copy; raises OffsiteError before any restore.
    """
    params = check_offsite_params(params, need="download")
    if not os.path.isfile(params["identity_file"]):
        raise OffsiteError(f"identity_file {params['identity_file']} does not exist")
    client = make_client(params)
    remote = [item for item in list_remote(client, params) if item["good"]]
    if not remote:
        raise OffsiteError(
            f"no complete off-site backup of {params['database']} in {params['bucket']}/{remote_dir(params)}"
        )
    if source == "latest":
        chosen = remote[0]
    else:
        chosen = next((item for item in remote if item["name"] == source), None)
        if chosen is None:
            raise OffsiteError(
                f"off-site backup {source!r} is not in {params['bucket']}/{remote_dir(params)} "
                f"(newest: {remote[0]['name']})"
            )
    name = chosen["name"]
    manifest_path = os.path.join(dest_dir, core.manifest_name(name))
    _download_decrypt(client, params, chosen["manifest"], manifest_path, dest_dir)
    manifest = core.read_manifest(manifest_path)
    if manifest is None or manifest.get("name") != name:
        raise OffsiteError(f"off-site manifest of {name} does not describe {name}: refusing")
    _check_companions(params, chosen, manifest)
    path = os.path.join(dest_dir, name)
    if chosen["format"] == "directory":
        tar_path = os.path.join(dest_dir, f".{name}.tar")
        _download_decrypt(client, params, chosen["data"], tar_path, dest_dir)
        try:
            safe_extract(tar_path, dest_dir, name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tar_path)
    else:
        _download_decrypt(client, params, chosen["data"], path, dest_dir)
    for key in chosen["companions"]:
        plain = os.path.basename(key)[: -len(".age")]
        _download_decrypt(client, params, key, os.path.join(dest_dir, plain), dest_dir)
    try:
        core.verify_against_manifest(path, manifest)
    except core.PgBackupError as exc:
        raise OffsiteError(f"off-site backup {name} failed verification after decryption: {exc}") from None
    return path, manifest


def _check_companions(params, chosen, manifest):
    """Refuse before the dump is downloaded when the manifest records a globals file the bucket lacks.

    The globals file is downloaded, decrypted and checked against the manifest's sha256 with the dump
    (``verify_against_manifest``); a restore that applies it gets the verified copy beside the dump.
    """
    if not manifest.get("globals"):
        return
    wanted = core.globals_name(chosen["name"]) + ".age"
    if not any(os.path.basename(key) == wanted for key in chosen["companions"]):
        raise OffsiteError(
            f"off-site backup {chosen['name']} is incomplete: its manifest records the globals file "
            f"{core.globals_name(chosen['name'])} but {params['bucket']}/{remote_dir(params)} has no {wanted}; refusing"
        )


@contextlib.contextmanager
def fetched(params, source="latest", work_root=None, identity=None):
    """Context manager: a verified plaintext copy of a remote backup in a private temporary directory.

    ``identity``: the age identity text (vaulted); it is written to a 0600 file in that directory and
    given to age by path. Yields ``(path, manifest)``; everything is removed on exit.
    """
    if work_root and not os.path.isdir(work_root):
        raise OffsiteError(f"download directory {work_root} does not exist: create it or choose another")
    work = tempfile.mkdtemp(prefix=".offsite-restore-", dir=work_root)
    try:
        params = dict(params)
        if identity:
            key_path = os.path.join(work, ".identity")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(identity.strip() + "\n")
            params["identity_file"] = key_path
        yield fetch_backup(params, source, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download_decrypt(client, params, key, out_path, dest_dir):
    cipher = os.path.join(dest_dir, f".{os.path.basename(key)}{WORK_SUFFIX}")
    digest = hashlib.sha256()
    try:
        with open(cipher, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)

            def sink(chunk):
                digest.update(chunk)
                handle.write(chunk)

            try:
                headers = client.get(key, sink)
            except S3Error as exc:
                raise OffsiteError(f"download of {params['bucket']}/{key} failed: {exc}") from None
        stored = headers.get(f"x-amz-meta-{META_SHA256}")
        if stored != digest.hexdigest():
            raise OffsiteError(
                f"{params['bucket']}/{key} is damaged or was tampered with: sha256 {digest.hexdigest()} "
                f"is not the {stored} recorded at upload; refusing"
            )
        decrypt_file(params, cipher, out_path, f"decrypting {params['bucket']}/{key}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cipher)
