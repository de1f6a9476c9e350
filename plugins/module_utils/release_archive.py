# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release archives: checksums of archives and trees, inspection (refusing unsafe members) and extraction."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile

from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    CHUNK,
    ReleaseError,
    check_link_target,
    check_member_path,
)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(root):
    """sha256 over a canonical listing of a directory: relative path, type, content sha256 or link target."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                lines.append(f"l {rel} {os.readlink(full)}")
            elif os.path.isdir(full):
                lines.append(f"d {rel}")
            elif os.path.isfile(full):
                lines.append(f"f {rel} {sha256_file(full)}")
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def archive_kind(src):
    if zipfile.is_zipfile(src):
        return "zip"
    try:
        with tarfile.open(src, "r:*"):
            return "tar"
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReleaseError(f"src {src} is not a readable tar.gz/tgz/tar or zip archive: {exc}") from exc


def _zip_is_link(info):
    return stat.S_ISLNK(info.external_attr >> 16)


def inspect_archive(src):
    """Read the whole archive once (checks integrity and every member path); return its kind.

    Nothing is written. Raises ReleaseError naming the archive and the bad member.
    """
    kind = archive_kind(src)
    try:
        if kind == "zip":
            with zipfile.ZipFile(src) as zf:
                for info in zf.infolist():
                    name = check_member_path(info.filename)
                    if _zip_is_link(info):
                        check_link_target(name, zf.read(info).decode("utf-8", "surrogateescape"))
                bad = zf.testzip()
                if bad is not None:
                    raise ReleaseError(f"archive {src} is corrupt: bad CRC for member {bad!r}")
        else:
            with tarfile.open(src, "r:*") as tf:
                for member in tf:
                    name = check_member_path(member.name)
                    if member.issym():
                        check_link_target(name, member.linkname)
                    elif member.islnk():
                        check_member_path(member.linkname)
                    elif not (member.isfile() or member.isdir()):
                        raise ReleaseError(f"archive member {member.name!r} is a device, fifo or other special file")
                    if member.isfile():
                        fh = tf.extractfile(member)
                        while fh.read(CHUNK):
                            pass
    except ReleaseError as exc:
        if str(src) in exc.msg:
            raise
        raise ReleaseError(f"unsafe archive {src}: {exc.msg}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise ReleaseError(f"archive {src} is corrupt or unreadable: {exc}") from exc
    return kind


def extract_archive(src, dest, kind):
    """Extract into the existing directory dest, checking each member again while extracting."""
    try:
        if kind == "zip":
            _extract_zip(src, dest)
        else:
            with tarfile.open(src, "r:*") as tf:
                members = []
                for member in tf:
                    check_member_path(member.name)
                    if member.issym():
                        check_link_target(member.name, member.linkname)
                    elif member.islnk():
                        check_member_path(member.linkname)
                    elif not (member.isfile() or member.isdir()):
                        raise ReleaseError(f"archive member {member.name!r} is a special file")
                    members.append(member)
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tf.extractall(dest, members=members)  # noqa: S202 - every member checked above
    except ReleaseError as exc:
        raise ReleaseError(f"unsafe archive {src}: {exc.msg}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError) as exc:
        raise ReleaseError(f"cannot extract archive {src}: {exc}") from exc


def _extract_zip(src, dest):
    with zipfile.ZipFile(src) as zf:
        for info in zf.infolist():
            name = check_member_path(info.filename)
            if not name:
                continue
            target = os.path.join(dest, name)
            mode = (info.external_attr >> 16) & 0o777
            if _zip_is_link(info):
                link = zf.read(info).decode("utf-8", "surrogateescape")
                check_link_target(name, link)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(link, target)
            elif info.is_dir():
                os.makedirs(target, exist_ok=True)
            else:
                parent = os.path.dirname(target)
                os.makedirs(parent, exist_ok=True)
                with zf.open(info) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, CHUNK)
                if mode:
                    os.chmod(target, mode & 0o755 | 0o600)
