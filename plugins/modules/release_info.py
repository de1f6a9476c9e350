#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_info
short_description: Read the releases, current and previous release of a deploy root
version_added: 0.1.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - Reports the state of a deploy root managed by M(stackops.platform.release). It lists the complete
    releases under C(releases/) with their C(.release-meta), the release C(current) points at, and the previous
    release (the one C(current) pointed at before the latest switch).
  - Read only, never changes anything and takes no lock.
  - Fails when O(path) does not exist or is not a deploy root (has no C(releases/) directory), so a typo in
    O(path) is not mistaken for an empty deploy root. To probe for a fresh host, use M(ansible.builtin.stat)
    on C(<path>/releases) first.
options:
  path:
    description:
      - The deploy root.
    type: path
    required: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Read only, so it runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: N/A
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
seealso:
  - module: stackops.platform.release
"""

EXAMPLES = r"""
- name: Read the releases of shop
  stackops.platform.release_info:
    path: /srv/shop
  register: shop_releases

- name: Show the release that serves
  ansible.builtin.debug:
    msg: "{{ shop_releases.current }} (previous {{ shop_releases.previous }})"
"""

RETURN = r"""
path:
  description: Absolute path of the deploy root.
  returned: success
  type: str
  sample: /srv/shop
current:
  description: Id of the release C(current) points at, null when C(current) is missing.
  returned: success
  type: str
  sample: 20260220T051228Z
current_path:
  description: Absolute path of the current release, null when none.
  returned: success
  type: str
  sample: /srv/shop/releases/20260220T051228Z
previous:
  description: Id of the previous release, null when none is known.
  returned: success
  type: str
  sample: 20260219T101500Z
releases:
  description: Complete releases sorted by id.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Release id.
      type: str
      returned: always
    path:
      description: Absolute path of the release directory.
      type: str
      returned: always
    metadata:
      description: Content of the release's C(.release-meta) (id, created_at, sha256, source, version, git_sha,
        deployed_by, shared_paths).
      type: dict
      returned: always
    is_current:
      description: Whether C(current) points at this release.
      type: bool
      returned: always
    is_previous:
      description: Whether this is the previous release.
      type: bool
      returned: always
stale:
  description: Leftovers of interrupted runs (relative to O(path)); the next change removes them.
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.release_core import ReleaseError, info


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
    try:
        result = info(module.params["path"])
    except ReleaseError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=f"cannot read deploy root {module.params['path']}: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
