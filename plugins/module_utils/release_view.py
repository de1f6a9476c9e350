# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only view of a deploy root (stackops.platform.release_info): its releases with their metadata, current and
previous, leftovers of interrupted builds, and where named symlinks (colour links) point. Writes nothing.
"""

from __future__ import annotations

import os

from ansible_collections.stackops.platform.plugins.module_utils.release_layout import (
    read_layout,
    read_meta,
    require_root,
    stale_entries,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_names import RELEASES_DIR, ReleaseError


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
    require_root(root)
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
