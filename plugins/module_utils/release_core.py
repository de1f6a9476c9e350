# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capistrano-style release directories: deploy, activate, roll back, remove (release).

The decisions are in release_names, archives in release_archive, the deploy root on disk in release_layout, the
archive uploaded from the controller (upload_dir) in release_upload, the blue/green colour links (color_state_file)
in release_colors, the read-only report (release_info) in release_view; this file puts them together under the
deploy lock, with check mode and diffs.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil

from ansible_collections.stackops.platform.plugins.module_utils import release_colors
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import fsync_dir
from ansible_collections.stackops.platform.plugins.module_utils.release_archive import (
    extract_archive,
    inspect_archive,
    sha256_file,
    tree_digest,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_layout import (
    deploy_lock,
    failed_releases,
    fsync_tree,
    read_layout,
    read_meta,
    remove_entry,
    remove_release,
    require_root,
    set_status,
    stale_entries,
    switch_current,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    FAILED_STATUS,
    META_FILE,
    RELEASES_DIR,
    SHARED_DIR,
    STATES,
    UTC,
    ReleaseError,
    default_deployed_by,
    default_release_id,
    kill_point,
    normalize_sha256,
    normalize_shared_paths,
    rollback_target,
    select_prune,
    validate_release_id,
    validate_strip_components,
)
from ansible_collections.stackops.platform.plugins.module_utils.release_upload import place_upload, prepare_upload

# ---------------------------------------------------------------- operations


def _diff(before, after):
    def render(layout):
        lines = [f"current: {layout['current'] or ''}", "releases:"]
        lines.extend(f"  - {r}" for r in layout["releases"])
        return "\n".join(lines) + "\n"

    return {"before": render(before), "after": render(after), "before_header": "releases", "after_header": "releases"}


def _result(root, before, after, release_id, changed, *, pruned=(), cleaned=(), upload=None):
    result = {
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
    if upload is not None:
        result["archive"] = upload.result()
        result["diff"]["before"] += upload.describe(after=False)
        result["diff"]["after"] += upload.describe(after=True)
    return result


def _root(params):
    root = params.get("path")
    if not root:
        raise ReleaseError("path (the deploy root) is required")
    root = os.path.abspath(root)
    if os.path.lexists(root) and not os.path.isdir(root):
        raise ReleaseError(f"path {root} exists and is not a directory")
    return root


def _prepare_source(params, strip, verified=None):
    """Validate src (read-only). Return (src, kind, archive kind or None, digest).

    ``verified``: the sha256 src is known to have (checked against params' sha256 already), so not hashed again.
    """
    src = params.get("src")
    if not src:
        raise ReleaseError("src is required for state=deployed: an archive (tar.gz, tgz, tar, zip) or a directory")
    src = os.path.abspath(src)
    expected = normalize_sha256(params.get("sha256"))
    if os.path.isdir(src):
        if expected:
            raise ReleaseError(f"sha256 applies to an archive src only; {src} is a directory")
        if strip:
            raise ReleaseError(f"strip_components={strip} applies to an archive src only; {src} is a directory")
        return src, "directory", None, tree_digest(src)
    if not os.path.isfile(src):
        raise ReleaseError(f"src {src} does not exist (expected an archive or a directory on the managed host)")
    actual = verified or sha256_file(src)
    if expected and actual != expected:
        raise ReleaseError(
            f"checksum mismatch for {src}: expected sha256 {expected}, got {actual}; nothing was changed",
            expected_sha256=expected,
            actual_sha256=actual,
        )
    kind = inspect_archive(src, strip)
    return src, "archive", kind, actual


def _plan_deploy(root, release_id, digest, activate, keep, *, strip=0):
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
        if meta.get("strip_components", 0) != strip:
            raise ReleaseError(
                f"release {release_id} already exists at {rpath}, built with strip_components="
                f"{meta.get('strip_components', 0)}, not {strip}; use a new release_id (releases are immutable)"
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
    # Failed releases (status in .release-meta) never count towards keep_releases: see select_prune. Nor does a
    # release built without going live (activate=false): it has not proven itself yet, and it may still fail.
    failed = failed_releases(root, before["releases"])
    if current != release_id:
        failed.append(release_id)
    pruned = select_prune(releases, keep, {current, previous, release_id} - {None}, failed)
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
        remove_entry(link)
        final_parent = os.path.dirname(os.path.join(final_dir, rel))
        os.symlink(os.path.relpath(os.path.join(root, SHARED_DIR, rel), final_parent), link)


def _build_release(root, release_id, params, *, src, source_type, kind, digest, shared, now, strip=0, recorded=None):
    rdir = os.path.join(root, RELEASES_DIR)
    build_dir = os.path.join(rdir, f".{release_id}.tmp-{os.getpid()}")
    os.mkdir(build_dir, 0o755)
    try:
        if source_type == "directory":
            shutil.copytree(src, build_dir, symlinks=True, dirs_exist_ok=True)
        else:
            extract_archive(src, build_dir, kind, strip)
        kill_point("extracted")
        _link_shared(root, build_dir, release_id, shared)
        meta = {
            "id": release_id,
            "created_at": (now or datetime.datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sha256": digest,
            "source": recorded or src,
            "source_type": source_type if source_type == "directory" else f"archive ({kind})",
            "version": params.get("version"),
            "git_sha": params.get("git_sha"),
            "deployed_by": params.get("deployed_by") or default_deployed_by(),
            "shared_paths": [rel + ("/" if is_dir else "") for rel, is_dir in shared],
            "strip_components": strip,
        }
        with open(os.path.join(build_dir, META_FILE), "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.write("\n")
        fsync_tree(build_dir)
        kill_point("built")
        os.rename(build_dir, os.path.join(rdir, release_id))
    except BaseException:
        if os.path.lexists(build_dir):
            shutil.rmtree(build_dir, ignore_errors=True)
        raise
    fsync_dir(rdir)
    kill_point("renamed")


def deploy(params, check_mode=False, now=None):
    root = _root(params)
    release_id = validate_release_id(params.get("release_id") or default_release_id(now))
    shared = normalize_shared_paths(params.get("shared_paths"))
    keep = int(params.get("keep_releases") if params.get("keep_releases") is not None else 5)
    if keep < 0:
        raise ReleaseError(f"keep_releases {keep} must be 0 (never prune) or more")
    activate = params.get("activate", True) is not False
    strip = validate_strip_components(params.get("strip_components"))
    # With upload_dir: src is the upload (checked against sha256 here), the release records the cached copy.
    upload = prepare_upload(params, check_mode)
    if upload is None:
        src, source_type, kind, digest = _prepare_source(params, strip)
    elif upload.source is None:  # check mode, no cached copy to check: the plan from sha256 alone
        src, source_type, kind, digest = None, "archive", None, upload.sha256
    else:
        src, source_type, kind, digest = _prepare_source(dict(params, src=upload.source), strip, upload.sha256)
    placing = upload is not None and upload.place
    before, after, build, switch, pruned = _plan_deploy(root, release_id, digest, activate, keep, strip=strip)
    stale = stale_entries(root)
    if check_mode:
        changed = build or switch or bool(pruned) or bool(stale) or placing
        return _result(root, before, after, release_id, changed, pruned=pruned, cleaned=stale, upload=upload)

    os.makedirs(root, exist_ok=True)
    with deploy_lock(root, params.get("lock_timeout")):
        stale = stale_entries(root)
        for entry in stale:
            remove_entry(os.path.join(root, entry))
        # Plan again under the lock: another deploy may have finished meanwhile.
        before, after, build, switch, pruned = _plan_deploy(root, release_id, digest, activate, keep, strip=strip)
        if placing:  # the plan holds: cache the archive for later tasks (and hosts that build from it)
            place_upload(upload)
        os.makedirs(os.path.join(root, RELEASES_DIR), exist_ok=True)
        if build:
            _ensure_shared(root, shared)
            _build_release(
                root,
                release_id,
                params,
                src=src,
                source_type=source_type,
                kind=kind,
                digest=digest,
                shared=shared,
                now=now,
                strip=strip,
                recorded=upload.target if upload else None,
            )
        if switch:
            switch_current(root, release_id, before["current"])
            set_status(root, release_id, None)  # live now: a failed mark of an earlier attempt no longer holds
        for rid in pruned:
            remove_release(root, rid)
        after = read_layout(root)
    changed = build or switch or bool(pruned) or bool(stale) or placing
    return _result(root, before, after, release_id, changed, pruned=pruned, cleaned=stale, upload=upload)


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
            set_status(root, target, None)
        after = read_layout(root)
    return _result(root, before, after, target, switch)


def rollback(params, check_mode=False):
    root = _root(params)
    require_root(root)

    def target(layout):
        return rollback_target(layout["current"], layout["previous"], layout["releases"], params.get("release_id"))

    return _switch_to(root, params, check_mode, target)


def activate_release(params, check_mode=False):
    root = _root(params)
    require_root(root)
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
            remove_release(root, release_id)
        after = read_layout(root)
    return _result(root, before, after, release_id, present)


def mark_failed(params, check_mode=False):
    """state=failed: record in the release's .release-meta that it failed, so pruning never counts it."""
    root = _root(params)
    require_root(root)
    release_id = params.get("release_id")
    if not release_id:
        raise ReleaseError("state=failed needs release_id: the release that failed")
    validate_release_id(release_id)
    reason = params.get("reason") or None

    def plan():
        before = read_layout(root)
        if release_id not in before["releases"]:
            raise ReleaseError(
                f"release {release_id!r} does not exist; available releases: {', '.join(before['releases']) or 'none'}"
            )
        if release_id == before["current"]:
            raise ReleaseError(
                f"refusing to mark release {release_id} failed: it is the current release; roll back or activate "
                "another release first"
            )
        meta = read_meta(os.path.join(root, RELEASES_DIR, release_id))
        return before, not (meta.get("status") == FAILED_STATUS and meta.get("failed_reason") == reason)

    before, change = plan()
    if check_mode or not change:
        return _result(root, before, before, release_id, change)
    with deploy_lock(root, params.get("lock_timeout")):
        before, change = plan()
        if change:
            set_status(root, release_id, FAILED_STATUS, reason)
        after = read_layout(root)
    return _result(root, before, after, release_id, change)


def deploy_to_idle_color(params, check_mode=False):
    """state=deployed with color_state_file: build the release, then point the idle colour's link at it.

    One call instead of release then release_color: the colours are read first (an unusable state file or a
    colour link that is not a symlink is refused before anything is written), the release is built (activate=false),
    then release_colors.link points the idle colour at it under the deploy lock. In check mode nothing is built,
    so the colours are only read. When the link step fails after the build, the release stays built (nothing links
    to it) and the ReleaseError carries the release's keys, so a rescue can mark it failed.
    """
    root = _root(params)
    state_file = params["color_state_file"]
    lock_timeout = params.get("lock_timeout")
    # Read (and refuse) before anything is written; in check mode that is all.
    colors = release_colors.plan(root, state_file)
    result = deploy(params, check_mode)
    if not check_mode:
        try:
            colors = release_colors.link(
                root, state_file, "idle", result["release_path"], check_mode=False, lock_timeout=lock_timeout
            )
        except (ReleaseError, OSError) as exc:
            why = exc.msg if isinstance(exc, ReleaseError) else str(exc)
            details = dict(exc.details) if isinstance(exc, ReleaseError) else {}
            details.update({k: result[k] for k in ("release_id", "release_path", "current", "previous", "releases")})
            raise ReleaseError(
                f"release {result['release_id']} is built at {result['release_path']}, but pointing the idle colour "
                f"at it failed: {why}",
                changed=result["changed"],
                **details,
            ) from None
    linked = colors.pop("changed")
    result["changed"] = result["changed"] or linked
    result["colors"] = colors
    if colors["color"]:
        result["diff"]["before"] += f"colors/{colors['color']}: {colors['before']}\n"
        result["diff"]["after"] += f"colors/{colors['color']}: {colors['after']}\n"
    return result


def run(params, check_mode=False):
    state = params.get("state") or "deployed"
    if params.get("upload_dir") and state != "deployed":
        raise ReleaseError(f"upload_dir applies to state=deployed only, not state={state}")
    if params.get("color_state_file") is not None:
        if state != "deployed":
            raise ReleaseError(f"color_state_file applies to state=deployed only, not state={state}")
        if params.get("activate", True) is not False:
            raise ReleaseError(
                "color_state_file points the idle colour at a release that does not serve yet: it needs "
                "activate=false (current moves later, after nginx switched to that colour)"
            )
        return deploy_to_idle_color(params, check_mode)
    if state == "deployed":
        return deploy(params, check_mode)
    if state == "rolled_back":
        return rollback(params, check_mode)
    if state == "activated":
        return activate_release(params, check_mode)
    if state == "absent":
        return remove(params, check_mode)
    if state == "failed":
        return mark_failed(params, check_mode)
    raise ReleaseError(f"state {state!r} is not one of {', '.join(STATES)}")
