#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release
short_description: Deploy, switch, roll back and remove Capistrano-style release directories
version_added: 0.1.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - Manages a deploy root (O(path)) laid out as C(releases/<id>/) (one directory per release),
    C(shared/) (files and directories shared by all releases) and C(current), a symlink to the active release.
  - O(state=deployed) builds C(releases/<id>) from O(src) (an archive or a directory already on the managed host,
    or with O(upload_dir) an archive on the controller, sent in the same task) under a temporary name
    C(releases/.<id>.tmp-<pid>), links O(shared_paths) into it, writes C(.release-meta) and renames it into place
    once complete. With O(activate=true) (the default) it then switches C(current) and
    prunes old releases (O(keep_releases)).
  - The switch is atomic. A new symlink is created under a temporary name and renamed over C(current) with a
    single C(rename) system call, and the directory is fsynced (never C(ln -sfn)). C(current) therefore always
    points at a complete release, even when a deploy is killed halfway. Leftover temporary entries never count
    as releases and are removed by the next run (RV(cleaned)).
  - After each switch the release that C(current) pointed at before is recorded as the previous release in
    C(<path>/.release-state). Rollback and pruning use that record and release id order, never modification
    times. Without a usable record, the previous release is the highest release id below the current one.
  - One change per deploy root at a time. Changes hold an exclusive C(flock) on C(<path>/.deploy.lock). The lock
    file names the holder (pid, host, user, started_at). When another run holds it, the module fails at once
    naming the holder, or waits up to O(lock_timeout) seconds.
  - Invalid input (bad O(release_id), missing O(src), checksum mismatch, corrupt or unsafe archive, unknown
    release) fails before anything is written.
  - With O(color_state_file) the same call also points the idle blue/green colour's link C(<path>/colors/<idle>) at the
    release built with O(activate=false), as M(stackops.platform.release_color) would in a task of its own.
options:
  path:
    description:
      - The deploy root. It is created for the first O(state=deployed).
    type: path
    required: true
  state:
    description:
      - V(deployed) builds the release O(release_id) from O(src) if it does not exist yet, then (with O(activate))
        switches C(current) to it and prunes old releases.
      - V(activated) switches C(current) to the existing release O(release_id). Use it after
        O(state=deployed) with O(activate=false) for a blue-green style cut-over.
      - V(rolled_back) switches C(current) to the previous release (the one C(current) pointed at before the
        latest switch), or to O(release_id) when given. Rolling back twice returns to where you started.
      - V(absent) removes the release O(release_id). The current release is never removed.
      - V(failed) marks the existing release O(release_id) failed in its C(.release-meta) (C(status), C(failed_at),
        C(failed_reason) from O(reason)); the current release is never marked. A failed release never counts
        towards O(keep_releases) and is removed by the next prune unless it is the current, previous or deployed
        one. The mark is cleared when C(current) is switched to the release.
    type: str
    choices: [deployed, activated, rolled_back, absent, failed]
    default: deployed
  src:
    description:
      - Required with O(state=deployed). The artifact on the managed host. It is either an archive (C(.tar.gz),
        C(.tgz), C(.tar), C(.tar.bz2), C(.tar.xz) or C(.zip), recognised by content) extracted into the release,
        or a directory copied into the release (symlinks are copied as symlinks).
      - With O(upload_dir), an archive file on the controller instead (a relative path is looked up like
        M(ansible.builtin.copy)'s, in the role's or playbook's C(files/)). A directory is not allowed then.
      - Archives are checked before anything is written. Members with absolute paths, C(..) components,
        links pointing outside the release, or device files are refused, and so is a corrupt archive.
      - Archive content is extracted as is, unless O(strip_components) is set.
    type: path
  strip_components:
    description:
      - With an archive O(src), remove this many leading path components from every member, like
        C(tar --strip-components), so an archive holding one top directory (C(app-1.2.0/app/...)) builds the
        release from that directory's content without unpacking it on the host first.
      - Stricter than tar. Every member must lie under the same top directories. A file, link or hard-link
        target with no path left after stripping is refused, not silently dropped. Paths and link targets are
        checked as they land in the release, so a link that stays inside the archive but would leave the
        stripped release is refused too.
      - The value is recorded in C(.release-meta). Redeploying an existing release id with another value fails.
      - V(0) extracts members as they are. Not allowed with a directory O(src).
    type: int
    default: 0
    version_added: 0.2.0
  sha256:
    description:
      - Expected SHA-256 of the archive O(src) (64 hex digits, an optional C(sha256:) prefix is accepted).
        On mismatch the module fails naming the file and both checksums, and changes nothing.
      - Not allowed when O(src) is a directory. A digest of the directory tree is then recorded instead.
      - Required with O(upload_dir). The upload is checked against it on the managed host, so a different
        controller file and a damaged transfer are both refused before anything is placed or built. (It is not
        worked out on the controller, which would hash the archive again for every host.)
    type: str
  upload_dir:
    description:
      - Send the archive O(src) from the controller and keep a copy in this directory on the managed host, in the
        same task that builds the release (one transfer into the remote temporary directory and one module run,
        instead of M(ansible.builtin.copy) followed by this module).
      - On the host the module checks the upload against O(sha256) first, then the archive and the plan as for any
        archive O(src). Only then it places the copy C(<upload_dir>/<file name of src>) atomically (temporary
        name in the same directory, fsync, rename), mode 0600, owned by the user the module runs as (use
        C(become) for root), and builds the release from the checked upload. C(.release-meta) records the copy
        as the release's C(source), so later tasks (for example O(state=deployed) with O(activate=true), or
        hosts that build from it) pass that path as O(src).
      - The directory is created with mode 0700 when missing (an existing one is left as it is). A copy already
        there with the same content, mode 0600 and owner is left alone. A different one is replaced, even when
        the release itself already exists (then only the copy changes, and the task reports changed).
      - The file is sent on every run, without a remote C(stat) first. In check mode nothing is sent or written.
        An existing copy with the expected O(sha256) is then checked as the archive would be, else the plan
        comes from O(sha256) alone.
      - Absolute path. Only with O(state=deployed), and O(sha256) is required. Not with C(async).
    type: path
    version_added: 0.2.0
  release_id:
    description:
      - Name of the release directory under C(releases/). Letters, digits, C(.), C(_), C(+) and C(-), at most
        128 characters, starting with a letter or digit, no C(..).
      - Release ids are ordered as strings for pruning, so use ids that sort in deploy order.
      - Defaults to the current UTC time as C(YYYYMMDDTHHMMSSZ) (for example C(20260220T051228Z)) for
        O(state=deployed). Set it explicitly (for example to a version or build number) for idempotent runs.
        Redeploying an existing id with an artifact of the same sha256 changes nothing. With a different sha256
        the module fails, because releases are immutable.
      - Required with O(state=activated) and O(state=absent). Optional with O(state=rolled_back).
    type: str
  shared_paths:
    description:
      - Paths, relative to the release, that are symlinks into C(<path>/shared/) instead of release content,
        for example V(.env), V(logs/), V(storage/).
      - A trailing C(/) marks a directory. A missing shared entry is created in C(shared/), as an empty
        directory for names ending in C(/) and as an empty file (mode 0640) for other names. Existing entries
        in C(shared/) are never modified.
      - Anything the artifact holds at such a path is replaced by the symlink. Links are relative
        (C(../../shared/logs)), so the deploy root can be moved.
    type: list
    elements: str
    default: []
  keep_releases:
    description:
      - With O(state=deployed), how many releases to keep. The good releases with the highest ids are kept, and so
        are the current release, the previous release and the release just deployed, so more may be kept.
      - Releases marked failed (O(state=failed)) are not counted and are pruned first, so failed deploys never push
        good releases out. Nor is a release built with O(activate=false) counted (it has not gone live yet).
      - V(0) never prunes.
    type: int
    default: 5
  activate:
    description:
      - With O(state=deployed), whether to switch C(current) to the release. V(false) only builds it, for blue-green
        (test it, then use O(state=activated)). C(current) is left untouched.
    type: bool
    default: true
  version:
    description:
      - Application version recorded in C(.release-meta).
    type: str
  git_sha:
    description:
      - Git commit recorded in C(.release-meta).
    type: str
  deployed_by:
    description:
      - Who deployed, recorded in C(.release-meta). Defaults to C($SUDO_USER), or else the user the module runs as
        (the remote user).
    type: str
  reason:
    description:
      - With O(state=failed), why the release failed (recorded as C(failed_reason) in C(.release-meta)).
    type: str
    version_added: 0.2.0
  lock_timeout:
    description:
      - Seconds to wait for the deploy lock held by another run. V(0) fails at once.
    type: float
    default: 0
  color_state_file:
    description:
      - The state file of M(stackops.platform.blue_green) for the app (for example
        C(/var/lib/stackops/blue_green/<app>.json)). Set, the task also does what M(stackops.platform.release_color)
        does with O(stackops.platform.release_color#module:color=idle) and the release as
        O(stackops.platform.release_color#module:release_path), in the same module call. Once the release is built
        (or found built already) the link of the idle colour (the one nginx does not serve), C(<path>/colors/<idle>),
        is pointed at it. The shared code of M(stackops.platform.release_color) does it, with the same deploy lock,
        the same atomic rename and the same refusals. RV(colors) reports the colours.
      - The colours are read before anything is written. An unusable state file or a colour link that is not a
        symlink fails the task naming it, with nothing changed.
      - When the link step still fails after the release was built (the state file or a colour link changed
        meanwhile, the lock, an I/O error), the task fails with that error, and the colour link is unchanged. The
        release stays built. It is harmless, because nothing links to it or serves it. The failure result still
        holds RV(release_id), RV(release_path), RV(current), RV(previous) and RV(releases), so a rescue can mark
        the release failed (O(state=failed)).
      - In check mode the release is not built, so the colours are only read (RV(colors.color), RV(colors.before)
        and RV(colors.after) are null).
      - Only with O(state=deployed) and O(activate=false). With O(activate=true) the task is refused before anything
        is written. The idle colour is for a release that does not serve yet, and C(current) moves only after nginx
        switched to that colour (O(state=activated), or O(state=deployed) again with O(activate=true)).
    type: path
    version_added: 0.2.0
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on
      the controller.
    support: full
    details: With O(upload_dir) the action plugin sends O(src) from the controller. Without it the module runs
      as it is (O(src) on the managed host).
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Checks O(src) (checksum, archive integrity and member paths) and reports what would change;
      writes nothing, does not even create the lock file. With O(upload_dir) nothing is sent (see there). With
      O(color_state_file) the colours are only read.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Before and after of the C(current) target and the list of releases, with O(upload_dir) of the
      cached archive (path and sha256), and with O(color_state_file) of the idle colour's link.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - C(.release-meta) in each release is JSON with C(id), C(created_at) (UTC), C(sha256) (of the archive, or of the
    directory tree), C(source), C(source_type), C(version), C(git_sha), C(deployed_by), C(shared_paths) and
    C(strip_components).
  - A directory under C(releases/) without a readable C(.release-meta) is not a release. It is never pruned,
    never selected, and deploying that id fails.
  - Files are created as the user the module runs as. Set ownership afterwards (for example with
    M(ansible.builtin.file)) if the application runs as another user.
seealso:
  - module: stackops.platform.release_info
  - module: stackops.platform.release_color
  - module: stackops.platform.blue_green
  - name: ansistrano deploy
    description: The release/shared/current layout this module follows.
    link: https://github.com/ansistrano/deploy
"""

EXAMPLES = r"""
- name: Deploy version 1.4.2 of shop and switch current to it
  stackops.platform.release:
    path: /srv/shop
    src: /tmp/shop-1.4.2.tar.gz
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    release_id: "1.4.2"
    version: 1.4.2
    git_sha: 3b18e512dba79e4c8300dd08aeb37f8e728b8dad
    shared_paths:
      - .env
      - logs/
      - storage/
    keep_releases: 5
  register: shop_release

- name: Deploy an archive that holds one top directory (shop-1.4.3/...) without unpacking it first
  stackops.platform.release:
    path: /srv/shop
    src: /tmp/shop-1.4.3.tar.gz
    strip_components: 1
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    release_id: "1.4.3"

- name: Send the archive from the controller, keep it in /var/cache/shop and build the release (one task)
  stackops.platform.release:
    path: /srv/shop
    src: build/shop-1.4.4.tar.gz
    upload_dir: /var/cache/shop
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    strip_components: 1
    release_id: "1.4.4"
    activate: false
  become: true

- name: Later, switch current to it, building from the copy the upload left on the host
  stackops.platform.release:
    path: /srv/shop
    src: /var/cache/shop/shop-1.4.4.tar.gz
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    strip_components: 1
    release_id: "1.4.4"
  become: true

- name: Build a release without switching (blue-green)
  stackops.platform.release:
    path: /srv/shop
    src: /tmp/shop-1.5.0.zip
    release_id: "1.5.0"
    activate: false

- name: Send and build a release and point the idle blue/green colour at it, in one task
  stackops.platform.release:
    path: /srv/shop
    src: build/shop-1.5.1.tar.gz
    upload_dir: /var/cache/shop
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    release_id: "1.5.1"
    activate: false
    color_state_file: /var/lib/stackops/blue_green/shop.json
  become: true
  register: shop_release

- name: Restart the idle colour, which runs the new release now
  ansible.builtin.systemd_service:
    name: "shop@{{ shop_release.colors.idle }}.service"
    state: restarted
  become: true

- name: Switch current to the tested release
  stackops.platform.release:
    path: /srv/shop
    state: activated
    release_id: "1.5.0"

- name: Roll back to the release that was current before
  stackops.platform.release:
    path: /srv/shop
    state: rolled_back

- name: Roll back to a named release
  stackops.platform.release:
    path: /srv/shop
    state: rolled_back
    release_id: "1.4.2"

- name: Remove a broken release (never the current one)
  stackops.platform.release:
    path: /srv/shop
    state: absent
    release_id: "1.5.0"
"""

RETURN = r"""
release_id:
  description: The release built or selected (for V(rolled_back), the release rolled back to).
  returned: success
  type: str
  sample: 20260220T051228Z
release_path:
  description: Absolute path of that release.
  returned: success
  type: str
  sample: /srv/shop/releases/20260220T051228Z
current:
  description: Id of the release C(current) points at after the task (null when none).
  returned: always
  type: str
  sample: 20260220T051228Z
previous:
  description: Id of the release C(current) pointed at before the latest switch (null when none).
  returned: always
  type: str
  sample: 20260219T101500Z
releases:
  description: Ids of all complete releases after the task, sorted by id.
  returned: always
  type: list
  elements: str
  sample: [20260219T101500Z, 20260220T051228Z]
pruned:
  description: Ids of releases removed by O(keep_releases).
  returned: always
  type: list
  elements: str
  sample: [20260101T000000Z]
cleaned:
  description: Leftovers of interrupted runs (relative to O(path)) removed (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [releases/.20260220T051228Z.tmp-4242]
archive:
  description: With O(upload_dir), the copy of the archive on the managed host.
  returned: when O(upload_dir) is set
  type: dict
  contains:
    path:
      description: Where the copy is, C(<upload_dir>/<file name of src>).
      type: str
      sample: /var/cache/shop/shop-1.4.4.tar.gz
    sha256:
      description: Its SHA-256 (the checked O(sha256)).
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    placed:
      description: Whether the copy was written (in check mode, would be), because it was missing or differed.
      type: bool
      sample: true
colors:
  description: With O(color_state_file), the blue/green colours (what M(stackops.platform.release_color) returns).
  returned: when O(color_state_file) is set
  type: dict
  version_added: 0.2.0
  contains:
    active:
      description: The colour nginx serves (from O(color_state_file); V(blue) when there is none yet).
      type: str
      sample: blue
    idle:
      description: The other colour, the one whose link points at the release.
      type: str
      sample: green
    recorded:
      description: Whether O(color_state_file) exists, that is a switch has recorded what nginx serves (else
        RV(colors.active) is blue by convention).
      type: bool
      sample: true
    links:
      description: Each colour's link target (absolute), C('') when the link does not exist; after the change.
      type: dict
      sample: {blue: /srv/shop/releases/20260219T101500Z, green: /srv/shop/releases/20260220T051228Z}
    color:
      description: The colour whose link was moved (or found in place); null in check mode (only read).
      type: str
      sample: green
    before:
      description: What that link named before (C('') when there was no link); null in check mode.
      type: str
      sample: /srv/shop/releases/20260218T090000Z
    after:
      description: What that link names now (the release); null in check mode.
      type: str
      sample: /srv/shop/releases/20260220T051228Z
lock_holder:
  description: On lock contention, the holder recorded in the lock file (pid, host, user, started_at).
  returned: failure because of the lock
  type: dict
  sample: {pid: 4242, host: web1, user: deploy, started_at: "2026-02-20T05:12:28Z"}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.release_core import run
from ansible_collections.stackops.platform.plugins.module_utils.release_names import (
    STATES,
    ReleaseError,
    default_deployed_by,
)


def argument_spec():
    return dict(
        path=dict(type="path", required=True),
        state=dict(type="str", default="deployed", choices=list(STATES)),
        src=dict(type="path"),
        strip_components=dict(type="int", default=0),
        sha256=dict(type="str"),
        release_id=dict(type="str"),
        shared_paths=dict(type="list", elements="str", default=[]),
        keep_releases=dict(type="int", default=5),
        activate=dict(type="bool", default=True),
        version=dict(type="str"),
        git_sha=dict(type="str"),
        deployed_by=dict(type="str"),
        lock_timeout=dict(type="float", default=0),
        reason=dict(type="str"),
        upload_dir=dict(type="path"),
        color_state_file=dict(type="path"),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[
            ("state", "deployed", ("src",)),
            ("state", "activated", ("release_id",)),
            ("state", "absent", ("release_id",)),
            ("state", "failed", ("release_id",)),
        ],
        required_by={"upload_dir": ("sha256",)},
        supports_check_mode=True,
    )
    params = dict(module.params)
    if params["state"] == "deployed" and not params["deployed_by"]:
        params["deployed_by"] = default_deployed_by()
    # An empty string is not "unset": validate it instead of falling back to a default.
    if params["release_id"] is not None and params["release_id"] == "":
        module.fail_json(msg="release_id must not be empty; omit it to use a UTC timestamp id")
    if params["color_state_file"] is not None and params["color_state_file"] == "":
        module.fail_json(msg="color_state_file must not be empty; omit it to leave the colour links alone")
    try:
        result = run(params, check_mode=module.check_mode)
    except ReleaseError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(
            msg=f"release {params['state']} in {params['path']} failed: {exc}", exception=traceback.format_exc()
        )
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
