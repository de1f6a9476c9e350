#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_audit
short_description: Append a deploy, rollback or switch to the audit log of a deploy root (JSON lines)
version_added: 0.2.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - Appends one JSON object on one line to O(path), by convention C(<deploy root>/audit.jsonl). It holds when (UTC),
    which O(event), O(app), O(release), O(previous) release, O(color), O(result), O(duration), who ran it (O(who)),
    the post-switch watch figures (O(watch)) and, for a failure, why (O(failure), recorded as C(message)).
  - Appends are serialised by an exclusive C(flock) on C(.<log name>.lock) beside the log (it names its holder
    while held), so the lines of two runs never interleave, and fsynced before the module returns. A line
    torn by a crash is closed first, so each entry is a line of its own.
  - The log is created with mode O(mode) (default C(0640)); an existing log keeps its mode and owner.
  - Bad input (unknown O(event) or O(result), empty O(app), negative O(duration)) fails before anything is
    written, naming the bad value.
options:
  path:
    description:
      - The audit log file. Its directory must exist (the deploy root); the file is created on the first entry.
    type: path
    required: true
  event:
    description:
      - What happened.
    type: str
    required: true
    choices: [deploy, rollback, switch]
  result:
    description:
      - How it ended.
    type: str
    required: true
    choices: [ok, failed]
  app:
    description:
      - The app (its units are C(<app>@blue) and C(<app>@green)).
    type: str
    required: true
  release:
    description:
      - The release the event put live (or tried to).
    type: str
  previous:
    description:
      - The release that was live before.
    type: str
  color:
    description:
      - The colour serving after the event.
    type: str
  host:
    description:
      - The inventory name of the host, recorded as it is (the managed host's name may differ).
    type: str
  duration:
    description:
      - Seconds the event took.
    type: float
  who:
    description:
      - Who ran it, for example C(user) (the controller user) and C(job_id) (the AWX job id).
    type: dict
    default: {}
  watch:
    description:
      - Figures of the post-switch watch (requests, error ratio, p95), when there was one.
    type: dict
    default: {}
  failure:
    description:
      - Why it failed, recorded under C(message). Cut to 2000 characters.
    type: str
  extra:
    description:
      - More keys to record. They must not repeat the entry's own keys.
    type: dict
    default: {}
  marker_dir:
    description:
      - With O(result=ok), also record the event for node exporter's textfile collector in the same call.
        C(<marker_dir>/stackops_deploy_<app>.prom) then holds
        C(stackops_deploy_event_timestamp_seconds{app,event,release,color}) set to the time of the call, replaced
        atomically (never half-written; the directory is created C(0775) when missing).
        The dashboards draw it as annotations.
      - A failed event leaves the marker as it was. A marker that cannot be written is a warning (RV(marker_error)),
        never a failure, since the event happened and its line is in the log.
      - Unset or empty, no marker.
    type: path
  marker_release:
    description:
      - The release the marker names (the one serving now). Default O(release).
    type: str
  mode:
    description:
      - Mode of a new log.
    type: raw
    default: "0640"
  lock_timeout:
    description:
      - Seconds to wait for another run's append.
    type: float
    default: 10
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Checks the input and the path and returns the entry it would append; writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
seealso:
  - module: stackops.platform.release
  - module: stackops.platform.blue_green
"""

EXAMPLES = r"""
- name: Record a deploy of shop
  stackops.platform.deploy_audit:
    path: /srv/shop/audit.jsonl
    event: deploy
    result: ok
    app: shop
    release: "20260220T051228Z"
    previous: "20260219T101500Z"
    color: green
    duration: 7.4
    who:
      user: alice
      job_id: "4711"
    watch: "{{ __deploy_watch | default({}) }}"
    marker_dir: /var/lib/prometheus/node-exporter

- name: Record a failed rollback
  stackops.platform.deploy_audit:
    path: /srv/shop/audit.jsonl
    event: rollback
    result: failed
    app: shop
    failure: "{{ ansible_failed_result.msg | default('') }}"
"""

RETURN = r"""
path:
  description: Absolute path of the audit log.
  returned: success
  type: str
  sample: /srv/shop/audit.jsonl
entry:
  description: The entry appended (in check mode, the one that would be).
  returned: success
  type: dict
  sample:
    time: "2026-02-20T05:12:35Z"
    event: deploy
    app: shop
    release: "20260220T051228Z"
    previous: "20260219T101500Z"
    color: green
    result: ok
    duration_s: 7.4
    who: {user: alice, job_id: "4711"}
    watch: {requests: 1200, error_ratio: 0.0, p95_ms: 41}
marker_file:
  description: The deploy marker written (not in check mode, not for a failed event); null without one.
  returned: success
  type: str
  sample: /var/lib/prometheus/node-exporter/stackops_deploy_shop.prom
marker_error:
  description: Why the marker was not written (it is also a warning).
  returned: when the marker could not be written
  type: str
line:
  description: The line appended, newline included (not in check mode).
  returned: changed and not check mode
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.deploy_audit_core import (
    EVENTS,
    RESULTS,
    AuditError,
    append,
    build_entry,
    check_path,
    marker_path,
    write_marker,
)


def argument_spec():
    return dict(
        path=dict(type="path", required=True),
        event=dict(type="str", required=True, choices=list(EVENTS)),
        result=dict(type="str", required=True, choices=list(RESULTS)),
        app=dict(type="str", required=True),
        release=dict(type="str"),
        previous=dict(type="str"),
        color=dict(type="str"),
        host=dict(type="str"),
        duration=dict(type="float"),
        who=dict(type="dict", default={}),
        watch=dict(type="dict", default={}),
        failure=dict(type="str"),
        extra=dict(type="dict", default={}),
        marker_dir=dict(type="path"),
        marker_release=dict(type="str"),
        mode=dict(type="raw", default="0640"),
        lock_timeout=dict(type="float", default=10),
    )


def parse_mode(value):
    """Mode from an octal string ('0640') or an int; raise AuditError otherwise."""
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise AuditError(f"mode {value!r} is not an octal mode such as '0640'") from None
    if mode < 0 or mode > 0o777:
        raise AuditError(f"mode {value!r} is not a file mode between 0000 and 0777")
    return mode


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        mode = parse_mode(params["mode"])
        entry = build_entry(dict(params, message=params["failure"]))
        path = check_path(params["path"])
        marker_dir = params["marker_dir"] if params["result"] == "ok" else None
        if marker_dir:
            marker_path(marker_dir, entry["app"])  # a bad app name for a file name fails before the append
        if module.check_mode:
            module.exit_json(changed=True, path=path, entry=entry, marker_file=None)
        line = append(path, entry, mode=mode, lock_timeout=params["lock_timeout"])
    except AuditError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg=f"could not append to the audit log {params['path']}: {exc}")
    result = dict(changed=True, path=path, entry=entry, line=line, marker_file=None)
    if marker_dir:
        try:
            result["marker_file"] = write_marker(marker_dir, entry, release=params["marker_release"])
        except AuditError as exc:
            result["marker_error"] = exc.msg
            module.warn(exc.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
