# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a freshly (re)started systemd unit's health URL, and fail at once when the unit dies instead.

Each round asks systemd for the unit's state (``systemctl show``) before the health request: a unit that has
failed, exited or is restart-looping (``Restart=on-failure`` puts it in ``activating/auto-restart`` and counts
``NRestarts``) cannot become healthy, so the wait ends there with the unit's last journal lines, rather than
at the timeout. Standard library only; commands run through the caller's ``run(argv) -> (rc, out, err)``.
"""

from __future__ import annotations

import time

from ansible_collections.stackops.platform.plugins.module_utils.http_probe import MAX_REQUEST_TIMEOUT, excerpt, http_get

SHOW_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "ExecMainStatus",
    "ExecMainCode",
    "MainPID",
)
# ExecMainCode (siginfo si_code): 1 exited, 2 killed, 3 dumped core.
_EXIT_CODES = {"1": "exited", "2": "killed by signal", "3": "dumped core"}


class UnitDown(Exception):
    """The unit cannot become healthy: failed, exited, restart-looping or unknown."""


def show_argv(unit):
    return ["systemctl", "show", unit, "--property=" + ",".join(SHOW_PROPERTIES)]


def is_enabled_argv(unit):
    return ["systemctl", "is-enabled", unit]


def journal_argv(unit, lines):
    return ["journalctl", "--unit", unit, "--lines", str(lines), "--no-pager", "--output", "short-iso", "--quiet"]


def parse_show(text):
    """``Key=value`` lines of ``systemctl show`` as a dict."""
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def _restarts(props):
    try:
        return int(props.get("NRestarts", "0") or 0)
    except ValueError:
        return 0


def describe_exit(props):
    """'exited with status 3' / 'killed by signal 9' from ExecMainCode and ExecMainStatus."""
    how = _EXIT_CODES.get(props.get("ExecMainCode", ""), "ended")
    status = props.get("ExecMainStatus", "")
    if how == "exited":
        return f"its process exited with status {status or '?'}"
    return f"its process {how} {status}".rstrip()


def unit_problem(props, restarts_before):
    """Why the unit cannot become healthy, or None while it still can (active, or still starting)."""
    state = props.get("ActiveState", "")
    sub = props.get("SubState", "")
    if props.get("LoadState") not in (None, "", "loaded"):
        return f"the unit is {props.get('LoadState')} (not loaded)"
    where = f"ActiveState={state} SubState={sub} Result={props.get('Result', '?')} NRestarts={_restarts(props)}"
    if state == "failed":
        return f"the unit failed: {describe_exit(props)} ({where})"
    if sub == "auto-restart" or _restarts(props) > restarts_before:
        return f"the unit is restart-looping: {describe_exit(props)} and systemd restarts it ({where})"
    if state in ("inactive", "deactivating"):
        return f"the unit stopped: {describe_exit(props)} ({where})"
    return None


class UnitWait:
    """Poll the unit's state and the health URL until healthy, dead or out of time."""

    def __init__(self, run, *, fetch=http_get, clock=time.monotonic, sleep=time.sleep):
        self.run = run
        self.fetch = fetch
        self.clock = clock
        self.sleep = sleep

    def state(self, unit):
        rc, out, err = self.run(show_argv(unit))
        if rc != 0:
            raise UnitDown(f"systemctl show {unit} failed (rc {rc}): {(err or out).strip()}")
        return parse_show(out)

    def restart(self, unit, *, enable=False):
        """Restart the unit (and enable it at boot first when ``enable`` and it is not): the list of actions done.

        One module call instead of a systemd_service task before the wait: the deploy's first restart of a colour
        also enables it, and every later one finds it enabled (``systemctl is-enabled`` prints ``enabled``).
        """
        done = []
        if enable:
            rc, out, _err = self.run(is_enabled_argv(unit))
            if rc != 0 or out.strip() not in ("enabled", "enabled-runtime", "static", "alias", "indirect"):
                self._systemctl(["enable", unit])
                done.append("enabled")
        self._systemctl(["restart", unit])
        done.append("restarted")
        return done

    def _systemctl(self, args):
        rc, out, err = self.run(["systemctl", *args])
        if rc != 0:
            raise UnitDown(f"systemctl {' '.join(args)} failed (rc {rc}): {(err or out).strip()}")

    def journal(self, unit, lines):
        rc, out, err = self.run(journal_argv(unit, lines))
        if rc != 0:
            return [f"(journalctl failed, rc {rc}: {(err or out).strip()})"]
        return [line for line in out.splitlines() if line.strip()]

    def wait(self, unit, url, *, timeout, interval, expected_status=200, healthy_threshold=1, journal_lines=20):
        """The result dict; ``ok`` False with ``reason`` and ``journal`` when the unit died or time ran out."""
        started = self.clock()
        deadline = started + timeout
        props = self.state(unit)
        restarts_before = _restarts(props)
        attempts = consecutive = 0
        last = None
        while True:
            problem = unit_problem(props, restarts_before)
            if problem is None:
                remaining = max(0.5, deadline - self.clock())
                last = self.fetch(url, min(MAX_REQUEST_TIMEOUT, remaining))
                attempts += 1
                consecutive = consecutive + 1 if last.status == expected_status else 0
                if consecutive >= healthy_threshold:
                    return self._result(started, unit, props, attempts, last, reason="healthy")
            else:
                return self._result(
                    started, unit, props, attempts, last, reason=problem, journal=self.journal(unit, journal_lines)
                )
            if self.clock() + interval > deadline:
                reason = (
                    f"no healthy answer from {url} within {timeout:g} s (last: "
                    f"{last.describe() if last else 'none'}); the unit is {props.get('ActiveState', '?')}/"
                    f"{props.get('SubState', '?')}"
                )
                return self._result(
                    started, unit, props, attempts, last, reason=reason, journal=self.journal(unit, journal_lines)
                )
            self.sleep(interval)
            props = self.state(unit)

    def _result(self, started, unit, props, attempts, last, *, reason, journal=None):
        return {
            "ok": reason == "healthy",
            "unit": unit,
            "reason": reason,
            "elapsed": round(self.clock() - started, 3),
            "attempts": attempts,
            "last_status": last.status if last else None,
            "last_body": excerpt(last.body) if last else "",
            "active_state": props.get("ActiveState"),
            "sub_state": props.get("SubState"),
            "restarts": _restarts(props),
            "journal": journal or [],
        }
