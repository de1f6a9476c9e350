#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_watch
short_description: Watch a colour after a blue-green switch (5xx ratio, p95 latency) in nginx's access log
version_added: 0.2.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - For O(seconds) after a switch, reads the app's nginx access log from O(start_offset) (the log's size taken
    just before the switch), keeps the lines served by O(color) and measures requests, 5xx answers and their
    ratio, and the p95 of the upstream response time (C(urt=), nginx's C($upstream_response_time)).
  - A line belongs to O(color) when it has a C(color=) field naming it or, without that field, when the upstream
    that answered (the last address of C(upstream=), nginx's C($upstream_addr)) is O(upstreams[color]).
  - Verdict. Fewer than O(min_requests) requests is not enough traffic to judge; the watch passes and says so in
    RV(reason). Otherwise a 5xx ratio above O(max_error_ratio) or a p95 above O(max_p95_ms) is a breach
    (RV(breached=true)). With O(stop_on_breach) the watch ends at the first breach seen with enough traffic.
  - A breach is a result, not a failure of the task; the caller decides (the deploy switches back and fails).
  - Rotation-safe. A log renamed since O(start_offset) (logrotate's C(create)) is read to its end when it is
    still in the same directory under a name that starts with the log's name (C(.1)), then the new log from its
    start; a truncated log (C(copytruncate)) is read from its start. Rotations during the watch are followed the
    same way. RV(notes) says what happened.
  - Reads only; standard library only.
options:
  name:
    description:
      - Name of the app; names the default O(log_path).
    type: str
    required: true
  color:
    description:
      - The colour to watch (the one that was just switched to).
    type: str
    required: true
    choices: [blue, green]
  upstreams:
    description:
      - Where each colour listens, as C(host:port) (as for M(stackops.platform.blue_green)); O(upstreams[color]) is
        the address C($upstream_addr) shows for O(color). Extra addresses for the same colour may be given as a list.
    type: dict
    required: true
  log_path:
    description:
      - The app's nginx access log, in the api role's format (status after the request, then
        C(upstream=$upstream_addr rt=$request_time urt=$upstream_response_time), optionally C(color=)).
      - Defaults to C(/var/log/nginx/<name>.access.log).
    type: path
  start_offset:
    description:
      - Byte offset to read from, taken just before the switch (the log's size then). Without it the watch
        starts at the log's end now.
    type: int
  start_inode:
    description:
      - Inode of the log when O(start_offset) was taken; a different inode now means the log was rotated meanwhile.
    type: int
  seconds:
    description:
      - How long to watch, in seconds.
    type: float
    default: 60
  interval:
    description:
      - Seconds between two reads of the log.
    type: float
    default: 1
  max_error_ratio:
    description:
      - Highest share of 5xx answers that still passes (C(0.01) = 1 %).
    type: float
    default: 0.01
  max_p95_ms:
    description:
      - Highest p95 of the upstream response time, in milliseconds, that still passes.
    type: float
    default: 300
  min_requests:
    description:
      - Fewest requests served by O(color) needed to judge it; below that the watch passes with
        RV(enough_traffic=false).
    type: int
    default: 20
  stop_on_breach:
    description:
      - End the watch as soon as a breach is seen with at least O(min_requests) requests, instead of after
        O(seconds).
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - The figures cover the requests nginx logged; health checks sent straight to the colour's port (not through
    nginx) are not in them.
  - The p95 is the nearest-rank percentile of the upstream time of the colour's requests that got an answer
    from it; a request with no upstream answer (a C(502) after a refused connection) counts as a 5xx only.
seealso:
  - module: stackops.platform.blue_green
  - name: nginx log variables
    description: C($upstream_addr) and C($upstream_response_time).
    link: https://nginx.org/en/docs/http/ngx_http_upstream_module.html#variables
"""

EXAMPLES = r"""
- name: Take the access log's size before the switch
  ansible.builtin.stat:
    path: /var/log/nginx/api.access.log
    get_checksum: false
  register: __log_before

- name: Switch to green
  stackops.platform.blue_green:
    name: api
    color: green
    upstreams: {blue: 127.0.0.1:8001, green: 127.0.0.1:8002}
    nginx_reload_cmd: [systemctl, reload, nginx]

- name: Watch green for a minute
  stackops.platform.deploy_watch:
    name: api
    color: green
    upstreams: {blue: 127.0.0.1:8001, green: 127.0.0.1:8002}
    start_offset: "{{ __log_before.stat.size }}"
    start_inode: "{{ __log_before.stat.inode }}"
    seconds: 60
    max_error_ratio: 0.01
    max_p95_ms: 300
    min_requests: 50
  register: __watch

- name: Switch back on a breach
  stackops.platform.blue_green:
    name: api
    color: blue
    upstreams: {blue: 127.0.0.1:8001, green: 127.0.0.1:8002}
    nginx_reload_cmd: [systemctl, reload, nginx]
  when: __watch.breached
"""

RETURN = r"""
color:
  description: The colour watched.
  returned: always
  type: str
  sample: green
seconds:
  description: The planned length of the watch.
  returned: always
  type: float
  sample: 60.0
elapsed:
  description: Seconds the watch took (shorter than RV(seconds) when it stopped at a breach).
  returned: always
  type: float
  sample: 60.02
requests:
  description: Requests served by the colour in the watch.
  returned: always
  type: int
  sample: 1520
errors_5xx:
  description: Of those, answers with a 5xx status.
  returned: always
  type: int
  sample: 152
error_ratio:
  description: RV(errors_5xx) / RV(requests) (0 without requests), rounded to 4 places.
  returned: always
  type: float
  sample: 0.1
p95_ms:
  description: p95 of the upstream response time in ms; null when no request got an upstream answer.
  returned: always
  type: float
  sample: 12.0
breached:
  description: Whether a guardrail was breached with enough traffic.
  returned: always
  type: bool
  sample: true
enough_traffic:
  description: Whether at least O(min_requests) requests were served by the colour.
  returned: always
  type: bool
  sample: true
stopped_early:
  description: Whether the watch ended before RV(seconds) because of a breach.
  returned: always
  type: bool
  sample: true
reason:
  description: The verdict in words, with the figures and guardrails.
  returned: always
  type: str
  sample: 5xx ratio 10.00% (152 of 1520) above 1.00%
lines_read:
  description: Log lines read; RV(lines_other) of them were served by another colour, RV(lines_unparsed) had
    another format.
  returned: always
  type: int
  sample: 1600
lines_other:
  description: Lines served by another colour (or by none).
  returned: always
  type: int
  sample: 80
lines_unparsed:
  description: Lines not in the expected format.
  returned: always
  type: int
  sample: 0
rotated:
  description: Whether the log was rotated or truncated since O(start_offset).
  returned: always
  type: bool
  sample: false
notes:
  description: What was done about a rotation or truncation.
  returned: always
  type: list
  elements: str
  sample: []
max_error_ratio:
  description: The guardrail used.
  returned: always
  type: float
  sample: 0.01
max_p95_ms:
  description: The guardrail used.
  returned: always
  type: float
  sample: 300.0
min_requests:
  description: The guardrail used.
  returned: always
  type: int
  sample: 20
log_path:
  description: The access log read.
  returned: always
  type: str
  sample: /var/log/nginx/api.access.log
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.deploy_watch_core import (
    LogTail,
    Tally,
    WatchError,
    validate,
    watch,
)


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        color=dict(type="str", required=True, choices=["blue", "green"]),
        upstreams=dict(type="dict", required=True),
        log_path=dict(type="path"),
        start_offset=dict(type="int"),
        start_inode=dict(type="int"),
        seconds=dict(type="float", default=60),
        interval=dict(type="float", default=1),
        max_error_ratio=dict(type="float", default=0.01),
        max_p95_ms=dict(type="float", default=300),
        min_requests=dict(type="int", default=20),
        stop_on_breach=dict(type="bool", default=True),
    )


def color_addresses(upstreams, color):
    """The addresses $upstream_addr shows for a colour: a string or a list in upstreams[color]."""
    value = upstreams.get(color)
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if p["start_offset"] is not None and p["start_offset"] < 0:
        module.fail_json(msg=f"start_offset={p['start_offset']}: give the log's size in bytes (0 or more)")
    addresses = color_addresses(p["upstreams"], p["color"])
    log_path = p["log_path"] or f"/var/log/nginx/{p['name']}.access.log"
    try:
        validate(
            color=p["color"],
            addresses=addresses,
            seconds=p["seconds"],
            interval=p["interval"],
            max_error_ratio=p["max_error_ratio"],
            max_p95_ms=p["max_p95_ms"],
            min_requests=p["min_requests"],
        )
        tail = LogTail(log_path, p["start_offset"], p["start_inode"])
    except WatchError as exc:
        module.fail_json(msg=str(exc), log_path=log_path)
    try:
        result = watch(
            tail,
            Tally(p["color"], addresses),
            seconds=p["seconds"],
            interval=p["interval"],
            max_error_ratio=p["max_error_ratio"],
            max_p95_ms=p["max_p95_ms"],
            min_requests=p["min_requests"],
            stop_on_breach=p["stop_on_breach"],
        )
    except OSError as exc:
        module.fail_json(msg=f"reading {log_path} failed: {exc}", log_path=log_path)
    finally:
        tail.close()
    module.exit_json(changed=False, log_path=log_path, **result)


if __name__ == "__main__":
    main()
