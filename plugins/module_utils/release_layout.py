# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy root on disk: its releases, ``current``, the recorded previous release, switching and the lock.

Layout under a deploy root::

    <root>/releases/<id>/           one complete release each (holds .release-meta)
    <root>/releases/.<id>.tmp-<pid> a release being built (never counted, removed by the next run)
    <root>/shared/                  files and directories linked into every release
    <root>/current -> releases/<id> the active release (switched atomically with os.replace)
    <root>/.release-state           JSON {current, previous, switched_at} written after each switch
    <root>/.deploy.lock             flock()ed during a change; holds the holder's pid/host/user/started_at
"""

from __future__ import annotations

import json
import os
import shutil

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import (
    HolderLock,
    atomic_symlink,
    atomic_write_json,
    fsync_dir,
    utc_stamp,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    CURRENT_LINK,
    FAILED_STATUS,
    ID_RE,
    LOCK_FILE,
    META_FILE,
    RELEASES_DIR,
    STATE_FILE,
    TEMP_RE,
    ReleaseError,
    choose_previous,
    kill_point,
)


def fsync_tree(root):
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


def failed_releases(root, releases):
    """The ids among ``releases`` whose .release-meta marks them failed (build hook, health or watch failure)."""
    rdir = os.path.join(root, RELEASES_DIR)
    return [r for r in releases if (read_meta(os.path.join(rdir, r)) or {}).get("status") == FAILED_STATUS]


def set_status(root, release_id, status, reason=None):
    """Mark a release failed (with why and when) or, with status None, clear the mark; True when it changed."""
    rpath = os.path.join(root, RELEASES_DIR, release_id)
    meta = read_meta(rpath)
    if meta is None:
        raise ReleaseError(f"release {release_id} has no readable {META_FILE} under {rpath}")
    if status is None:
        if meta.get("status") is None:
            return False
        for key in ("status", "failed_at", "failed_reason"):
            meta.pop(key, None)
    else:
        if meta.get("status") == status and meta.get("failed_reason") == reason:
            return False
        meta.update(status=status, failed_at=utc_stamp(), failed_reason=reason)
    atomic_write_json(os.path.join(rpath, META_FILE), meta)
    return True


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
        valid = ID_RE.match(name) and ".." not in name and os.path.isdir(full) and not os.path.islink(full)
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
        found.extend(os.path.join(sub, n) if sub else n for n in sorted(names) if TEMP_RE.match(n))
    return found


def require_root(root):
    """Refuse a path that is not a deploy root (no releases/ directory), naming it."""
    if not os.path.isdir(os.path.join(root, RELEASES_DIR)):
        raise ReleaseError(f"{root} is not a deploy root (no {RELEASES_DIR}/ directory); deploy a release first")


def read_layout(root):
    releases = list_releases(root)
    current = current_id(root)
    state = read_state(root)
    previous = choose_previous(current, state, releases)
    return {"current": current, "previous": previous, "releases": releases}


def remove_entry(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def remove_release(root, release_id):
    """Hide the release under a temporary name first (atomic), then delete it."""
    rdir = os.path.join(root, RELEASES_DIR)
    doomed = os.path.join(rdir, f".{release_id}.del-{os.getpid()}")
    os.rename(os.path.join(rdir, release_id), doomed)
    fsync_dir(rdir)
    shutil.rmtree(doomed)


def switch_current(root, release_id, previous):
    """Point `current` at releases/<id> atomically, then record the previous release."""
    atomic_symlink(
        os.path.join(RELEASES_DIR, release_id),
        os.path.join(root, CURRENT_LINK),
        before_replace=lambda: kill_point("linked"),
    )
    kill_point("switched")
    atomic_write_json(
        os.path.join(root, STATE_FILE), {"current": release_id, "previous": previous, "switched_at": utc_stamp()}
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
