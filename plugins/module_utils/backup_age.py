# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""age on the database host: encrypt off-site copies to public recipients, decrypt them with an identity file.

The identity (private key) is only ever given to age as a file path; the caller writes it 0600.
A directory-format backup travels as an uncompressed tar stream (its files are already compressed)
and is unpacked only after every member was checked to be a plain file or directory under its name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError


class AgeError(PgBackupError):
    """age refused or failed; the message says whether the key or the data is wrong."""


def find_age(params, name="age"):
    path = params.get("age_path") or shutil.which(name) or f"/usr/bin/{name}"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AgeError(f"{name} not found at {path}: install the Debian package age or set age_path")
    return path


def age_failure(proc_stderr, what):
    text = (proc_stderr or b"").decode("utf-8", "replace").strip()
    if "no identity matched" in text:
        return AgeError(f"{what}: the age identity does not match the recipients of this backup ({text})")
    if "failed to decrypt" in text or "header" in text or "authenticate" in text:
        return AgeError(f"{what}: the object is damaged or was tampered with, age refused it ({text})")
    return AgeError(f"{what}: age failed: {text}")


def encrypt(params, source, out_path, is_dir):
    """Encrypt a file, or a directory as an uncompressed tar stream, to ``out_path`` (0600)."""
    argv = [find_age(params)]
    for recipient in params["recipients"]:
        argv.extend(["-r", recipient])
    argv.extend(["-o", out_path])
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    if not is_dir:
        proc = subprocess.run([*argv, source], capture_output=True, check=False)
        if proc.returncode != 0:
            raise age_failure(proc.stderr, f"encrypting {source}")
        return
    proc = subprocess.Popen([*argv, "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(source, arcname=os.path.basename(source), recursive=True)
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stderr = proc.stderr.read()
    if proc.wait() != 0:
        raise age_failure(stderr, f"encrypting {source}")


def decrypt_file(params, source, out_path, what):
    argv = [find_age(params), "-d", "-i", params["identity_file"], "-o", out_path, source]
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out_path)
        raise age_failure(proc.stderr, what)


def safe_extract(tar_path, dest, name):
    """Extract a directory backup's tar: regular files and directories under ``name/`` only."""
    with tarfile.open(tar_path, mode="r:") as tar:
        members = tar.getmembers()
        for member in members:
            parts = member.name.split("/")
            if parts[0] != name or ".." in parts or member.name.startswith("/"):
                raise AgeError(f"directory backup {name} holds an unexpected path {member.name!r}: refusing")
            if not (member.isfile() or member.isdir()):
                raise AgeError(f"directory backup {name} holds a link or device {member.name!r}: refusing")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Pythons without PEP 706; members were checked above
            tar.extractall(dest, members=members)  # noqa: S202
