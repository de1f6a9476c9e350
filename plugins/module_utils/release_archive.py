# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release archives: checksums of archives and trees, inspection (refusing unsafe members) and extraction.

Both inspection and extraction can strip leading path components (``strip``, like tar's --strip-components):
the checks then apply to the names and link targets as they land in the release.
"""

from __future__ import annotations

import copy
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
    validate_strip_components,
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


class MemberNames:
    """Member names as they land in the release, with ``strip`` leading components removed (0: as they are).

    With strip > 0 every member must lie under the same top directories (members under two different ones
    would overwrite each other), a file, link or hard-link target that the stripping would drop is refused
    (tar drops them silently), and the top directories themselves are skipped.
    """

    def __init__(self, strip=0):
        self.strip = validate_strip_components(strip)
        self.top = None
        self.kept = 0

    def name(self, raw, *, is_dir=False):
        """The member's path inside the release; None for a top directory that stripping removes."""
        name = check_member_path(raw)
        if not name and is_dir:
            return None  # the archive's own root ("./")
        if not self.strip:
            self.kept += 1
            return name
        parts = name.split("/") if name else []
        if len(parts) <= self.strip:
            if is_dir:
                return None
            raise ReleaseError(
                f"archive member {raw!r} has no path below the top {self.strip} director"
                f"{'y' if self.strip == 1 else 'ies'}: strip_components={self.strip} would drop it"
            )
        top = "/".join(parts[: self.strip])
        if self.top is None:
            self.top = top
        elif top != self.top:
            raise ReleaseError(
                f"archive member {raw!r} is not under {self.top + '/'!r} like the members before it: "
                f"strip_components={self.strip} needs one top directory"
            )
        self.kept += 1
        return "/".join(parts[self.strip :])

    def hard_link(self, raw):
        """A hard link's target (an archive member path), renamed like the members."""
        return self.name(raw)

    def check_not_empty(self, src):
        if self.strip and not self.kept:
            raise ReleaseError(f"archive {src} holds nothing below its top directory (strip_components={self.strip})")


def inspect_archive(src, strip=0):
    """Read the whole archive once (checks integrity and every member path); return its kind.

    Nothing is written. Raises ReleaseError naming the archive and the bad member.
    """
    kind = archive_kind(src)
    names = MemberNames(strip)
    try:
        if kind == "zip":
            with zipfile.ZipFile(src) as zf:
                for info in zf.infolist():
                    name = names.name(info.filename, is_dir=info.is_dir())
                    if _zip_is_link(info) and name is not None:
                        check_link_target(name, zf.read(info).decode("utf-8", "surrogateescape"))
                bad = zf.testzip()
                if bad is not None:
                    raise ReleaseError(f"archive {src} is corrupt: bad CRC for member {bad!r}")
        else:
            with tarfile.open(src, "r:*") as tf:
                for member in tf:
                    _tar_member(member, names)
                    if member.isfile():
                        fh = tf.extractfile(member)
                        while fh.read(CHUNK):
                            pass
        names.check_not_empty(src)
    except ReleaseError as exc:
        if str(src) in exc.msg:
            raise
        raise ReleaseError(f"unsafe archive {src}: {exc.msg}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise ReleaseError(f"archive {src} is corrupt or unreadable: {exc}") from exc
    return kind


def _tar_member(member, names):
    """The member as it lands in the release (a renamed copy when stripping), or None to skip it; checks it."""
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ReleaseError(f"archive member {member.name!r} is a device, fifo or other special file")
    name = names.name(member.name, is_dir=member.isdir())
    if name is None:
        return None
    linkname = member.linkname
    if member.issym():
        check_link_target(name, member.linkname)
    elif member.islnk():
        linkname = names.hard_link(member.linkname)
    if name == member.name and linkname == member.linkname:
        return member
    renamed = copy.copy(member)
    renamed.name, renamed.linkname = name, linkname
    return renamed


def extract_archive(src, dest, kind, strip=0):
    """Extract into the existing directory dest, checking each member again while extracting."""
    names = MemberNames(strip)
    try:
        if kind == "zip":
            _extract_zip(src, dest, names)
        else:
            with tarfile.open(src, "r:*") as tf:
                members = []
                for member in tf:
                    landed = _tar_member(member, names)
                    if landed is not None:
                        members.append(landed)
                names.check_not_empty(src)
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tf.extractall(dest, members=members)  # noqa: S202 - every member checked above
    except ReleaseError as exc:
        raise ReleaseError(f"unsafe archive {src}: {exc.msg}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError) as exc:
        raise ReleaseError(f"cannot extract archive {src}: {exc}") from exc


def _extract_zip(src, dest, names):
    with zipfile.ZipFile(src) as zf:
        for info in zf.infolist():
            name = names.name(info.filename, is_dir=info.is_dir())
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
        names.check_not_empty(src)
