# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue/green colour links of a deploy root (release_color): which colour nginx serves, which is idle, what
each colour link names, and pointing the idle one at a release.

``<root>/colors/<colour>`` is a symlink to ``<root>/releases/<id>``; unit ``<app>@<colour>`` runs there. The
active colour comes from stackops.platform.blue_green's state file (blue when there is none yet: the api role
starts with nginx on blue). A colour link only ever moves atomically, under the deploy root's lock, to a
complete release, and never for the colour nginx serves.
"""

from __future__ import annotations

import os

from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import parse_state, read_text
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_params import COLORS
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import atomic_symlink
from ansible_collections.stackops.platform.plugins.module_utils.release_layout import deploy_lock, read_meta
from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    META_FILE,
    RELEASES_DIR,
    ReleaseError,
    validate_release_id,
)

LINKS_DIR = "colors"


def other(color):
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def active_color(state_file):
    """The colour nginx serves according to the blue_green state file; blue when the file does not exist."""
    text = read_text(state_file)
    if text is None:
        return COLORS[0]
    try:
        return parse_state(text)["active"]
    except ValueError as exc:
        raise ReleaseError(
            f"state file {state_file} is unusable ({exc}): fix or remove it, then run playbooks/switch.yml "
            "-e color=<colour serving now> to record the colour nginx serves"
        ) from None


def read_color_link(path):
    """Absolute, normalised target of a colour link; '' when there is none. Refuses anything but a symlink."""
    if not os.path.lexists(path):
        return ""
    if not os.path.islink(path):
        raise ReleaseError(f"{path} exists but is not a symlink; move it away (a colour link names a release)")
    return os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))


def release_target(root, release_path):
    """The complete release ``release_path`` names, as <root>/releases/<id>; ReleaseError naming it otherwise."""
    if not isinstance(release_path, str) or not release_path.startswith("/"):
        raise ReleaseError(f"release_path {release_path!r} must be an absolute path under {root}/{RELEASES_DIR}/")
    full = os.path.normpath(release_path)
    if os.path.dirname(full) != os.path.join(root, RELEASES_DIR):
        raise ReleaseError(
            f"release_path {release_path!r} is not a release of {root}: expected {root}/{RELEASES_DIR}/<release id>"
        )
    validate_release_id(os.path.basename(full))
    if os.path.islink(full) or read_meta(full) is None:
        raise ReleaseError(
            f"release_path {release_path!r} is not a complete release (no readable {META_FILE}); deploy it first "
            "with stackops.platform.release"
        )
    return full


def plan(root, state_file, color=None, release_path=None):
    """What the links are and what linking would change (reads only)."""
    root = os.path.abspath(root)
    active = active_color(state_file)
    links_dir = os.path.join(root, LINKS_DIR)
    links = {c: read_color_link(os.path.join(links_dir, c)) for c in COLORS}
    result = {
        "active": active,
        # False before the first switch: "active" is then blue by convention, nothing serves yet.
        "recorded": os.path.exists(state_file),
        "idle": other(active),
        "links": links,
        "color": None,
        "before": None,
        "after": None,
        "changed": False,
    }
    if release_path is None:
        if color not in (None, "idle"):
            raise ReleaseError(f"color={color} needs release_path: the release to point the colour at")
        return result
    color = result["idle"] if color in (None, "idle") else color
    if color not in COLORS:
        raise ReleaseError(f"color {color!r} must be blue, green or idle")
    if color == active:
        raise ReleaseError(
            f"refusing to move the {color} colour link: nginx serves {color} (state file {state_file}); point the "
            f"idle colour ({other(color)}) at the release, restart it and switch"
        )
    target = release_target(root, release_path)
    before = links[color]
    result.update(color=color, before=before, after=target, changed=before != target)
    return result


def link(root, state_file, color=None, release_path=None, *, check_mode=False, lock_timeout=0.0):
    """Point the colour link at the release (plan under the deploy root's lock, then one atomic rename)."""
    root = os.path.abspath(root)
    result = plan(root, state_file, color, release_path)
    if check_mode or not result["changed"]:
        return result
    with deploy_lock(root, lock_timeout):
        # Plan again under the lock: another run may have moved the link meanwhile.
        result = plan(root, state_file, color, release_path)
        if result["changed"]:
            links_dir = os.path.join(root, LINKS_DIR)
            os.makedirs(links_dir, mode=0o755, exist_ok=True)
            atomic_symlink(result["after"], os.path.join(links_dir, result["color"]))
            result["links"] = dict(result["links"], **{result["color"]: result["after"]})
    return result
