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
        if module.check_mode:
            module.exit_json(changed=True, path=path, entry=entry)
        line = append(path, entry, mode=mode, lock_timeout=params["lock_timeout"])
    except AuditError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg=f"could not append to the audit log {params['path']}: {exc}")
    module.exit_json(changed=True, path=path, entry=entry, line=line)


if __name__ == "__main__":
    main()
