#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: blue_green
short_description: Switch an app between its blue and green colour behind nginx, after a health check
version_added: 0.1.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - Each app runs two colours, C(blue) and C(green), each listening on its own C(host:port) (O(upstreams)).
    nginx proxies to the upstream C(<name>_backend), defined in O(upstream_file), an include file that this
    module owns and rewrites so that it names only the active colour.
  - A switch to O(color) first checks the target colour directly (not through nginx) until its health URL
    answers O(expected_status) O(healthy_threshold) times in a row, within O(health_timeout) seconds.
    If it does not, the module fails with the last status and body and changes nothing.
  - It then writes O(upstream_file) atomically (temporary file in the same directory, fsync, rename), runs
    C(nginx -t) and, if nginx rejects the configuration, puts the previous file content back and fails with
    nginx's error output. Otherwise it reloads nginx gracefully (C(nginx -s reload), a HUP to the master; old
    workers finish their requests, no connection is dropped), optionally checks O(verify_url) through nginx
    (restoring the previous file and reloading again if that fails), and finally records the active colour
    in O(state_file) (JSON, written atomically).
  - Switching back is the same call with the other colour. When O(color) is already active and the upstream
    file already has the right content, nothing is checked, written or reloaded (RV(ignore:changed=false)).
  - One switch per app at a time, serialised by an exclusive lock on C(<state_file>.lock).
  - With O(release) instead of O(color), the colour is the one that runs that release of a deploy root managed by
    M(stackops.platform.release) (O(release_path)), and after the switch C(current) is pointed at the release
    (atomic rename, previous release recorded, as M(stackops.platform.release) does). This puts a release live in
    one step; with O(release=previous) it is the fast rollback right after a deploy, when the old colour still
    runs the previous release. It holds the deploy root's lock throughout, so no deploy changes the tree
    meanwhile.
  - With O(routing_dir) the switch never reloads nginx (nginx's reload closes idle keep-alive client connections,
    which clients that do not retry see as errors). The nginx site routes each request through a symlink that
    nginx resolves per request (C(root <routing_dir>/split/slot$<name>_slot;), C(map $realpath_root) to the
    upstream C(<name>_blue) or C(<name>_green), C(proxy_pass http://$<name>_backend;)); the module renames
    C(<routing_dir>/split) onto a set of ten slot links in one atomic step, then verifies through nginx (renaming
    it back on failure). O(upstream_file) is then the api role's routing file, which the module only reads (it
    must name O(routing_dir)); the module never tests or reloads nginx in this mode.
  - With O(routing_dir), O(weight) routes only that share of requests to O(color) (canary), in steps of 10 %.
  - Standard library only (urllib); HTTP requests never use proxies from the environment.
options:
  name:
    description:
      - Name of the app. The nginx upstream is called C(<name>_backend); it also names the default
        O(upstream_file) and O(state_file).
      - Letters, digits, C(_) and C(-), at most 63 characters.
    type: str
    required: true
  color:
    description:
      - The colour that should serve traffic after this task.
      - Exactly one of O(color) and O(release) is required.
    type: str
    choices: [blue, green]
  release:
    description:
      - Put this release live instead of naming a colour. A release id under C(<release_path>/releases/), or
        C(previous) for the release C(current) pointed at before the latest switch (as
        M(stackops.platform.release) O(stackops.platform.release#module:state=rolled_back) chooses it).
      - The colour is the one whose link C(<release_path>/<color_links_dir>/<colour>) points at that release (the
        active one if both do). It is health-checked and switched to like O(color), then C(current) is moved.
      - Fails, changing nothing, when the release does not exist (the message lists the releases), when no colour
        runs it (RV(color_found=false); point the idle colour at it and restart it first) or when that colour is
        not healthy.
    type: str
  release_path:
    description:
      - The deploy root (managed by M(stackops.platform.release)). Required with O(release).
    type: path
  color_links_dir:
    description:
      - Directory, relative to O(release_path), holding one symlink per colour (C(blue), C(green)) to the release
        that colour runs.
    type: str
    default: colors
  release_lock_timeout:
    description:
      - With O(release), seconds to wait for the deploy root's lock held by another run (a deploy). C(0) fails
        at once, naming the holder.
    type: float
    default: 0
  upstreams:
    description:
      - Where each colour listens, as C(host:port) (host is a name, an IPv4 address or C([IPv6])).
      - Must have exactly the keys C(blue) and C(green), with different addresses.
    type: dict
    required: true
  upstream_file:
    description:
      - The nginx include file holding C(upstream <name>_backend { server <host:port>; keepalive N; }).
      - Include it in the C(http) context of the nginx configuration (Debian's default C(nginx.conf) includes
        C(/etc/nginx/conf.d/*.conf) there) and C(proxy_pass http://<name>_backend;) in the site.
      - Its directory must exist. Defaults to C(/etc/nginx/conf.d/<name>_upstream.conf).
    type: path
  state_file:
    description:
      - JSON file recording the active colour, the previous one, the upstream address and C(switched_at) (UTC).
      - Its directory is created if missing. Defaults to C(/var/lib/stackops/blue_green/<name>.json).
      - A missing file means the first switch; an unreadable one gives a warning, the active colour is then
        taken from O(upstream_file) and the file is rewritten.
    type: path
  keepalive:
    description:
      - Idle keepalive connections to the upstream per nginx worker (the C(keepalive) directive).
        C(0) leaves the directive out. Keepalive needs C(proxy_http_version 1.1;) and
        C(proxy_set_header Connection "";) in the site's C(location).
    type: int
    default: 32
  health_path:
    description:
      - Path requested on the target colour, as C(http://<host>:<port><health_path>).
      - When neither O(health_path) nor O(health_url) is set, C(/health) is used.
    type: str
  health_url:
    description:
      - Full health URL template instead of O(health_path), for https or another port. C({host}), C({port}) and
        C({color}) are replaced with the target colour's values, for example C(https://{host}:{port}/ready).
    type: str
  healthy_threshold:
    description:
      - Consecutive answers with O(expected_status) needed before the switch. Any other answer resets the count.
    type: int
    default: 3
  health_timeout:
    description:
      - Seconds the target colour has, in total, to become healthy.
    type: float
    default: 60
  health_interval:
    description:
      - Seconds between two health requests.
    type: float
    default: 1
  expected_status:
    description:
      - HTTP status that counts as healthy, for the health check and for O(verify_url).
    type: int
    default: 200
  verify_url:
    description:
      - URL through nginx, requested after the reload (for example C(http://127.0.0.1/health)). It must answer
        O(expected_status) within O(verify_timeout) seconds, otherwise the previous upstream file is restored,
        nginx reloaded again and the module fails.
    type: str
  verify_header:
    description:
      - With O(verify_url), the name of a response header the app sets to its colour (for example C(X-Color)).
        The verification then waits until that header equals O(color), which proves the new config is live.
    type: str
  verify_host:
    description:
      - With O(verify_url), the C(Host) header of its requests, for an nginx site chosen by C(server_name) (several
        apps on one nginx address and port).
    type: str
  verify_timeout:
    description:
      - Seconds O(verify_url) has to answer as expected after the reload.
    type: float
    default: 10
  nginx_binary:
    description:
      - nginx executable used to build the default test and reload commands.
    type: str
    default: nginx
  nginx_conf:
    description:
      - nginx main configuration file, passed as C(-c) to the default test and reload commands.
        Leave unset for the system nginx.
    type: path
  nginx_prefix:
    description:
      - nginx prefix directory, passed as C(-p) to the default test and reload commands.
    type: path
  nginx_test_cmd:
    description:
      - Command (argv list, no shell) that checks the configuration.
        Default C([nginx_binary, (-p nginx_prefix), (-c nginx_conf), -t, -q]).
    type: list
    elements: str
  nginx_reload_cmd:
    description:
      - Command (argv list, no shell) that reloads nginx gracefully.
        Default C([nginx_binary, (-p nginx_prefix), (-c nginx_conf), -s, reload]).
        Use C([systemctl, reload, nginx]) where systemd manages nginx.
    type: list
    elements: str
  routing_dir:
    description:
      - Directory of the symlink routing (for example C(/var/lib/stackops/routing/<name>)). When set, the switch
        renames symlinks there instead of rewriting O(upstream_file) and reloading nginx; O(upstream_file) must be
        the routing file written by the api role (it holds the line C(# stackops routing) followed by the
        routing directory), otherwise the module fails, changing nothing, and asks for one api role run (the
        one reload of the migration).
      - Its parent directory must exist. C(blue/), C(green/), C(sets/<pattern>/slot0..slot9) and C(split) are
        created in it as needed.
    type: path
    version_added: 0.2.0
  weight:
    description:
      - With O(routing_dir), the percentage of requests routed to O(color), in steps of 10 (0 to 100). The rest
        goes to the other colour. Default 100 (a full switch). C(0) means the other colour at 100 (a canary
        abort).
      - The health check runs when O(color)'s share grows. Below 100 the state file keeps the other colour as
        RV(active) and records the canary; O(verify_header) is then not demanded (a request may reach either colour).
    type: int
    version_added: 0.2.0
  force:
    description:
      - Switch without the health check. B(Dangerous) because nginx then sends all traffic to a colour that may not
        answer. Meant for emergencies and first installs only; a warning is returned.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Runs the health check (read-only requests) and reports whether it would switch; writes nothing and
      does not reload nginx.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Before and after content of O(upstream_file); with O(routing_dir), the routing before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - The health check goes straight to the colour's C(host:port), so the host running the task must reach it.
  - First install. An nginx site with C(proxy_pass http://<name>_backend) is invalid until O(upstream_file)
    exists, so run this module before the site is validated or enabled. If nginx may not be running yet, use
    O(nginx_reload_cmd=[systemctl, reload-or-restart, nginx]), which reloads a running nginx gracefully and
    starts a stopped one.
  - On failure the result still has RV(previous), RV(health) and RV(health_checks); RV(active) is then the colour
    that still serves.
  - With O(release), the deploy root's C(current) moves only after nginx serves the release. If moving it fails
    (very unlikely, for example a full disk), the module fails saying so; running it again moves it.
  - C(switched_at) in the state file is UTC.
seealso:
  - name: nginx upstream module
    description: The C(upstream), C(server) and C(keepalive) directives written to O(upstream_file).
    link: https://nginx.org/en/docs/http/ngx_http_upstream_module.html
  - name: Controlling nginx
    description: How C(nginx -s reload) replaces workers without dropping connections.
    link: https://nginx.org/en/docs/control.html
"""

EXAMPLES = r"""
# nginx site (in the http context):
#   include /etc/nginx/conf.d/shop_upstream.conf;   (Debian includes conf.d/*.conf already)
#   server {
#     listen 127.0.0.1:80;
#     location / {
#       proxy_pass http://shop_backend;
#       proxy_http_version 1.1;
#       proxy_set_header Connection "";
#     }
#   }

- name: Send shop traffic to green once green is healthy
  stackops.platform.blue_green:
    name: shop
    color: green
    upstreams:
      blue: 127.0.0.1:8001
      green: 127.0.0.1:8002
    health_path: /health
    verify_url: http://127.0.0.1/health
  register: __shop_switch

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ __shop_switch.previous }} -> {{ __shop_switch.active }} (switched: {{ __shop_switch.switched }})"

- name: Roll back to blue (same call, other colour), nginx managed by systemd
  stackops.platform.blue_green:
    name: shop
    color: blue
    upstreams:
      blue: 127.0.0.1:8001
      green: 127.0.0.1:8002
    upstream_file: /etc/nginx/conf.d/shop_upstream.conf
    state_file: /var/lib/stackops/blue_green/shop.json
    nginx_reload_cmd: [systemctl, reload, nginx]
    healthy_threshold: 5
    health_timeout: 120

- name: Fast rollback - nginx back to the colour still running the previous release, then current follows
  stackops.platform.blue_green:
    name: shop
    release: previous
    release_path: /srv/shop
    upstreams:
      blue: 127.0.0.1:8001
      green: 127.0.0.1:8002
    nginx_reload_cmd: [systemctl, reload, nginx]
    healthy_threshold: 2
    health_interval: 0.05
    health_timeout: 5
  register: __shop_rollback

- name: Canary - send 10 % of shop's requests to green without reloading nginx
  stackops.platform.blue_green:
    name: shop
    color: green
    weight: 10
    routing_dir: /var/lib/stackops/routing/shop
    upstreams:
      blue: 127.0.0.1:8001
      green: 127.0.0.1:8002
    verify_url: http://127.0.0.1/health

- name: Abort that canary - every request back to blue
  stackops.platform.blue_green:
    name: shop
    color: blue
    routing_dir: /var/lib/stackops/routing/shop
    upstreams:
      blue: 127.0.0.1:8001
      green: 127.0.0.1:8002

- name: Switch an nginx started with its own prefix and config, check the colour header through nginx
  stackops.platform.blue_green:
    name: api
    color: blue
    upstreams:
      blue: 127.0.0.1:9001
      green: 127.0.0.1:9002
    health_url: "http://{host}:{port}/ready"
    upstream_file: /srv/nginx/upstream.conf
    state_file: /srv/nginx/api-color.json
    nginx_prefix: /srv/nginx
    nginx_conf: /srv/nginx/nginx.conf
    verify_url: http://127.0.0.1:8080/
    verify_header: X-Color
"""

RETURN = r"""
previous:
  description: Colour active before this task (from the state file, else from the upstream file); null if unknown.
  returned: always
  type: str
  sample: blue
active:
  description: Colour active after this task (in check mode, the one that would be active).
  returned: always
  type: str
  sample: green
switched:
  description: Whether traffic moved (or in check mode would move) to O(color).
  returned: always
  type: bool
  sample: true
upstream:
  description: C(host:port) of the active colour.
  returned: always
  type: str
  sample: 127.0.0.1:8002
upstream_name:
  description: Name of the nginx upstream block, for C(proxy_pass http://<upstream_name>).
  returned: always
  type: str
  sample: shop_backend
upstream_file:
  description: Path of the upstream include file.
  returned: always
  type: str
  sample: /etc/nginx/conf.d/shop_upstream.conf
state_file:
  description: Path of the state file.
  returned: always
  type: str
  sample: /var/lib/stackops/blue_green/shop.json
health_checks:
  description: Number of health requests sent to the target colour (0 when nothing had to change or O(force)).
  returned: always
  type: int
  sample: 3
health:
  description: Outcome of the health check; null when none ran.
  returned: always
  type: dict
  sample: {ok: true, attempts: 3, consecutive: 3, last_status: 200, last_body: "ok", last_error: null}
verify_checks:
  description: Number of requests sent to O(verify_url).
  returned: always
  type: int
  sample: 1
duration:
  description: Seconds the task took.
  returned: always
  type: float
  sample: 2.113
release:
  description: With O(release), the release id put live.
  returned: when O(release) is set
  type: str
  sample: 20260219T101500Z
release_before:
  description: With O(release), the release C(current) pointed at before this task.
  returned: when O(release) is set
  type: str
  sample: 20260220T051228Z
current_moved:
  description: With O(release), whether C(current) was (or in check mode would be) moved.
  returned: when O(release) is set
  type: bool
  sample: true
color_found:
  description: With O(release), whether a colour runs the release. C(false) on failure means no colour link
    points at it.
  returned: when O(release) is set
  type: bool
  sample: true
routing_dir:
  description: With O(routing_dir), its absolute path.
  returned: when O(routing_dir) is set
  type: str
  sample: /var/lib/stackops/routing/shop
routing:
  description: With O(routing_dir), the slot pattern now routed (one letter per 10 % slot, C(b) blue, C(g) green).
  returned: when O(routing_dir) is set
  type: str
  sample: gbbbbbbbbb
routing_before:
  description: With O(routing_dir), the slot pattern before this task; null when there was no routing yet.
  returned: when O(routing_dir) is set
  type: str
  sample: bbbbbbbbbb
weight:
  description: With O(routing_dir), the share (percent) of O(color) after this task.
  returned: when O(routing_dir) is set
  type: int
  sample: 10
weights:
  description: With O(routing_dir), the share (percent) of each colour after this task.
  returned: when O(routing_dir) is set
  type: dict
  sample: {blue: 90, green: 10}
weights_before:
  description: With O(routing_dir), the share of each colour before this task (empty when there was no routing).
  returned: when O(routing_dir) is set
  type: dict
  sample: {blue: 100, green: 0}
canary:
  description: With O(routing_dir), C({color, weight}) while a colour gets less than 100 %, else null.
  returned: when O(routing_dir) is set
  type: dict
  sample: {color: green, weight: 10}
reloaded:
  description: With O(routing_dir), whether nginx was reloaded (never).
  returned: when O(routing_dir) is set
  type: bool
  sample: false
nginx_stderr:
  description: nginx's error output when the configuration test or the reload failed.
  returned: failure
  type: str
  sample: 'nginx: [emerg] host not found in upstream "nowhere.invalid:8002"'
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import BlueGreenError, switch
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_params import COLORS
from ansible_collections.stackops.platform.plugins.module_utils.release_cutover import cutover
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        color=dict(type="str", choices=list(COLORS)),
        release=dict(type="str"),
        release_path=dict(type="path"),
        color_links_dir=dict(type="str", default="colors"),
        release_lock_timeout=dict(type="float", default=0),
        upstreams=dict(type="dict", required=True),
        upstream_file=dict(type="path"),
        state_file=dict(type="path"),
        keepalive=dict(type="int", default=32),
        health_path=dict(type="str"),
        health_url=dict(type="str"),
        healthy_threshold=dict(type="int", default=3),
        health_timeout=dict(type="float", default=60),
        health_interval=dict(type="float", default=1),
        expected_status=dict(type="int", default=200),
        verify_url=dict(type="str"),
        verify_header=dict(type="str"),
        verify_host=dict(type="str"),
        verify_timeout=dict(type="float", default=10),
        nginx_binary=dict(type="str", default="nginx"),
        nginx_conf=dict(type="path"),
        nginx_prefix=dict(type="path"),
        nginx_test_cmd=dict(type="list", elements="str"),
        nginx_reload_cmd=dict(type="list", elements="str"),
        force=dict(type="bool", default=False),
        routing_dir=dict(type="path"),
        weight=dict(type="int"),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("health_path", "health_url"), ("color", "release")],
        required_one_of=[("color", "release")],
        required_by={"verify_header": "verify_url", "verify_host": "verify_url", "release": "release_path"},
        supports_check_mode=True,
    )

    def run(argv):
        # A missing binary must come back as a failed command, so the core can restore the file.
        try:
            return module.run_command(argv, handle_exceptions=False)
        except OSError as exc:
            return 127, "", f"cannot run {argv[0]}: {exc}"

    action = cutover if module.params["release"] else switch
    try:
        result = action(dict(module.params), run, check_mode=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except ReleaseError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except BlueGreenError as exc:
        details = dict(exc.details)
        for warning in details.pop("warnings", []):
            module.warn(warning)
        module.fail_json(msg=exc.msg, **details)
    except OSError as exc:
        module.fail_json(msg=f"blue_green for {module.params['name']} failed: {exc}", exception=traceback.format_exc())
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
