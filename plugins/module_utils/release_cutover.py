# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put a release live in a blue-green deploy root, in one step: ``stackops.platform.blue_green`` with ``release``.

The deploy root is managed by ``stackops.platform.release`` (``releases/<id>/``, ``current``) and holds one
symlink per colour (``<color_links_dir>/blue``, ``<color_links_dir>/green``) naming the release that colour runs.
In order, under the deploy root's lock (so no deploy or release change runs meanwhile)::

    choose the release (an id, or the previous one) -> find the colour whose link names it
    -> blue_green switch to that colour (health check, nginx -t, reload, verify; unchanged if already active)
    -> point ``current`` at the release (atomic rename) and record the previous one

Nothing is changed when the release is unknown, no colour runs it or that colour fails its health check.
This is the fast rollback: right after a deploy the old colour still runs the previous release.
"""

from __future__ import annotations

import os

from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import (
    BlueGreenError,
    read_state,
    switch,
)
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_params import COLORS
from ansible_collections.stackops.platform.plugins.module_utils.release_layout import (
    deploy_lock,
    read_layout,
    switch_current,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    ReleaseError,
    rollback_target,
    validate_release_id,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_view import read_link

PREVIOUS = "previous"


def choose_release(layout, release):
    """The release id to put live: ``previous`` or an existing id; ReleaseError names a bad one."""
    if release != PREVIOUS:
        validate_release_id(release)
    named = None if release == PREVIOUS else release
    return rollback_target(layout["current"], layout["previous"], layout["releases"], named)


def choose_color(links, target, active):
    """The colour whose link names ``target``; the active one when both do. None when neither does."""
    running = [color for color in COLORS if links[color]["release_id"] == target]
    if not running:
        return None
    return active if active in running else running[0]


def describe_links(links):
    return ", ".join(f"{links[c]['path']} -> {links[c]['target'] or 'missing'}" for c in COLORS)


def cutover(params, run, check_mode=False, **hooks):
    """Switch nginx to the colour that runs ``params['release']``, then move ``current`` to it."""
    root = os.path.abspath(params["release_path"])
    if not os.path.isdir(os.path.join(root, "releases")):
        raise ReleaseError(f"release_path {root} is not a deploy root (no releases/ directory)")
    lock = deploy_lock(root, params.get("release_lock_timeout") or 0)
    if check_mode:
        return _cutover_locked(root, params, run, True, hooks)
    with lock:
        return _cutover_locked(root, params, run, False, hooks)


def _cutover_locked(root, params, run, check_mode, hooks):
    layout = read_layout(root)
    target = choose_release(layout, params["release"])
    links_dir = params.get("color_links_dir") or "colors"
    links = {color: read_link(root, f"{links_dir}/{color}", layout["releases"]) for color in COLORS}
    state, _warning = read_state(params["state_file"]) if params.get("state_file") else (None, None)
    color = choose_color(links, target, (state or {}).get("active"))
    if color is None:
        raise BlueGreenError(
            f"no colour runs release {target} ({describe_links(links)}): point the idle colour at "
            f"{root}/releases/{target}, restart it, then run again. Nothing was changed.",
            release=target,
            color_found=False,
            current=layout["current"],
        )
    try:
        result = switch(dict(params, color=color), run, check_mode, **hooks)
    except BlueGreenError as exc:
        exc.details.update(release=target, color_found=True, current=layout["current"])
        raise
    moved = target != layout["current"]
    if moved and not check_mode:
        try:
            switch_current(root, target, layout["current"])
        except OSError as exc:
            raise BlueGreenError(
                f"nginx now serves {color} (release {target}) but {root}/current could not be moved from "
                f"{layout['current']}: {exc}. Run again to move it.",
                **{k: v for k, v in result.items() if k not in ("changed", "diff")},
            ) from exc
    result.update(
        changed=result["changed"] or moved,
        release=target,
        release_before=layout["current"],
        current_moved=moved,
        color_found=True,
    )
    return result
