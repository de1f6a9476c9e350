#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_color
short_description: Read the blue/green colours of a deploy root and point the idle colour at a release
version_added: 0.2.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - A deploy root managed by M(stackops.platform.release) holds one symlink per colour,
    C(<path>/colors/blue) and C(<path>/colors/green), each naming a release C(<path>/releases/<id>). The unit of
    a colour runs in its link. M(stackops.platform.blue_green) records in its O(state_file) which colour nginx
    serves.
  - In one call, this module reads the state file (the active colour; V(blue) when the file does not exist yet)
    and both colour links. With O(release_path) it then points a colour link (by default the idle one) at that
    release. It returns the active and the idle colour and what the link named before, for the rescue path.
  - A link moves atomically. A new symlink is renamed over the old one with one C(rename) system call, under
    the deploy root's lock (C(<path>/.deploy.lock), shared with M(stackops.platform.release)).
  - Refused, changing nothing. An unusable state file. A colour link that is not a symlink. A O(release_path)
    that is not a complete release of O(path). Moving the link of the colour nginx serves.
options:
  path:
    description:
      - The deploy root.
    type: path
    required: true
  state_file:
    description:
      - The state file of M(stackops.platform.blue_green) for the app, for example
        C(/var/lib/stackops/blue_green/<app>.json).
    type: path
    required: true
  release_path:
    description:
      - The release to point the colour at, C(<path>/releases/<id>). It must be a complete release (with
        C(.release-meta)).
      - Omitted, the module only reads.
    type: path
  color:
    description:
      - The colour link to move. V(idle) is the colour nginx does not serve. Moving the active colour's link is
        refused.
    type: str
    choices: [idle, blue, green]
    default: idle
  lock_timeout:
    description:
      - Seconds to wait for the deploy lock held by another run. V(0) fails at once, naming the holder.
    type: float
    default: 0
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The colour link's target before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
seealso:
  - module: stackops.platform.release
  - module: stackops.platform.blue_green
"""

EXAMPLES = r"""
- name: Point the idle colour at the new release
  stackops.platform.release_color:
    path: /srv/shop
    state_file: /var/lib/stackops/blue_green/shop.json
    release_path: /srv/shop/releases/20260220T051228Z
  register: shop_colors

- name: Put the idle colour back on the release it ran before (rescue)
  stackops.platform.release_color:
    path: /srv/shop
    state_file: /var/lib/stackops/blue_green/shop.json
    color: "{{ shop_colors.color }}"
    release_path: "{{ shop_colors.before }}"
  when: shop_colors.before | length > 0

- name: Read which colour serves and what each colour runs
  stackops.platform.release_color:
    path: /srv/shop
    state_file: /var/lib/stackops/blue_green/shop.json
  register: shop_colors
"""

RETURN = r"""
active:
  description: The colour nginx serves (from O(state_file)).
  returned: success
  type: str
  sample: blue
recorded:
  description: Whether O(state_file) exists, that is a switch has recorded what nginx serves (else RV(active) is blue
    by convention).
  returned: success
  type: bool
  sample: true
idle:
  description: The other colour.
  returned: success
  type: str
  sample: green
links:
  description: Each colour's link target (absolute), C('') when the link does not exist; after the change.
  returned: success
  type: dict
  sample: {blue: /srv/shop/releases/20260219T101500Z, green: /srv/shop/releases/20260220T051228Z}
color:
  description: The colour whose link was (or would be) moved; null when only reading.
  returned: success
  type: str
  sample: green
before:
  description: What that link named before (C('') when there was no link); null when only reading.
  returned: success
  type: str
  sample: /srv/shop/releases/20260218T090000Z
after:
  description: What that link names now; null when only reading.
  returned: success
  type: str
  sample: /srv/shop/releases/20260220T051228Z
lock_holder:
  description: On lock contention, the holder recorded in the lock file (pid, host, user, started_at).
  returned: failure because of the lock
  type: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.release_colors import link
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state_file=dict(type="path", required=True),
            release_path=dict(type="path"),
            color=dict(type="str", default="idle", choices=["idle", "blue", "green"]),
            lock_timeout=dict(type="float", default=0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["release_path"] is not None and params["release_path"] == "":
        module.fail_json(msg="release_path must not be empty; omit it to only read the colours")
    try:
        result = link(
            params["path"],
            params["state_file"],
            params["color"],
            params["release_path"],
            check_mode=module.check_mode,
            lock_timeout=params["lock_timeout"],
        )
    except ReleaseError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=f"colour link in {params['path']} failed: {exc}", exception=traceback.format_exc())
    if module._diff and result["color"]:
        result["diff"] = {
            "before": f"{result['color']}: {result['before']}\n",
            "after": f"{result['color']}: {result['after']}\n",
            "before_header": f"colors/{result['color']}",
            "after_header": f"colors/{result['color']}",
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
