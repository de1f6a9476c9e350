# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capistrano-style release directories: pure planning logic and the filesystem operations.

Layout under a deploy root::

    <root>/releases/<id>/           one complete release each (holds .release-meta)
    <root>/releases/.<id>.tmp-<pid> a release being built (never counted, removed by the next run)
    <root>/shared/                  files and directories linked into every release
    <root>/current -> releases/<id> the active release (switched atomically with os.replace)
    <root>/.release-state           JSON {current, previous, switched_at} written after each switch
    <root>/.deploy.lock             flock()ed during a change; holds the holder's pid/host/user/started_at
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import tarfile
import zipfile

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import (
    HolderLock,
    atomic_write_json,
    fsync_dir,
)

RELEASES_DIR = "releases"
SHARED_DIR = "shared"
CURRENT_LINK = "current"
STATE_FILE = ".release-state"
LOCK_FILE = ".deploy.lock"
META_FILE = ".release-meta"
KILL_ENV = "STACKOPS_RELEASE_TEST_KILL_AT"
# datetime.UTC needs Python 3.11; managed hosts may run older Pythons.
_UTC = datetime.timezone.utc  # noqa: UP017
STATES = ("deployed", "activated", "rolled_back", "absent")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Names of temporary entries this module creates: in releases/ and in the root.
_TEMP_RE = re.compile(r"^\.(.+)\.(tmp|del)-\d+$")
_CHUNK = 1024 * 1024


class ReleaseError(Exception):
    """A failure with a message meant for the user (fail_json msg) and optional details."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------- pure helpers


def default_release_id(now=None):
    """UTC timestamp id such as 20260220T051228Z (sorts lexicographically in time order)."""
    now = now or datetime.datetime.now(_UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def validate_release_id(release_id):
    """Raise ReleaseError unless release_id is a safe single directory name."""
    if not isinstance(release_id, str) or not release_id:
        raise ReleaseError("release_id must not be empty")
    if "/" in release_id or "\\" in release_id or ".." in release_id:
        raise ReleaseError(
            f"release_id {release_id!r} must not contain '/', '\\' or '..'; use letters, digits, '.', '_', '+', '-'"
        )
    if release_id.startswith("."):
        raise ReleaseError(f"release_id {release_id!r} must not start with '.' (names starting with '.' are temporary)")
    if not _ID_RE.match(release_id):
        raise ReleaseError(
            f"release_id {release_id!r} is invalid: use at most 128 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    return release_id


def normalize_sha256(value):
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    if not _SHA_RE.match(text):
        raise ReleaseError(f"sha256 {value!r} is not 64 hexadecimal characters")
    return text


def normalize_shared_paths(paths):
    """Return [(relpath, is_dir)] from shared_paths; a trailing '/' marks a directory."""
    result = []
    seen = set()
    for raw in paths or []:
        if not isinstance(raw, str) or not raw.strip("/"):
            raise ReleaseError(f"shared_paths entry {raw!r} is empty")
        is_dir = raw.endswith("/")
        rel = raw.strip("/") if not raw.startswith("/") else raw
        parts = rel.split("/")
        if raw.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ReleaseError(
                f"shared_paths entry {raw!r} must be a relative path inside the release without '.', '..' "
                "or empty components"
            )
        if parts[0] == META_FILE:
            raise ReleaseError(f"shared_paths entry {raw!r} would hide {META_FILE}")
        if rel in seen:
            raise ReleaseError(f"shared_paths entry {raw!r} is listed twice")
        seen.add(rel)
        result.append((rel, is_dir))
    for rel, _is_dir in result:
        for other, _other_is_dir in result:
            if other != rel and other.startswith(rel + "/"):
                raise ReleaseError(f"shared_paths entries {rel!r} and {other!r} overlap; list only one of them")
    return result


def select_prune(releases, keep, protected):
    """Ids to remove: all but the `keep` highest ids, never one in `protected`. keep=0 disables pruning."""
    if keep <= 0:
        return []
    ordered = sorted(releases)
    kept = set(ordered[-keep:])
    return [r for r in ordered if r not in kept and r not in protected]


def choose_previous(current, state, releases):
    """The release `current` pointed at before the latest switch.

    state is the parsed .release-state (or None). When it matches `current` its `previous` is used.
    When a switch was interrupted after the symlink but before the state write, state['current'] is the
    release that was active before, so it is the previous one. Without usable state, the highest id below
    `current` is used (id order, never modification times).
    """
    if current is None:
        return None
    releases = set(releases)
    if isinstance(state, dict) and state.get("current") == current:
        prev = state.get("previous")
        return prev if prev in releases and prev != current else None
    if isinstance(state, dict) and state.get("current") in releases and state.get("current") != current:
        return state["current"]
    lower = sorted(r for r in releases if r < current)
    return lower[-1] if lower else None


def rollback_target(current, previous, releases, release_id=None):
    """Choose the release to roll back to; raise ReleaseError with what to do when there is none."""
    if release_id:
        validate_release_id(release_id)
        if release_id not in releases:
            raise ReleaseError(
                f"release {release_id!r} does not exist; available releases: {', '.join(sorted(releases)) or 'none'}"
            )
        return release_id
    if current is None:
        raise ReleaseError("nothing to roll back: no current release (current symlink missing)")
    if previous is None:
        raise ReleaseError(
            f"no previous release recorded for current release {current!r}; set release_id to one of: "
            f"{', '.join(sorted(r for r in releases if r != current)) or 'none'}"
        )
    return previous


def check_member_path(name):
    """Normalise an archive member name; raise ReleaseError if it is absolute or leaves the release dir."""
    if name.startswith("/") or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        raise ReleaseError(f"archive member {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ReleaseError(f"archive member {name!r} contains '..'")
    return "/".join(parts)


def check_link_target(name, target):
    """Raise ReleaseError if a symlink `name` -> `target` inside the release would point outside it."""
    if not target or target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise ReleaseError(f"archive member {name!r} is a link to an absolute path {target!r}")
    resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise ReleaseError(f"archive member {name!r} is a link {target!r} that escapes the release directory")


def _utcnow():
    return datetime.datetime.now(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _test_hook(step):
    """Integration tests kill the process at a named step to prove a crash never breaks `current`."""
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def default_deployed_by():
    return os.environ.get("SUDO_USER") or getpass.getuser()


# ---------------------------------------------------------------- checksums and archives


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
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
                        while fh.read(_CHUNK):
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
                    shutil.copyfileobj(fin, fout, _CHUNK)
                if mode:
                    os.chmod(target, mode & 0o755 | 0o600)


# ---------------------------------------------------------------- filesystem state


def _fsync_tree(root):
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                fd = os.open(full, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(dirpath)


def read_meta(release_dir):
    try:
        with open(os.path.join(release_dir, META_FILE)) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def read_state(root):
    try:
        with open(os.path.join(root, STATE_FILE)) as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def current_id(root):
    """Id `current` points at, None when missing. Raise when it is not a symlink into releases/."""
    link = os.path.join(root, CURRENT_LINK)
    if not os.path.lexists(link):
        return None
    if not os.path.islink(link):
        raise ReleaseError(f"{link} exists but is not a symlink; move it away so releases can be switched")
    target = os.readlink(link)
    full = os.path.normpath(os.path.join(root, target))
    if os.path.dirname(full) != os.path.normpath(os.path.join(root, RELEASES_DIR)):
        raise ReleaseError(f"{link} points to {target}, which is not a release under {root}/{RELEASES_DIR}")
    return os.path.basename(full)


def list_releases(root):
    """Complete releases (valid id, directory, readable .release-meta), sorted by id."""
    rdir = os.path.join(root, RELEASES_DIR)
    try:
        names = os.listdir(rdir)
    except FileNotFoundError:
        return []
    result = []
    for name in names:
        full = os.path.join(rdir, name)
        valid = _ID_RE.match(name) and ".." not in name and os.path.isdir(full) and not os.path.islink(full)
        if valid and read_meta(full) is not None:
            result.append(name)
    return sorted(result)


def stale_entries(root):
    """Leftovers of interrupted runs: temporary releases, links and state files."""
    found = []
    for sub in (RELEASES_DIR, ""):
        directory = os.path.join(root, sub) if sub else root
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.extend(os.path.join(sub, n) if sub else n for n in sorted(names) if _TEMP_RE.match(n))
    return found


def read_layout(root):
    releases = list_releases(root)
    current = current_id(root)
    state = read_state(root)
    previous = choose_previous(current, state, releases)
    return {"current": current, "previous": previous, "releases": releases}


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _remove_release(root, release_id):
    """Hide the release under a temporary name first (atomic), then delete it."""
    rdir = os.path.join(root, RELEASES_DIR)
    doomed = os.path.join(rdir, f".{release_id}.del-{os.getpid()}")
    os.rename(os.path.join(rdir, release_id), doomed)
    fsync_dir(rdir)
    shutil.rmtree(doomed)


def switch_current(root, release_id, previous):
    """Point `current` at releases/<id> atomically, then record the previous release."""
    tmp = os.path.join(root, f".{CURRENT_LINK}.tmp-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join(RELEASES_DIR, release_id), tmp)
    try:
        _test_hook("linked")
        os.replace(tmp, os.path.join(root, CURRENT_LINK))
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(root)
    _test_hook("switched")
    atomic_write_json(
        os.path.join(root, STATE_FILE), {"current": release_id, "previous": previous, "switched_at": _utcnow()}
    )


def deploy_lock(root, timeout=0.0, poll=0.2):
    """Exclusive lock on <root>/.deploy.lock naming its holder; busy -> ReleaseError naming the holder."""
    path = os.path.join(root, LOCK_FILE)

    def busy(info):
        waited = f" after waiting {info.waited:g}s" if info.waited else ""
        return ReleaseError(
            f"deploy root {root} is locked by {info.holder_text}{waited}; another deploy is "
            f"running. Wait for it, or set lock_timeout (seconds) to wait. Lock file: {path}",
            lock_holder=info.holder,
        )

    return HolderLock(path, timeout, poll=poll, mode=0o644, busy=busy)


# ---------------------------------------------------------------- operations


def _diff(before, after):
    def render(layout):
        lines = [f"current: {layout['current'] or ''}", "releases:"]
        lines.extend(f"  - {r}" for r in layout["releases"])
        return "\n".join(lines) + "\n"

    return {"before": render(before), "after": render(after), "before_header": "releases", "after_header": "releases"}


def _result(root, before, after, release_id, changed, *, pruned=(), cleaned=()):
    return {
        "changed": changed,
        "release_id": release_id,
        "release_path": os.path.join(root, RELEASES_DIR, release_id) if release_id else None,
        "current": after["current"],
        "previous": after["previous"],
        "releases": list(after["releases"]),
        "pruned": list(pruned),
        "cleaned": list(cleaned),
        "diff": _diff(before, after),
    }


def _root(params):
    root = params.get("path")
    if not root:
        raise ReleaseError("path (the deploy root) is required")
    root = os.path.abspath(root)
    if os.path.lexists(root) and not os.path.isdir(root):
        raise ReleaseError(f"path {root} exists and is not a directory")
    return root


def _prepare_source(params):
    """Validate src (read-only). Return (kind, archive kind or None, digest)."""
    src = params.get("src")
    if not src:
        raise ReleaseError("src is required for state=deployed: an archive (tar.gz, tgz, tar, zip) or a directory")
    src = os.path.abspath(src)
    expected = normalize_sha256(params.get("sha256"))
    if os.path.isdir(src):
        if expected:
            raise ReleaseError(f"sha256 applies to an archive src only; {src} is a directory")
        return src, "directory", None, tree_digest(src)
    if not os.path.isfile(src):
        raise ReleaseError(f"src {src} does not exist (expected an archive or a directory on the managed host)")
    actual = sha256_file(src)
    if expected and actual != expected:
        raise ReleaseError(
            f"checksum mismatch for {src}: expected sha256 {expected}, got {actual}; nothing was changed",
            expected_sha256=expected,
            actual_sha256=actual,
        )
    kind = inspect_archive(src)
    return src, "archive", kind, actual


def _plan_deploy(root, release_id, digest, activate, keep):
    before = read_layout(root)
    rpath = os.path.join(root, RELEASES_DIR, release_id)
    build = True
    if release_id in before["releases"]:
        meta = read_meta(rpath)
        if meta.get("sha256") != digest:
            raise ReleaseError(
                f"release {release_id} already exists at {rpath} with sha256 {meta.get('sha256')}, but src has "
                f"sha256 {digest}; use a new release_id (releases are immutable) or remove it with state=absent",
                existing_sha256=meta.get("sha256"),
                actual_sha256=digest,
            )
        build = False
    elif os.path.lexists(rpath):
        raise ReleaseError(
            f"{rpath} exists but is not a complete release (no readable {META_FILE}); remove it or use another "
            "release_id"
        )
    switch = bool(activate) and before["current"] != release_id
    current = release_id if switch else before["current"]
    previous = before["current"] if switch else before["previous"]
    releases = sorted(set(before["releases"]) | {release_id})
    pruned = select_prune(releases, keep, {current, previous, release_id} - {None})
    after = {"current": current, "previous": previous, "releases": [r for r in releases if r not in pruned]}
    return before, after, build, switch, pruned


def _ensure_shared(root, shared):
    sdir = os.path.join(root, SHARED_DIR)
    os.makedirs(sdir, exist_ok=True)
    for rel, is_dir in shared:
        target = os.path.join(sdir, rel)
        if os.path.lexists(target):
            continue
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            os.close(fd)


def _link_shared(root, build_dir, release_id, shared):
    """Replace each shared path in the release with a relative symlink into shared/."""
    final_dir = os.path.join(root, RELEASES_DIR, release_id)
    for rel, _is_dir in shared:
        link = os.path.join(build_dir, rel)
        parent = os.path.dirname(link)
        real_parent = os.path.realpath(parent)
        if real_parent != os.path.realpath(build_dir) and not real_parent.startswith(os.path.realpath(build_dir) + "/"):
            raise ReleaseError(f"shared path {rel!r}: a parent directory inside the release is a symlink")
        os.makedirs(parent, exist_ok=True)
        _remove(link)
        final_parent = os.path.dirname(os.path.join(final_dir, rel))
        os.symlink(os.path.relpath(os.path.join(root, SHARED_DIR, rel), final_parent), link)


def _build_release(root, release_id, params, *, src, source_type, kind, digest, shared, now):
    rdir = os.path.join(root, RELEASES_DIR)
    build_dir = os.path.join(rdir, f".{release_id}.tmp-{os.getpid()}")
    os.mkdir(build_dir, 0o755)
    try:
        if source_type == "directory":
            shutil.copytree(src, build_dir, symlinks=True, dirs_exist_ok=True)
        else:
            extract_archive(src, build_dir, kind)
        _test_hook("extracted")
        _link_shared(root, build_dir, release_id, shared)
        meta = {
            "id": release_id,
            "created_at": (now or datetime.datetime.now(_UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sha256": digest,
            "source": src,
            "source_type": source_type if source_type == "directory" else f"archive ({kind})",
            "version": params.get("version"),
            "git_sha": params.get("git_sha"),
            "deployed_by": params.get("deployed_by") or default_deployed_by(),
            "shared_paths": [rel + ("/" if is_dir else "") for rel, is_dir in shared],
        }
        with open(os.path.join(build_dir, META_FILE), "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.write("\n")
        _fsync_tree(build_dir)
        _test_hook("built")
        os.rename(build_dir, os.path.join(rdir, release_id))
    except BaseException:
        if os.path.lexists(build_dir):
            shutil.rmtree(build_dir, ignore_errors=True)
        raise
    fsync_dir(rdir)
    _test_hook("renamed")


def deploy(params, check_mode=False, now=None):
    root = _root(params)
    release_id = validate_release_id(params.get("release_id") or default_release_id(now))
    shared = normalize_shared_paths(params.get("shared_paths"))
    keep = int(params.get("keep_releases") if params.get("keep_releases") is not None else 5)
    if keep < 0:
        raise ReleaseError(f"keep_releases {keep} must be 0 (never prune) or more")
    activate = params.get("activate", True) is not False
    src, source_type, kind, digest = _prepare_source(params)
    before, after, build, switch, pruned = _plan_deploy(root, release_id, digest, activate, keep)
    stale = stale_entries(root)
    if check_mode:
        changed = build or switch or bool(pruned) or bool(stale)
        return _result(root, before, after, release_id, changed, pruned=pruned, cleaned=stale)

    os.makedirs(root, exist_ok=True)
    with deploy_lock(root, params.get("lock_timeout")):
        stale = stale_entries(root)
        for entry in stale:
            _remove(os.path.join(root, entry))
        # Plan again under the lock: another deploy may have finished meanwhile.
        before, after, build, switch, pruned = _plan_deploy(root, release_id, digest, activate, keep)
        os.makedirs(os.path.join(root, RELEASES_DIR), exist_ok=True)
        if build:
            _ensure_shared(root, shared)
            _build_release(
                root, release_id, params,
                src=src, source_type=source_type, kind=kind, digest=digest, shared=shared, now=now,
            )
        if switch:
            switch_current(root, release_id, before["current"])
        for rid in pruned:
            _remove_release(root, rid)
        after = read_layout(root)
    changed = build or switch or bool(pruned) or bool(stale)
    return _result(root, before, after, release_id, changed, pruned=pruned, cleaned=stale)


def _switch_to(root, params, check_mode, target_fn):
    before = read_layout(root)
    target = target_fn(before)
    switch = target != before["current"]
    after = dict(before, current=target, previous=before["current"]) if switch else before
    if check_mode or not switch:
        return _result(root, before, after, target, switch)
    with deploy_lock(root, params.get("lock_timeout")):
        before = read_layout(root)
        target = target_fn(before)
        switch = target != before["current"]
        if switch:
            switch_current(root, target, before["current"])
        after = read_layout(root)
    return _result(root, before, after, target, switch)


def _require_root(root):
    if not os.path.isdir(os.path.join(root, RELEASES_DIR)):
        raise ReleaseError(f"{root} is not a deploy root (no {RELEASES_DIR}/ directory); deploy a release first")


def rollback(params, check_mode=False):
    root = _root(params)
    _require_root(root)

    def target(layout):
        return rollback_target(layout["current"], layout["previous"], layout["releases"], params.get("release_id"))

    return _switch_to(root, params, check_mode, target)


def activate_release(params, check_mode=False):
    root = _root(params)
    _require_root(root)
    if not params.get("release_id"):
        raise ReleaseError("state=activated needs release_id: the existing release to switch current to")

    def target(layout):
        return rollback_target(layout["current"], layout["previous"], layout["releases"], params["release_id"])

    return _switch_to(root, params, check_mode, target)


def remove(params, check_mode=False):
    root = _root(params)
    release_id = params.get("release_id")
    if not release_id:
        raise ReleaseError("state=absent needs release_id: the release to remove")
    validate_release_id(release_id)

    def plan():
        before = read_layout(root)
        if release_id == before["current"]:
            raise ReleaseError(
                f"refusing to remove release {release_id}: it is the current release; activate or roll back to "
                "another release first"
            )
        present = os.path.lexists(os.path.join(root, RELEASES_DIR, release_id))
        releases = [r for r in before["releases"] if r != release_id]
        previous = before["previous"] if before["previous"] != release_id else None
        return before, dict(before, releases=releases, previous=previous), present

    before, after, present = plan()
    if check_mode or not present:
        return _result(root, before, after, release_id, present)
    with deploy_lock(root, params.get("lock_timeout")):
        before, after, present = plan()
        if present:
            _remove_release(root, release_id)
        after = read_layout(root)
    return _result(root, before, after, release_id, present)


def run(params, check_mode=False):
    state = params.get("state") or "deployed"
    if state == "deployed":
        return deploy(params, check_mode)
    if state == "rolled_back":
        return rollback(params, check_mode)
    if state == "activated":
        return activate_release(params, check_mode)
    if state == "absent":
        return remove(params, check_mode)
    raise ReleaseError(f"state {state!r} is not one of {', '.join(STATES)}")


def _link_path(root, name):
    """Absolute path of the link ``name`` (relative to the deploy root); refuse paths that leave it."""
    if not isinstance(name, str) or not name or name.startswith("/"):
        raise ReleaseError(f"link {name!r} must be a path relative to the deploy root {root}")
    full = os.path.normpath(os.path.join(root, name))
    if full == root or not full.startswith(root + os.sep) or ".." in name.split("/"):
        raise ReleaseError(f"link {name!r} leaves the deploy root {root}: name a path inside it")
    return full


def read_link(root, name, releases):
    """Where the symlink ``<root>/<name>`` points, and the release id when it names a complete release."""
    full = _link_path(root, name)
    found = {"path": full, "exists": os.path.lexists(full), "target": None, "release_id": None}
    if not found["exists"]:
        return found
    if not os.path.islink(full):
        raise ReleaseError(f"{full} exists but is not a symlink; move it away or do not list it in links")
    target = os.readlink(full)
    resolved = os.path.normpath(os.path.join(os.path.dirname(full), target))
    found["target"] = resolved
    if os.path.dirname(resolved) == os.path.join(root, RELEASES_DIR) and os.path.basename(resolved) in releases:
        found["release_id"] = os.path.basename(resolved)
    return found


def info(path, links=()):
    """Read-only view of a deploy root for release_info; ``links`` are symlinks to report (relative names)."""
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise ReleaseError(f"path {root} does not exist or is not a directory")
    _require_root(root)
    layout = read_layout(root)
    # Check every name before reading any, so one bad entry names itself instead of half a result.
    for name in links:
        _link_path(root, name)
    releases = []
    for rid in layout["releases"]:
        rpath = os.path.join(root, RELEASES_DIR, rid)
        releases.append(
            {
                "id": rid,
                "path": rpath,
                "metadata": read_meta(rpath),
                "is_current": rid == layout["current"],
                "is_previous": rid == layout["previous"],
            }
        )
    return {
        "path": root,
        "current": layout["current"],
        "current_path": os.path.join(root, RELEASES_DIR, layout["current"]) if layout["current"] else None,
        "previous": layout["previous"],
        "releases": releases,
        "stale": stale_entries(root),
        "links": {name: read_link(root, name, layout["releases"]) for name in links},
    }
