#!/usr/bin/python
# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wait_healthy
short_description: Wait for a systemd unit's health URL, failing at once when the unit fails, exits or restart-loops
version_added: 0.2.0
author:
  - stackops platform contributors (!UNKNOWN)
description:
  - Meant right after a unit was (re)started, or restarts it itself with O(restart). Every O(interval) seconds
    it reads the unit's state with C(systemctl show) (C(ActiveState), C(SubState), C(Result), C(NRestarts), the
    main process's exit status) and,
    while the unit can still become healthy, requests O(url) (no proxies). It succeeds when O(url) answered
    O(expected_status) O(healthy_threshold) times in a row.
  - Fails at once, without waiting for O(timeout), when the unit has failed, stopped, is in C(auto-restart)
    (C(Restart=on-failure) after its process died) or was restarted by systemd since the wait began
    (C(NRestarts) grew). The message says which and carries the unit's last O(journal_lines) journal lines
    (also in RV(journal)), so a release that dies at start is rejected in about a second.
  - Fails at O(timeout) when the unit keeps running but O(url) never answers as expected, with the last answer
    and the journal lines.
  - Reads only unless O(restart) is set; standard library only.
options:
  unit:
    description:
      - The systemd unit, for example C(api@green.service).
    type: str
    required: true
  url:
    description:
      - The health URL of the unit's process (C(http://) or C(https://)), for example C(http://127.0.0.1:8002/health).
    type: str
    required: true
  expected_status:
    description:
      - The HTTP status that counts as healthy.
    type: int
    default: 200
  healthy_threshold:
    description:
      - Answers with O(expected_status) needed in a row.
    type: int
    default: 1
  timeout:
    description:
      - Seconds the unit has, in total, to become healthy.
    type: float
    default: 60
  interval:
    description:
      - Seconds between two rounds (unit state, then health request).
    type: float
    default: 0.5
  restart:
    description:
      - Restart the unit first (C(systemctl restart)), then wait, in one module call.
      - The task then reports changed.
    type: bool
    default: false
  enable:
    description:
      - With O(restart), enable the unit at boot first when C(systemctl is-enabled) says it is not (the first
        deploy of a colour). Ignored without O(restart).
    type: bool
    default: false
  journal_lines:
    description:
      - How many of the unit's last journal lines go into the failure message and RV(journal).
    type: int
    default: 20
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - In check mode nothing is restarted or waited for; it returns at once (RV(skipped)), changed when O(restart)
        would have restarted the unit.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Needs C(systemctl) and C(journalctl) on the host (systemd).
seealso:
  - module: stackops.platform.blue_green
  - name: systemd.service Restart=
    description: How C(Restart=on-failure) and C(RestartSec=) make a crashing unit restart-loop.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#Restart=
"""

EXAMPLES = r"""
- name: Restart green (enabling it at boot the first time) and wait for its health, failing at once if it dies
  stackops.platform.wait_healthy:
    unit: api@green.service
    url: http://127.0.0.1:8002/health
    restart: true
    enable: true
    timeout: 60

- name: Wait for a unit restarted by something else
  stackops.platform.wait_healthy:
    unit: api@blue.service
    url: http://127.0.0.1:8001/health
    healthy_threshold: 3
    interval: 0.2
"""

RETURN = r"""
ok:
  description: Whether the unit became healthy.
  returned: always
  type: bool
  sample: true
reason:
  description: C(healthy), or why not (the unit's state, or the last health answer at the timeout).
  returned: always
  type: str
  sample: >-
    the unit is restart-looping: its process exited with status 1 and systemd restarts it
    (ActiveState=activating SubState=auto-restart Result=exit-code NRestarts=1)
elapsed:
  description: Seconds the wait took.
  returned: always
  type: float
  sample: 0.612
attempts:
  description: Health requests sent.
  returned: always
  type: int
  sample: 2
last_status:
  description: Status of the last health answer; null when none came.
  returned: always
  type: int
  sample: 200
last_body:
  description: Start of the last health answer's body.
  returned: always
  type: str
  sample: '{"status": "ok"}'
active_state:
  description: The unit's C(ActiveState) at the end.
  returned: always
  type: str
  sample: active
sub_state:
  description: The unit's C(SubState) at the end.
  returned: always
  type: str
  sample: running
restarts:
  description: The unit's C(NRestarts) at the end.
  returned: always
  type: int
  sample: 0
journal:
  description: The unit's last O(journal_lines) journal lines (on failure only).
  returned: always
  type: list
  elements: str
  sample: ["2026-12-02T03:00:00+0000 host api-green[123]: ModuleNotFoundError: No module named 'app'"]
actions:
  description: What the module did to the unit before the wait (C(enabled), C(restarted)); empty without O(restart).
  returned: always
  type: list
  elements: str
  sample: [enabled, restarted]
skipped:
  description: True in check mode (nothing was waited for).
  returned: when in check mode
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.platform.plugins.module_utils.unit_health import UnitDown, UnitWait


def argument_spec():
    return dict(
        unit=dict(type="str", required=True),
        url=dict(type="str", required=True),
        expected_status=dict(type="int", default=200),
        healthy_threshold=dict(type="int", default=1),
        timeout=dict(type="float", default=60),
        interval=dict(type="float", default=0.5),
        restart=dict(type="bool", default=False),
        enable=dict(type="bool", default=False),
        journal_lines=dict(type="int", default=20),
    )


def check_params(p):
    """A message naming the first bad option, or None."""
    if not p["url"].lower().startswith(("http://", "https://")):
        return f"url={p['url']!r}: give an http:// or https:// URL"
    if not p["unit"].strip() or any(c.isspace() for c in p["unit"]):
        return f"unit={p['unit']!r}: give one systemd unit name, for example api@green.service"
    if p["timeout"] <= 0 or p["interval"] <= 0:
        return f"timeout={p['timeout']!r}, interval={p['interval']!r}: give positive numbers of seconds"
    if p["healthy_threshold"] < 1:
        return f"healthy_threshold={p['healthy_threshold']!r}: give 1 or more"
    if p["journal_lines"] < 0:
        return f"journal_lines={p['journal_lines']!r}: give 0 or more"
    return None


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    bad = check_params(p)
    if bad:
        module.fail_json(msg=bad)
    if module.check_mode:
        module.exit_json(
            changed=p["restart"],
            skipped=True,
            actions=[],
            ok=True,
            reason="check mode: nothing was waited for",
            unit=p["unit"],
            elapsed=0.0,
            attempts=0,
            last_status=None,
            last_body="",
            active_state=None,
            sub_state=None,
            restarts=0,
            journal=[],
        )

    def run(argv):
        try:
            return module.run_command(argv, handle_exceptions=False)
        except OSError as exc:
            return 127, "", f"cannot run {argv[0]}: {exc}"

    waiter = UnitWait(run)
    actions = []
    try:
        if p["restart"]:
            actions = waiter.restart(p["unit"], enable=p["enable"])
        result = waiter.wait(
            p["unit"],
            p["url"],
            timeout=p["timeout"],
            interval=p["interval"],
            expected_status=p["expected_status"],
            healthy_threshold=p["healthy_threshold"],
            journal_lines=p["journal_lines"],
        )
    except UnitDown as exc:
        module.fail_json(msg=str(exc), unit=p["unit"], actions=actions)
    result["actions"] = actions
    if not result["ok"]:
        tail = "\n".join(result["journal"]) or "(no journal lines)"
        module.fail_json(
            msg=f"{p['unit']} is not healthy after {result['elapsed']:g} s: {result['reason']}. "
            f"Last journal lines:\n{tail}",
            changed=bool(actions),
            **result,
        )
    module.exit_json(changed=bool(actions), **result)


if __name__ == "__main__":
    main()
