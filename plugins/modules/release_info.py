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
  links:
    description:
      - Symlinks to report, as paths relative to O(path), for example C(colors/blue) and C(colors/green) for the
        links that point each blue-green colour at a release. Each is returned under RV(links) with the release
        it points at.
      - A name that is absolute or leaves O(path) (C(..)) fails, and so does an entry that exists but is not a
        symlink. A missing link is reported with RV(links.exists=false), not as an error.
    type: list
    elements: str
    default: []
    version_added: 0.1.0
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

- name: Which release does each blue-green colour run
  stackops.platform.release_info:
    path: /srv/shop
    links: [colors/blue, colors/green]
  register: shop_colors

- name: Show the colour that still runs the previous release
  ansible.builtin.debug:
    msg: >-
      {{ shop_colors.links | dict2items | selectattr('value.release_id', 'equalto', shop_colors.previous)
         | map(attribute='key') | list }}
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
links:
  description: One entry per name in O(links), keyed by that name.
  returned: success
  type: dict
  sample:
    colors/blue:
      path: /srv/shop/colors/blue
      exists: true
      target: /srv/shop/releases/20260219T101500Z
      release_id: 20260219T101500Z
  contains:
    path:
      description: Absolute path of the link.
      type: str
      returned: always
    exists:
      description: Whether the link exists.
      type: bool
      returned: always
    target:
      description: Absolute, normalised path the link points at; null when the link is missing.
      type: str
      returned: always
    release_id:
      description: Id of the complete release the link points at; null when it is missing, dangling or points
        anywhere else than a complete release under C(releases/).
      type: str
      returned: always
stale:
  description: Leftovers of interrupted runs (relative to O(path)); the next change removes them.
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError
from ansible_collections.stackops.platform.plugins.module_utils.release_view import info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            links=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    try:
        result = info(module.params["path"], module.params["links"])
    except ReleaseError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=f"cannot read deploy root {module.params['path']}: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
